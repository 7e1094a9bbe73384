"""Floor 2, the Array: a device buffer seen through a View, with a dtype. No autograd and no
Tensor here: this is the seam where laziness, fusion and step capture can live later. Tensor
subclasses Array, so the ops floor takes and returns Arrays and works on Tensors unchanged."""
from __future__ import annotations

import math

import numpy as np

from . import dtypes as dt
from .dtypes import DType
from .runtime import Buffer, Device, check_dtype
from .view import View


# contiguous View by shape: most outputs are fresh contiguous tensors of a shape seen before
_contiguous: dict = {}


class Size(tuple):
    """A tuple of sizes that prints as PyTorch's `torch.Size`."""

    def __repr__(self) -> str:
        return f"clgrad.Size({list(self)})"

    def numel(self) -> int:
        return math.prod(self)


class Array:
    """buffer + view + dtype. `_make` builds one over an existing buffer (a view costs no copy),
    `_empty` allocates, `_from_numpy` uploads."""

    @classmethod
    def _make(cls, buf: Buffer, view: View, dtype: DType) -> "Array":
        a = object.__new__(cls)
        a._buf = buf
        a._view = view
        a.dtype = dtype
        return a

    @classmethod
    def _empty(cls, shape, dtype: DType, device: Device) -> "Array":
        check_dtype(device, dtype)
        view = _contiguous.get(shape) if isinstance(shape, tuple) else None
        if view is None:
            shape = tuple(int(s) for s in shape)
            view = View.contiguous(shape)
            if len(_contiguous) >= 4096:
                _contiguous.clear()
            _contiguous[shape] = view
        return cls._make(Buffer(device, view.numel * dtype.itemsize), view, dtype)

    @classmethod
    def _from_numpy(cls, arr: np.ndarray, dtype: DType, device: Device) -> "Array":
        arr = np.asarray(arr)
        if dtype is dt.bfloat16:
            host = dt.bf16_bits(arr)
        else:
            host = np.ascontiguousarray(arr.astype(dtype.np, copy=False))
        if dtype is dt.bool_:
            host = host.view(np.uint8)
        a = cls._empty(arr.shape, dtype, device)
        a._buf.write(host)
        return a

    @property
    def device(self) -> Device:
        return self._buf.device

    @property
    def shape(self) -> Size:
        return Size(self._view.shape)

    @property
    def ndim(self) -> int:
        return len(self._view.shape)

    def numel(self) -> int:
        return self._view.numel

    def is_contiguous(self, memory_format=None) -> bool:
        return self._view.is_contiguous()

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.numel() * self.dtype.itemsize
