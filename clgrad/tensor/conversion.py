"""Tensor methods that leave the device or change its device or dtype."""
from __future__ import annotations

import numpy as np

from .. import ops
from .. import dtypes as dt
from ..dtypes import DType, to_dtype
from ..runtime import get_device, memory
from ..array import Array
from . import factory
from .apply import apply, cast
from .format import format_tensor


def _shape_arg(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    if len(size) == 1 and hasattr(size[0], "__iter__") and not hasattr(size[0], "_view"):
        size = tuple(size[0])
    out = []
    for s in size:
        s = int(s)
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{list(size)}")
        out.append(s)
    return tuple(out)


class ConversionMixin:
    """Tensor methods that leave the device (numpy, item, tolist, Python numbers) or change its
    device or dtype (to, casts, clone, contiguous, new_* constructors)."""

    # ---- out of the device -----------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        src = self if self._view.is_contiguous() else self.contiguous_nograd()
        out = np.empty(src.shape, dtype=np.uint8 if self.dtype is dt.bool_ else self.dtype.np)
        if out.size:
            src._buf.read(out, src._view.offset * self.dtype.itemsize)
        if self.dtype is dt.bfloat16:
            # numpy has no bfloat16: its values come out exactly, as float32
            return dt.bf16_values(out)
        return out.view(np.bool_) if self.dtype is dt.bool_ else out

    def contiguous_nograd(self) -> "Tensor":
        out = self._plain._empty(self.shape, self.dtype, self.device)
        return ops.copy_into(out, self)

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to "
                               "Scalar")
        return self.detach().numpy().reshape(()).item()

    def tolist(self):
        return self.detach().numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        a = self.detach().numpy()
        return a.astype(dtype) if dtype is not None else a

    def __repr__(self) -> str:
        return format_tensor(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        # as PyTorch: a 0-d tensor formats its value (f"{loss:.4f}"); others only with no spec
        if self.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.is_floating or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    # ---- device and dtype ------------------------------------------------------------------
    def to(self, *args, **kwargs) -> "Tensor":
        """to(device), to(dtype), to(device, dtype), to(other): a copy only where needed."""
        device, dtype_ = kwargs.get("device"), kwargs.get("dtype")
        copy = kwargs.get("copy", False)
        for a in args:
            if isinstance(a, self._plain):
                device, dtype_ = a.device, a.dtype
            elif isinstance(a, (DType, type)) or (isinstance(a, str) and a in dt._NAMES):
                dtype_ = a
            elif a is not None:
                device = a
        out = self
        if dtype_ is not None:
            target = to_dtype(dtype_)
            if target is not out.dtype:
                out = cast(out, target)
        if device is not None:
            dev = get_device(device)
            if dev != out.device:
                out = apply(_move, out, dev)
        if copy and out is self:
            out = self.clone()
        return out

    def type(self, dtype=None):
        if dtype is None:
            return f"clgrad.{ops.torch_name(self.dtype)}Tensor"
        return self.to(dtype)

    def float(self):
        return self.to(dt.float32)

    def double(self):
        return self.to(dt.float64)

    def half(self):
        return self.to(dt.float16)

    def bfloat16(self):
        return self.to(dt.bfloat16)

    def int(self):
        return self.to(dt.int32)

    def long(self):
        return self.to(dt.int64)

    def short(self):
        return self.to(dt.int16)

    def char(self):
        return self.to(dt.int8)

    def byte(self):
        return self.to(dt.uint8)

    def bool(self):
        return self.to(dt.bool_)

    def cpu(self):
        return self

    def cuda(self, *a, **k):
        raise RuntimeError("clgrad has no CUDA tensors; use .to('gpu') or .to('cl:N')")

    def clone(self, memory_format=None) -> "Tensor":
        return apply(_clone, self)

    def contiguous(self, memory_format=None) -> "Tensor":
        return self if self._view.is_contiguous() else self.clone()

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        if isinstance(data, Array):
            out = data.detach().to(device=device or self.device, dtype=dtype or self.dtype,
                                   copy=True)
        else:
            out = factory.from_host(self._plain, data, dtype or self.dtype,
                                    device or self.device)
        return out.requires_grad_(requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        t = self._plain._empty(_shape_arg(size), to_dtype(dtype) if dtype else self.dtype,
                          get_device(device) if device else self.device)
        return t.requires_grad_(requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return self.new_full(_shape_arg(size), 0, dtype=dtype, device=device,
                             requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return self.new_full(_shape_arg(size), 1, dtype=dtype, device=device,
                             requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        t = self._plain._full(_shape_arg((size,)), fill_value,
                         to_dtype(dtype) if dtype else self.dtype,
                         get_device(device) if device else self.device)
        return t.requires_grad_(requires_grad)


def _clone(ctx, x):
    out = ops.copy_into(x._plain._empty(x.shape, x.dtype, x.device), x)
    return out, "CloneBackward0", _pass_grad


def _pass_grad(ctx, g):
    return (g,)


def _move(ctx, x, dev):
    """x copied to another device through the host (devices of different platforms share no
    context, so a direct copy does not exist between them); the gradient moves back."""
    host = x.detach().numpy(force=True)
    memory.count("d2d")
    memory.count("d2d_bytes", host.nbytes)
    moved = x._plain._from_numpy(host, x.dtype, dev)
    src = x.device
    return moved, "ToCopyBackward0", lambda c, g: (g.to(src),)
