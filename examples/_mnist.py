"""MNIST loading shared by the examples: the bundled 5k subset or full IDX files from --data."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

BUNDLED = Path(__file__).resolve().parent / "data" / "mnist_5k.npz"


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        zero, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype_code != 0x08:
            raise ValueError(f"{path} is not an unsigned-byte IDX file")
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(f"{stem} not found in {root}")


def load(data_dir: str | None = None, test_fraction: float = 0.1, seed: int = 0):
    """(train_images, train_labels, test_images, test_labels): float32 in [0, 1], int64.

    The digits are shuffled with `seed` and the first `test_fraction` of them held out: the
    bundled 5,000 split 4,500 / 500."""
    if data_dir:
        root = Path(data_dir)
        images = _read_idx(_find(root, "train-images-idx3-ubyte"))
        labels = _read_idx(_find(root, "train-labels-idx1-ubyte"))
    else:
        with np.load(BUNDLED) as z:
            images, labels = z["images"], z["labels"]
    order = np.random.default_rng(seed).permutation(len(labels))   # labels come sorted
    images = images[order].astype(np.float32) / 255.0
    labels = labels[order].astype(np.int64)
    n_test = int(len(labels) * test_fraction)
    return images[n_test:], labels[n_test:], images[:n_test], labels[:n_test]
