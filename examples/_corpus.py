"""Text corpora for the character-level examples: a file given with --data, or by default the
running Python's own standard-library sources, which exist on every machine without a network."""
from __future__ import annotations

import hashlib
import math
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_BYTES = 1_000_000


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_text(max_bytes: int = DEFAULT_BYTES) -> tuple[str, str]:
    """The top-level *.py files of the standard library, sorted by name, concatenated (each as
    UTF-8, undecodable bytes replaced) and cut at `max_bytes` bytes. Returns (text, description).

    The same Python version gives the same text on every machine; another version gives a
    similar one (the description names the version, so logs say which was used).
    """
    root = stdlib_dir()
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no *.py files in the standard library folder {root}; "
                                "pass a text file with --data")
    parts, size = [], 0
    for p in files:
        data = p.read_bytes()
        parts.append(data[:max_bytes - size])
        size += len(parts[-1])
        if size >= max_bytes:
            break
    text = b"".join(parts).decode("utf-8", errors="replace")
    v = sys.version_info
    desc = (f"Python {v.major}.{v.minor}.{v.micro} standard library: {len(parts)} top-level .py "
            f"files of {root}, sorted by name, first {size:,} bytes")
    return text, desc


@dataclass
class Corpus:
    """A text as integer ids over its sorted character set, split into train and validation."""
    text: str
    description: str
    chars: list
    train: np.ndarray     # int64 ids
    val: np.ndarray

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]

    def encode(self, s: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        return np.array([index[c] for c in s], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def load(path: str | None = None, max_bytes: int = DEFAULT_BYTES, val_fraction: float = 0.1,
         chunk: int = 4096, seed: int = 0) -> Corpus:
    """Read `path` (UTF-8) or the standard-library text, and split it into train/validation.

    The text is cut into `chunk`-character pieces; a seeded permutation picks `val_fraction` of
    them for validation (the rest, in text order, is training text), so validation covers the
    whole corpus rather than its last files, and a given seed always gives the same split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if path:
        raw = Path(path).read_bytes()[:max_bytes]
        text = raw.decode("utf-8", errors="replace")
        desc = f"{path}: first {len(raw):,} bytes"
    else:
        text, desc = stdlib_text(max_bytes)
    if len(text) < 4 * chunk:
        chunk = max(len(text) // 4, 1)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    n = math.ceil(len(ids) / chunk)
    n_val = max(1, round(n * val_fraction))
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    pieces = [ids[i * chunk:(i + 1) * chunk] for i in range(n)]
    train = np.concatenate([p for p, v in zip(pieces, is_val) if not v])
    val = np.concatenate([p for p, v in zip(pieces, is_val) if v])
    return Corpus(text, desc, chars, train, val)


def batch(ids: np.ndarray, block: int, batch_size: int, rng: np.random.Generator):
    """Random windows: (x, y) int64 arrays of shape (batch_size, block), y = x shifted by one."""
    if len(ids) <= block + 1:
        raise ValueError(f"text of {len(ids)} characters is too short for windows of {block}")
    starts = rng.integers(0, len(ids) - block - 1, size=batch_size)
    x = np.stack([ids[s:s + block] for s in starts])
    y = np.stack([ids[s + 1:s + block + 1] for s in starts])
    return x, y


def eval_windows(ids: np.ndarray, block: int, max_windows: int | None = None):
    """Non-overlapping windows covering `ids` (the same every time): (x, y) of shape (n, block)."""
    n = (len(ids) - 1) // block
    if max_windows is not None:
        n = min(n, max_windows)
    x = ids[:n * block].reshape(n, block)
    y = ids[1:n * block + 1].reshape(n, block)
    return x, y


def bits_per_char(nats: float) -> float:
    """Cross entropy in nats per character -> bits per character."""
    return nats / math.log(2)


def sample_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                rng: np.random.Generator | None = None) -> int:
    """Draw one id from a row of logits: divide by `temperature`, keep the `top_k` largest
    (None or 0: all), softmax, sample. temperature 0 or top_k 1 is greedy (argmax)."""
    logits = np.asarray(logits, dtype=np.float64).ravel()
    if temperature <= 0 or top_k == 1:
        return int(np.argmax(logits))
    z = logits / temperature
    if top_k and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    rng = rng if rng is not None else np.random.default_rng()
    return int(rng.choice(z.size, p=p))
