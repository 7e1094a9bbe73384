"""clgrad.text: the char tokenizer, byte-level BPE (training by hand-checked merges, round trips)
and the Vocab, all pure Python."""
from collections import OrderedDict
from pathlib import Path

import pytest

from clgrad.text import (ByteBPETokenizer, CharTokenizer, Vocab, build_vocab_from_iterator,
                         get_tokenizer, vocab)

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_char_tokenizer_round_trip_and_unknowns():
    tok = CharTokenizer("hello world")
    assert tok.itos == sorted(set("hello world")) and len(tok) == tok.vocab_size == 8
    assert tok.encode("hello") == [tok.stoi[c] for c in "hello"]
    assert tok.stoi[" "] == 0                        # sorted: space first
    assert tok.decode(tok.encode("lower held")) == "lower held"
    with pytest.raises(KeyError, match="'z' is not in the vocabulary"):
        tok.encode("z")
    unk = CharTokenizer("abc", unk="?")
    assert unk.decode(unk.encode("abxc")) == "ab?c"
    assert CharTokenizer(chars="ba").itos == ["a", "b"]


def test_bpe_merges_by_hand():
    # "aaabdaaabac" is one piece; 'aa' (97, 97) is the most frequent pair (4 overlapping
    # occurrences, 2 merges each side) and becomes 256
    tok = ByteBPETokenizer.train("aaabdaaabac", vocab_size=259)
    merges = list(tok.merges)
    assert merges[0] == (97, 97)
    # after 'aa' -> Z: "ZabdZabac"; pairs Za:2, ab:2, bd, dZ, ba, ac: the tie goes to the
    # smallest pair, (97, 98) < (256, 97)
    assert merges[1] == (97, 98)
    # now "Z Y d Z Y a c" with Y = ab: (256, 257) twice
    assert merges[2] == (256, 257)
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.vocab[258] == b"aaab"


def test_bpe_round_trips_any_text():
    tok = ByteBPETokenizer.train(README, vocab_size=256 + 120)
    assert tok.vocab_size == 376
    for s in (README[:2000], "", " ", "héllo wörld, ΑΒΓ 😀\n\ttabs  and   spaces",
              "never seen: qzxj 12345 !!", "\x00\xff"):
        ids = tok.encode(s)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == s
    text = README[:3000]
    assert len(tok.encode(text)) < 0.7 * len(text.encode("utf-8"))     # merges compress
    assert tok.encode(text) == ByteBPETokenizer.train(README, 376).encode(text)   # determinism
    plain = ByteBPETokenizer()
    assert plain.encode("añ") == list("añ".encode("utf-8"))
    assert plain.decode([0xC3]) == "\ufffd"                 # cut mid-character: replaced
    with pytest.raises(KeyError, match="outside the vocabulary"):
        plain.decode([256])


def test_bpe_merges_stay_inside_words():
    tok = ByteBPETokenizer.train("ab ab ab ab", vocab_size=300)
    pieces = [tok.vocab[i] for i in tok.encode("ab ab")]
    assert pieces == [b"ab", b" ab"]
    assert all(b" " not in v[1:] for v in tok.vocab.values())    # a space only leads a piece


def test_bpe_special_tokens_and_save_load(tmp_path):
    tok = ByteBPETokenizer.train(README, vocab_size=300, special_tokens=["<|endoftext|>"])
    assert tok.vocab_size == 300
    eot = tok.special_tokens["<|endoftext|>"]
    assert eot == 299
    ids = tok.encode("one<|endoftext|>two")
    assert ids.count(eot) == 1 and tok.decode(ids) == "one<|endoftext|>two"
    tok.save(tmp_path / "bpe.json")
    back = ByteBPETokenizer.load(tmp_path / "bpe.json")
    assert back.merges == tok.merges and back.special_tokens == tok.special_tokens
    assert back.encode(README[:500]) == tok.encode(README[:500])
    with pytest.raises(ValueError, match="at least 256"):
        ByteBPETokenizer.train("x", vocab_size=100)


def test_vocab_lookup_default_index_and_insert():
    v = Vocab(["<unk>", "a", "b"])
    assert len(v) == 3 and v["b"] == 2 and "a" in v and "z" not in v
    with pytest.raises(RuntimeError, match="default index is not set"):
        v["z"]
    v.set_default_index(v["<unk>"])
    assert v(["a", "z", "b"]) == [1, 0, 2] and v.lookup_indices(["z"]) == [0]
    assert v.lookup_tokens([2, 1]) == ["b", "a"] and v.lookup_token(0) == "<unk>"
    with pytest.raises(RuntimeError, match="out of bounds"):
        v.lookup_token(3)
    v.insert_token("<pad>", 1)
    assert v.get_itos() == ["<unk>", "<pad>", "a", "b"] and v.get_stoi()["a"] == 2
    v.append_token("c")
    assert v["c"] == 4 and list(v) == v.itos
    with pytest.raises(RuntimeError, match="already exists"):
        v.append_token("a")


def test_build_vocab_orders_by_frequency_then_alphabet():
    tok = get_tokenizer("basic_english")
    lines = ["The cat sat.", "the dog sat!", "A cat, the end"]
    assert tok(lines[0]) == ["the", "cat", "sat", "."]
    v = build_vocab_from_iterator(map(tok, lines), specials=["<unk>", "<pad>"])
    assert v.get_itos() == ["<unk>", "<pad>", "the", "cat", "sat", "!", ",", ".", "a", "dog",
                            "end"]
    v2 = build_vocab_from_iterator(map(tok, lines), min_freq=2, specials=["<unk>"],
                                   special_first=False)
    assert v2.get_itos() == ["the", "cat", "sat", "<unk>"]
    v3 = build_vocab_from_iterator(map(tok, lines), specials=["<unk>"], max_tokens=3)
    assert v3.get_itos() == ["<unk>", "the", "cat"]
    assert vocab(OrderedDict([("x", 3), ("y", 1)]), min_freq=2).get_itos() == ["x"]
    assert get_tokenizer(None)("a  b") == ["a", "b"]
    with pytest.raises(ValueError, match="unknown tokenizer"):
        get_tokenizer("spacy")
