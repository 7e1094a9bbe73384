"""Per-sample image transforms with torchvision's names: the data pipeline before the batch.

Where each one runs:
- before ToTensor the image is a numpy array (H, W) or (H, W, C), or a PIL image (read with
  `np.asarray`; Pillow is never imported): crops and flips slice numpy arrays and Resize
  resamples them on the host, since the data is not a tensor yet.
- a transform given a clgrad Tensor (C, H, W) works with tensor ops on the device.
- inside `Compose`, ToTensor's conversion and the transforms after it that have a host form
  (Normalize, RandomCrop, CenterCrop, the flips, Resize) stay on the host, and the tensor is
  made once, at the end or before the first transform without one (Lambda). So a
  DataLoader's worker threads, which must not launch kernels, can run the usual pipeline, and
  Compose gives the values of the transforms called one by one (up to float rounding).

Random choices are drawn on the host from clgrad's generator state (seed and counter, advancing
the counter), so `clgrad.manual_seed` makes a run repeat and no kernel runs for a coin flip."""
from __future__ import annotations

import numbers
import threading

import numpy as np

from ..dtypes import uint8
from ..nn import functional as F
from ..tensor import Tensor
from ..tensor.creation import from_numpy, tensor
from ..tensor.random import default_generator

__all__ = ["Compose", "ToTensor", "PILToTensor", "Normalize", "RandomCrop", "CenterCrop",
           "RandomHorizontalFlip", "RandomVerticalFlip", "Resize", "Lambda"]


_rng_lock = threading.Lock()      # DataLoader workers are threads: one counter step each
_M64 = (1 << 64) - 1


