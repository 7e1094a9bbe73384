"""Vocab: a token <-> index table with specials and a default index, torchtext's API."""
from __future__ import annotations

from collections import Counter, OrderedDict

__all__ = ["Vocab", "vocab", "build_vocab_from_iterator"]


class Vocab:
    """Map tokens to indices and back.

    Args:
        tokens: tokens in index order (duplicates are an error).
        default_index: the index returned for an unknown token; None makes lookup raise.

    Example:
        >>> v = build_vocab_from_iterator([["a", "b", "a"]], specials=["<unk>"])
        >>> v.set_default_index(v["<unk>"])
        >>> v(["a", "zzz"])            # [1, 0]
    """

    def __init__(self, tokens=(), default_index: int | None = None):
        self.itos = []
        self.stoi = {}
        for t in tokens:
            self.append_token(t)
        self.default_index = default_index

    def __len__(self):
        return len(self.itos)

    def __contains__(self, token):
        return token in self.stoi

    def __iter__(self):
        return iter(self.itos)

    def __getitem__(self, token) -> int:
        i = self.stoi.get(token)
        if i is not None:
            return i
        if self.default_index is None:
            raise RuntimeError(f"Token {token!r} not found and default index is not set")
        return self.default_index

    def __call__(self, tokens) -> list[int]:
        return self.lookup_indices(tokens)

    def set_default_index(self, index: int | None) -> None:
        if index is not None and not -len(self.itos) <= index < max(len(self.itos), 1):
            raise IndexError(f"default index {index} is outside the vocabulary of "
                             f"{len(self.itos)}")
        self.default_index = index

    def get_default_index(self):
        return self.default_index

    def append_token(self, token) -> None:
        if token in self.stoi:
            raise RuntimeError(f"Token {token!r} already exists in the Vocab with index: "
                               f"{self.stoi[token]}")
        self.stoi[token] = len(self.itos)
        self.itos.append(token)

    def insert_token(self, token, index: int) -> None:
        if token in self.stoi:
            raise RuntimeError(f"Token {token!r} already exists in the Vocab with index: "
                               f"{self.stoi[token]}")
        if not 0 <= index <= len(self.itos):
            raise IndexError(f"index {index} out of range for a Vocab of {len(self.itos)}")
        self.itos.insert(index, token)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def lookup_token(self, index: int):
        if not 0 <= index < len(self.itos):
            raise RuntimeError(f"Specified index {index} is out of bounds of the size of itos "
                               f"dictionary: {len(self.itos)}.")
        return self.itos[index]

    def lookup_tokens(self, indices) -> list:
        return [self.lookup_token(int(i)) for i in indices]

    def lookup_indices(self, tokens) -> list[int]:
        return [self[t] for t in tokens]

    def get_stoi(self) -> dict:
        return dict(self.stoi)

    def get_itos(self) -> list:
        return list(self.itos)

    def __repr__(self):
        return f"Vocab(size={len(self.itos)}, default_index={self.default_index})"


def vocab(ordered_dict, min_freq: int = 1, specials=None, special_first: bool = True) -> Vocab:
    """A Vocab from token -> frequency pairs in the given order, keeping tokens seen at least
    `min_freq` times; `specials` go first (or last)."""
    specials = list(specials or [])
    tokens = [t for t, n in ordered_dict.items() if n >= min_freq and t not in specials]
    return Vocab(specials + tokens if special_first else tokens + specials)


def build_vocab_from_iterator(iterator, min_freq: int = 1, specials=None,
                              special_first: bool = True, max_tokens: int | None = None) -> Vocab:
    """A Vocab from an iterable of token lists: tokens by descending frequency, ties in
    alphabetical order (torchtext's order), at most `max_tokens` entries including specials."""
    counter = Counter()
    for tokens in iterator:
        counter.update(tokens)
    specials = list(specials or [])
    ranked = sorted(counter.items(), key=lambda kv: kv[0])
    ranked.sort(key=lambda kv: kv[1], reverse=True)
    if max_tokens is not None:
        if max_tokens <= len(specials):
            raise ValueError("max_tokens must be greater than the number of special tokens")
        ranked = [kv for kv in ranked if kv[0] not in specials][:max_tokens - len(specials)]
    return vocab(OrderedDict(ranked), min_freq, specials, special_first)
