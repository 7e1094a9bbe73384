"""Tokenizers in pure Python: characters, and byte-level byte-pair encoding (BPE)."""
from __future__ import annotations

import json
import re

__all__ = ["CharTokenizer", "ByteBPETokenizer", "get_tokenizer"]


class CharTokenizer:
    """One id per character, in sorted order of the characters seen (the char-RNN vocabulary).

    Args:
        text: the text whose characters make the vocabulary (or pass `chars`).
        chars: an explicit iterable of characters.
        unk: a character to map unseen characters to (added to the vocabulary); without it an
            unseen character raises KeyError.

    Example:
        >>> tok = CharTokenizer("hello world")
        >>> tok.decode(tok.encode("hello")) == "hello"
    """

    def __init__(self, text: str = "", chars=None, unk: str | None = None):
        chars = set(text) if chars is None else set(chars)
        if unk is not None:
            if len(unk) != 1:
                raise ValueError(f"CharTokenizer: unk must be one character, got {unk!r}")
            chars.add(unk)
        self.itos = sorted(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.unk = unk

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def __len__(self):
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        if self.unk is not None:
            u = self.stoi[self.unk]
            return [self.stoi.get(c, u) for c in text]
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise KeyError(f"CharTokenizer: character {e.args[0]!r} is not in the vocabulary "
                           f"(build it from this text, or pass unk=...)") from None

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def _pair_counts(seqs, counts=None):
    counts = {} if counts is None else counts
    for seq, n in seqs:
        for pair in zip(seq, seq[1:]):
            counts[pair] = counts.get(pair, 0) + n
    return counts


def _merge(seq, pair, new):
    out, i, n = [], 0, len(seq)
    while i < n:
        if i + 1 < n and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


# GPT-2's pre-split (letters, digits, punctuation runs, spaces); the last branch takes any other
# character, so the pieces always cover the text. Merges never cross these boundaries, so
# training counts pairs per distinct piece
_SPLIT = re.compile(r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"
                    r"|[\s\S]")


class ByteBPETokenizer:
    """Byte-level byte-pair encoding: ids 0..255 are the bytes of the UTF-8 text, each merge
    learned by `train` adds one id for the most frequent adjacent pair.

    Every string round-trips (`decode(encode(s)) == s`): any byte sequence is encodable, and
    decoding joins the bytes back. Text is first split into words, numbers, punctuation and
    spaces (GPT-2's pattern) and merges stay inside those pieces; ties between equally frequent
    pairs go to the smallest pair, so training is deterministic.

    Args:
        merges: learned merges in order, ((a, b), ...); empty for a plain byte tokenizer.
        special_tokens: strings kept whole and given ids after the merges.

    Example:
        >>> tok = ByteBPETokenizer.train("low lower lowest", vocab_size=260)
        >>> tok.decode(tok.encode("lowest")) == "lowest"
    """

    def __init__(self, merges=(), special_tokens=()):
        self.merges = {}
        self.vocab = {i: bytes([i]) for i in range(256)}
        for a, b in merges:
            new = 256 + len(self.merges)
            self.merges[(int(a), int(b))] = new
            self.vocab[new] = self.vocab[int(a)] + self.vocab[int(b)]
        self.special_tokens = {}
        for s in special_tokens:
            self.special_tokens[s] = len(self.vocab) + len(self.special_tokens)
        self._inverse_special = {i: s for s, i in self.special_tokens.items()}
        self._cache = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens=()) -> "ByteBPETokenizer":
        """Learn `vocab_size - 256 - len(special_tokens)` merges from `text`."""
        n_merges = int(vocab_size) - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size must be at least 256 + {len(special_tokens)} special "
                             f"tokens, got {vocab_size}")
        chunks = {}
        for piece in _SPLIT.findall(text):
            chunks[piece] = chunks.get(piece, 0) + 1
        seqs = [(list(piece.encode("utf-8")), n) for piece, n in chunks.items()]
        merges = []
        for k in range(n_merges):
            counts = _pair_counts(seqs)
            if not counts:
                break                       # every chunk is one token: nothing left to merge
            best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
            new = 256 + k
            seqs = [(_merge(s, best, new), n) for s, n in seqs]
            merges.append(best)
        return cls(merges, special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    def __len__(self):
        return self.vocab_size

    def _encode_piece(self, piece: str) -> list[int]:
        hit = self._cache.get(piece)
        if hit is not None:
            return hit
        ids = list(piece.encode("utf-8"))
        while len(ids) > 1:
            # apply the earliest-learned merge present, as training did
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = _merge(ids, pair, self.merges[pair])
        if len(self._cache) < 100_000:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        parts = [text]
        if self.special_tokens:
            pattern = "(" + "|".join(re.escape(s) for s in sorted(self.special_tokens,
                                                                   key=len, reverse=True)) + ")"
            parts = re.split(pattern, text)
        out = []
        for part in parts:
            if part in self.special_tokens:
                out.append(self.special_tokens[part])
                continue
            for piece in _SPLIT.findall(part):
                out += self._encode_piece(piece)
        return out

    def decode(self, ids, errors: str = "replace") -> str:
        """Ids back to text; invalid UTF-8 (a sequence cut mid-character) is replaced."""
        chunks = []
        for i in ids:
            i = int(i)
            if i in self._inverse_special:
                chunks.append(self._inverse_special[i].encode("utf-8"))
            elif i in self.vocab:
                chunks.append(self.vocab[i])
            else:
                raise KeyError(f"ByteBPETokenizer: id {i} is outside the vocabulary "
                               f"(size {self.vocab_size})")
        return b"".join(chunks).decode("utf-8", errors=errors)

    def save(self, path) -> None:
        """Write the merges and special tokens as JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"type": "byte-bpe", "merges": [list(p) for p in self.merges],
                       "special_tokens": list(self.special_tokens)}, f)

    @classmethod
    def load(cls, path) -> "ByteBPETokenizer":
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        if d.get("type") != "byte-bpe":
            raise ValueError(f"{path} is not a ByteBPETokenizer file")
        return cls([tuple(p) for p in d["merges"]], d.get("special_tokens", ()))


def _basic_english(line: str) -> list[str]:
    line = line.lower()
    for pat, rep in ((r"\'", " '  "), (r"\"", ""), (r"\.", " . "), (r"<br \/>", " "),
                     (r",", " , "), (r"\(", " ( "), (r"\)", " ) "), (r"\!", " ! "),
                     (r"\?", " ? "), (r"\;", " "), (r"\:", " "), (r"\s+", " ")):
        line = re.sub(pat, rep, line)
    return line.split()


def get_tokenizer(tokenizer, language: str = "en"):
    """A word tokenizer by name, as torchtext names them: None (split on whitespace),
    'basic_english' (lower-case, punctuation split off), or a callable used as is."""
    if callable(tokenizer):
        return tokenizer
    if tokenizer is None:
        return str.split
    if tokenizer == "basic_english":
        if language != "en":
            raise ValueError("basic_english only supports language='en'")
        return _basic_english
    raise ValueError(f"get_tokenizer: unknown tokenizer {tokenizer!r} (None, 'basic_english' "
                     f"or a callable; no external tokenizer libraries are loaded)")