def _draw() -> int:
    """One 64-bit draw from clgrad's default generator state (seed, counter), advancing the
    counter. SplitMix64's finaliser mixes the pair: a few integer operations, where building a
    seeded numpy generator per draw cost ~100 us."""
    with _rng_lock:
        seed, offset = default_generator.get_state()
        default_generator.set_state((seed, offset + 1))
    z = (seed * 0xD1B54A32D192ED03 + (offset + 1) * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _randint(n: int) -> int:
    """Uniform in range(n) (the modulo bias of a 64-bit draw is below 2**-40 for images)."""
    return _draw() % n


def _random() -> float:
    """Uniform in [0, 1)."""
    return (_draw() >> 11) * (1.0 / (1 << 53))


def _as_array(img) -> np.ndarray:
    if isinstance(img, np.ndarray):
        return img
    if hasattr(img, "getbands") or hasattr(img, "__array_interface__"):   # a PIL image
        return np.asarray(img)
    raise TypeError(f"expected a numpy array, PIL image or clgrad Tensor, got "
                    f"{type(img).__name__}")


def _pair(size, name):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    size = tuple(int(s) for s in size)
    if len(size) == 1:
        return size[0], size[0]
    if len(size) != 2:
        raise ValueError(f"{name}: size must be an int or a pair (h, w), got {size}")
    return size


class _Staged:
    """ToTensor's output kept on the host inside Compose: a float (C, H, W) numpy array."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


def _hw(img):
    """(height, width) of a HWC/HW host image, a staged CHW array or a (..., H, W) tensor."""
    if isinstance(img, (Tensor, _Staged)):
        shape = img.shape if isinstance(img, Tensor) else img.array.shape
        return shape[-2], shape[-1]
    return img.shape[0], img.shape[1]


def _crop(img, top, left, h, w):
    if isinstance(img, Tensor):
        return img[..., top:top + h, left:left + w]
    if isinstance(img, _Staged):
        return _Staged(img.array[..., top:top + h, left:left + w])
    return img[top:top + h, left:left + w]


class Compose:
    """Apply transforms in order.

    Args:
        transforms: a list of callables.

    Example:
        >>> t = Compose([RandomCrop(32, padding=4), ToTensor(), Normalize((0.5,), (0.5,))])
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        staged = False
        for t in self.transforms:
            if isinstance(t, ToTensor):
                img, staged = _Staged(t._host(img)), True
                continue
            if staged and not getattr(t, "_host_ok", False):
                img, staged = from_numpy(np.ascontiguousarray(img.array)), False
            img = t(img)
        return from_numpy(np.ascontiguousarray(img.array)) if staged else img

    def __repr__(self):
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class ToTensor:
    """A (H, W[, C]) numpy array or PIL image -> a (C, H, W) tensor; uint8 is scaled to float32
    in [0, 1] (other dtypes keep their values and dtype, as in torchvision).

    The layout change and scaling run on the host: the data becomes a tensor here."""

    def _host(self, pic) -> np.ndarray:
        if isinstance(pic, Tensor):
            raise TypeError("ToTensor: pic should be a numpy array or PIL image, got a Tensor")
        arr = _as_array(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"ToTensor: pic should be 2 or 3 dimensional, got {arr.ndim} dims")
        arr = arr.transpose(2, 0, 1)                     # (H, W, C) -> (C, H, W)
        if arr.dtype == np.uint8:
            return np.ascontiguousarray(arr, dtype=np.float32) / np.float32(255)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        return np.ascontiguousarray(arr)

    def __call__(self, pic):
        return from_numpy(self._host(pic))

    def __repr__(self):
        return "ToTensor()"


class PILToTensor:
    """A (H, W[, C]) numpy array or PIL image -> a (C, H, W) tensor of the same dtype, unscaled."""

    def __call__(self, pic):
        arr = _as_array(pic)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        return from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    def __repr__(self):
        return "PILToTensor()"


class Normalize:
    """(x - mean) / std per channel of a float (C, H, W) or (..., C, H, W) tensor.

    On a tensor this is two broadcast tensor ops; inside Compose after ToTensor it runs on the
    host array before the tensor is made.

    Args:
        mean, std: one value per channel.
        inplace: write into the input tensor.
    """

    _host_ok = True

    def __init__(self, mean, std, inplace: bool = False):
        self.mean = tuple(float(m) for m in np.atleast_1d(mean))
        self.std = tuple(float(s) for s in np.atleast_1d(std))
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std evaluated to zero after conversion to float "
                             f"({self.std}), leading to division by zero.")
        self.inplace = inplace

    def __call__(self, x):
        if isinstance(x, _Staged):
            a = x.array
            if not np.issubdtype(a.dtype, np.floating):
                raise TypeError(f"Normalize: input tensor should be a float tensor, got "
                                f"{a.dtype}")
            shape = (-1, 1, 1)
            mean = np.asarray(self.mean, dtype=a.dtype).reshape(shape)
            std = np.asarray(self.std, dtype=a.dtype).reshape(shape)
            return _Staged((a - mean) / std)
        if not isinstance(x, Tensor):
            raise TypeError(f"Normalize: expected a Tensor, got {type(x).__name__} "
                            f"(put ToTensor() before Normalize)")
        if not x.is_floating_point():
            raise TypeError(f"Normalize: input tensor should be a float tensor, got {x.dtype}")
        if x.ndim < 3:
            raise ValueError(f"Normalize: expected a tensor of shape (..., C, H, W), got "
                             f"{tuple(x.shape)}")
        mean = tensor(self.mean, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        std = tensor(self.std, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        if self.inplace:
            return x.sub_(mean).div_(std)
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomCrop:
    """Crop a random (h, w) window, after optional padding.

    Host images are padded with numpy, tensors with F.pad; the window is a slice (a view).

    Args:
        size: int or (h, w) of the crop.
        padding: int, (left/right, top/bottom) or (left, top, right, bottom) pixels to add.
        pad_if_needed: pad an image smaller than `size` up to it.
        fill: value of constant padding.
        padding_mode: 'constant', 'edge', 'reflect' or 'symmetric'.
    """

    _host_ok = True
    _np_modes = {"constant": "constant", "edge": "edge", "reflect": "reflect",
                 "symmetric": "symmetric"}
    _tensor_modes = {"constant": "constant", "edge": "replicate", "reflect": "reflect"}

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant"):
        self.size = _pair(size, "RandomCrop")
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        if padding_mode not in self._np_modes:
            raise ValueError(f"RandomCrop: padding_mode must be constant, edge, reflect or "
                             f"symmetric, got {padding_mode!r}")
        self.padding_mode = padding_mode

    @staticmethod
    def _ltrb(padding):
        if isinstance(padding, numbers.Number):
            return (int(padding),) * 4
        p = [int(v) for v in padding]
        if len(p) == 1:
            return (p[0],) * 4
        if len(p) == 2:
            return p[0], p[1], p[0], p[1]
        if len(p) == 4:
            return tuple(p)
        raise ValueError(f"RandomCrop: padding must be an int or 1, 2 or 4 ints, got {padding}")

    def _pad(self, img, left, top, right, bottom):
        if not (left or top or right or bottom):
            return img
        if isinstance(img, Tensor):
            mode = self._tensor_modes.get(self.padding_mode)
            if mode is None:
                raise NotImplementedError("RandomCrop: padding_mode='symmetric' is not "
                                          "supported on tensors")
            value = float(self.fill) if mode == "constant" else None
            squeeze = img.ndim == 3 and mode != "constant"   # F.pad's reflect wants a batch dim
            x = img.unsqueeze(0) if squeeze else img
            x = F.pad(x, (left, right, top, bottom), mode=mode, value=value)
            return x.squeeze(0) if squeeze else x
        arr = img.array if isinstance(img, _Staged) else img
        spatial = ((top, bottom), (left, right))
        widths = ((0, 0),) * (arr.ndim - 2) + spatial if isinstance(img, _Staged) else \
            spatial + ((0, 0),) * (arr.ndim - 2)
        if self.padding_mode == "constant":            # np.pad's generality costs ~100 us
            out = np.full(tuple(n + lo + hi for n, (lo, hi) in zip(arr.shape, widths)),
                          self.fill, dtype=arr.dtype)
            out[tuple(slice(lo, lo + n) for n, (lo, _) in zip(arr.shape, widths))] = arr
        else:
            out = np.pad(arr, widths, mode=self._np_modes[self.padding_mode])
        return _Staged(out) if isinstance(img, _Staged) else out

    def __call__(self, img):
        if not isinstance(img, (Tensor, _Staged)):
            img = _as_array(img)
        if self.padding is not None:
            img = self._pad(img, *self._ltrb(self.padding))
        th, tw = self.size
        h, w = _hw(img)
        if self.pad_if_needed and w < tw:
            img = self._pad(img, tw - w, 0, tw - w, 0)
        if self.pad_if_needed and h < th:
            img = self._pad(img, 0, th - h, 0, th - h)
        h, w = _hw(img)
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the "
                             f"input image size {(h, w)}")
        top = _randint(h - th + 1)
        left = _randint(w - tw + 1)
        return _crop(img, top, left, th, tw)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class CenterCrop:
    """Crop the central (h, w) window (rounding the offsets as torchvision does); an image
    smaller than the crop is padded with zeros first."""

    _host_ok = True

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def __call__(self, img):
        if not isinstance(img, (Tensor, _Staged)):
            img = _as_array(img)
        th, tw = self.size
        h, w = _hw(img)
        if th > h or tw > w:
            pads = ((tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                    (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0)
            img = RandomCrop(1)._pad(img, *pads)
            h, w = _hw(img)
        top = int(round((h - th) / 2.0))
        left = int(round((w - tw) / 2.0))
        return _crop(img, top, left, th, tw)

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


class RandomHorizontalFlip:
    """Mirror left-right with probability p (a reversed numpy view, or Tensor.flip)."""

    _host_ok = True
    _axis = "w"

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, img):
        if not isinstance(img, (Tensor, _Staged)):
            img = _as_array(img)
        if not _random() < self.p:
            return img
        if isinstance(img, Tensor):
            return img.flip(-1 if self._axis == "w" else -2)
        if isinstance(img, _Staged):
            a = img.array
            return _Staged(a[..., ::-1] if self._axis == "w" else a[..., ::-1, :])
        return img[:, ::-1] if self._axis == "w" else img[::-1]

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability p."""

    _axis = "h"


def _resize_weights(n_in: int, n_out: int, antialias: bool) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling with half-pixel centres. With antialias,
    when shrinking the triangle filter widens by the scale (a low-pass filter, the resampling
    of PIL and of torch's antialiased interpolate); otherwise it is plain bilinear
    (align_corners=False). Each row sums to 1 over the inputs it reaches."""
    scale = n_in / n_out
    width = max(scale, 1.0) if antialias else 1.0
    out = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(center - width + 0.5), 0)
        hi = min(int(center + width + 0.5), n_in)
        x = np.arange(lo, hi)
        w = np.clip(1.0 - np.abs((x - center + 0.5) / width), 0.0, None)
        out[i, lo:hi] = w / w.sum()
    return out


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """torch's 'nearest': source floor(i * n_in / n_out)."""
    return np.minimum(np.floor(np.arange(n_out) * (n_in / n_out)).astype(np.int64), n_in - 1)


class Resize:
    """Resize an image to `size`.

    Host images (H, W[, C]) and arrays staged inside Compose are resampled with numpy (the
    data pipeline, before the tensor exists); tensors (..., H, W) with tensor ops: bilinear is
    two matrix products with the resampling weights, nearest is two index_selects. uint8 images
    are rounded back to uint8.

    Args:
        size: (h, w), or an int: the smaller edge becomes `size`, keeping the aspect ratio.
        interpolation: 'bilinear' (default) or 'nearest' (torch's rule, floor(i * in / out)).
        max_size: the longer edge after an int `size` is at most this.
        antialias: low-pass filter when shrinking (default True, as torchvision; this is PIL's
            and torch's antialiased resampling, so results match torch's
            `interpolate(..., antialias=True)` to float rounding and PIL's to about one grey
            level).
    """

    _host_ok = True

    def __init__(self, size, interpolation: str = "bilinear", max_size=None, antialias=True):
        self.size = size
        self.interpolation = str(getattr(interpolation, "value", interpolation)).lower()
        if self.interpolation not in ("bilinear", "nearest"):
            raise NotImplementedError(f"Resize: interpolation={interpolation!r} is not "
                                      f"implemented; use 'bilinear' or 'nearest'")
        self.max_size = max_size
        self.antialias = antialias

    def _target(self, h, w):
        if isinstance(self.size, numbers.Number) or len(self.size) == 1:
            s = int(self.size if isinstance(self.size, numbers.Number) else self.size[0])
            short, long = (h, w) if h <= w else (w, h)
            new_short, new_long = s, int(s * long / short)
            if self.max_size is not None and new_long > self.max_size:
                new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
            return (new_short, new_long) if h <= w else (new_long, new_short)
        return _pair(self.size, "Resize")

    def _host(self, a, hw_axes, th, tw):
        ha, wa = hw_axes
        h, w = a.shape[ha], a.shape[wa]
        if self.interpolation == "nearest":
            a = np.take(a, _nearest_index(h, th), axis=ha)
            return np.take(a, _nearest_index(w, tw), axis=wa)
        wh = _resize_weights(h, th, self.antialias).astype(np.float32)
        ww = _resize_weights(w, tw, self.antialias).astype(np.float32)
        x = np.moveaxis(a.astype(np.float32, copy=False), (ha, wa), (-2, -1))
        y = np.moveaxis(wh @ x @ ww.T, (-2, -1), (ha, wa))            # (..., th, tw)
        if a.dtype == np.uint8:
            return np.clip(np.rint(y), 0, 255).astype(np.uint8)
        return y.astype(a.dtype, copy=False)

    def _tensor(self, x, th, tw):
        h, w = x.shape[-2], x.shape[-1]
        if self.interpolation == "nearest":
            ih = tensor(_nearest_index(h, th), device=x.device)
            iw = tensor(_nearest_index(w, tw), device=x.device)
            return x.index_select(-2, ih).index_select(-1, iw)
        dtype = x.dtype if x.is_floating_point() else None
        xf = x if dtype is not None else x.float()
        wh = tensor(_resize_weights(h, th, self.antialias), dtype=xf.dtype, device=x.device)
        ww = tensor(_resize_weights(w, tw, self.antialias).T, dtype=xf.dtype, device=x.device)
        y = wh @ xf @ ww                                        # (..., th, w) -> (..., th, tw)
        if dtype is None:
            y = y.round()
            y = (y.clamp(0, 255) if x.dtype == uint8 else y).to(x.dtype)
        return y

    def __call__(self, img):
        if not isinstance(img, (Tensor, _Staged)):
            img = _as_array(img)
        h, w = _hw(img)
        th, tw = self._target(h, w)
        if (th, tw) == (h, w):
            return img
        if isinstance(img, Tensor):
            return self._tensor(img, th, tw)
        if isinstance(img, _Staged):
            return _Staged(self._host(img.array, (-2, -1), th, tw))
        return self._host(img, (0, 1), th, tw)

    def __repr__(self):
        return (f"Resize(size={self.size}, interpolation={self.interpolation}, "
                f"max_size={self.max_size}, antialias={self.antialias})")


class Lambda:
    """Wrap a user function as a transform."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return "Lambda()"
