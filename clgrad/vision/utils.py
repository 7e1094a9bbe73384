"""Image grids (make_grid, with tensor ops) and PNG writing with the standard library."""
from __future__ import annotations

import math
import os
import struct
import zlib

import numpy as np

from .. import autograd
from ..dtypes import uint8
from ..nn import functional as F
from ..tensor import Tensor
from ..tensor.shape import cat, stack

__all__ = ["make_grid", "save_image", "encode_png"]


def _batch(tensor) -> Tensor:
    if isinstance(tensor, (list, tuple)):
        tensor = stack(list(tensor), dim=0)
    if not isinstance(tensor, Tensor):
        raise TypeError(f"make_grid: tensor or list of tensors expected, got "
                        f"{type(tensor).__name__}")
    if tensor.ndim == 2:                                    # (H, W) -> (1, H, W)
        tensor = tensor.unsqueeze(0)
    if tensor.ndim == 3:                                    # one image
        if tensor.shape[0] == 1:
            tensor = cat((tensor, tensor, tensor), 0)
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise ValueError(f"make_grid: expected a (B, C, H, W) tensor, got shape "
                         f"{tuple(tensor.shape)}")
    if tensor.shape[1] == 1:                                # gray -> RGB
        tensor = cat((tensor, tensor, tensor), 1)
    return tensor


def _rescale(x, value_range):
    low, high = value_range if value_range is not None else (x.min(), x.max())
    return (x.clamp(min=low, max=high) - low) / ((high - low).clamp(min=1e-5)
                                                 if isinstance(high, Tensor)
                                                 else max(high - low, 1e-5))


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range=None, scale_each: bool = False, pad_value: float = 0.0) -> Tensor:
    """Tile a batch of images into one (C, H', W') image, torchvision's layout.

    Args:
        tensor: (B, C, H, W) tensor or a list of (C, H, W) tensors; 1-channel images become 3.
        nrow: images per row.
        padding: pixels between images and around the grid.
        normalize: shift to [0, 1] by `value_range` (default: the min and max).
        value_range: (min, max) for normalize.
        scale_each: normalize each image by its own min and max.
        pad_value: value of the padding pixels.

    Shape: (B, C, H, W) -> (C, ymaps * (H + padding) + padding, xmaps * (W + padding) + padding)
    with xmaps = min(nrow, B) and ymaps = ceil(B / xmaps).
    """
    with autograd.no_grad():
        x = _batch(tensor)
        if normalize:
            x = x.clone()
            if scale_each:
                x = cat([_rescale(img, value_range) for img in x], 0).reshape(x.shape)
            else:
                x = _rescale(x, value_range)
        if x.shape[0] == 1:
            return x.squeeze(0)
        b, c, h, w = x.shape
        xmaps = min(nrow, b)
        ymaps = int(math.ceil(b / xmaps))
        p = int(padding)
        x = F.pad(x, (p, 0, p, 0), value=pad_value)         # (B, C, p + H, p + W)
        if ymaps * xmaps > b:                               # empty cells: padding colour
            x = cat([x, x.new_full((ymaps * xmaps - b, c, h + p, w + p), pad_value)], 0)
        x = x.reshape(ymaps, xmaps, c, h + p, w + p).permute(2, 0, 3, 1, 4)
        x = x.reshape(c, ymaps * (h + p), xmaps * (w + p))
        return F.pad(x, (0, p, 0, p), value=pad_value)


def encode_png(pixels: np.ndarray) -> bytes:
    """(H, W) or (H, W, C) uint8 with C in 1..4 -> PNG bytes (8-bit, no filtering)."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8:
        raise TypeError(f"encode_png: expected uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    color = {1: 0, 2: 4, 3: 2, 4: 6}.get(c)
    if color is None:
        raise ValueError(f"encode_png: 1 to 4 channels expected, got {c}")
    rows = np.concatenate([np.zeros((h, 1), np.uint8), pixels.reshape(h, w * c)], axis=1)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def save_image(tensor, fp, format=None, **kwargs) -> None:
    """Write a tensor (or a batch, tiled with make_grid and its keyword arguments) as a PNG.

    Values in [0, 1] map to 0..255 (rounded, clamped) with tensor ops; the bytes are written with
    zlib and struct only (no Pillow).

    Args:
        tensor: (B, C, H, W), (C, H, W) or (H, W) tensor, or a list of images.
        fp: a file name or a binary file object.
        format: only 'png' (or None, the default) is supported.
    """
    if format is not None and str(format).lower() != "png":
        raise ValueError(f"save_image writes PNG only, got format={format!r}")
    if isinstance(fp, (str, os.PathLike)) and os.path.splitext(str(fp))[1].lower() not in (
            ".png", ""):
        raise ValueError(f"save_image writes PNG only; {fp} does not end in .png")
    with autograd.no_grad():
        grid = make_grid(tensor, **kwargs)
        if grid.ndim == 2:
            grid = grid.unsqueeze(0)
        img = grid.mul(255).add(0.5).clamp(0, 255).permute(1, 2, 0).to(uint8)
    data = encode_png(img.numpy())
    if hasattr(fp, "write"):
        fp.write(data)
    else:
        with open(fp, "wb") as f:
            f.write(data)
