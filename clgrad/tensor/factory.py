"""Building new tensors of a given class from host data and ranges: the low end of tensor/, used
by the mixins (through `self._plain`) and by the public creation functions alike."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt
from .. import ops
from ..dtypes import get_default_dtype, to_dtype
from ..runtime import get_device


def infer_dtype(data, arr: np.ndarray):
    if isinstance(data, (np.ndarray, np.generic)):
        return dt.from_numpy_dtype(arr.dtype)
    if arr.dtype.kind == "f":
        return get_default_dtype()
    if arr.dtype.kind in "iu":
        return dt.int64
    if arr.dtype.kind == "b":
        return dt.bool_
    if arr.dtype == object:
        raise TypeError(f"can't build a tensor from {type(data).__name__} data of mixed or "
                        "unsupported element types")
    return dt.from_numpy_dtype(arr.dtype)


def from_host(cls, data, dtype=None, device=None):
    """A new `cls` tensor holding a copy of host `data` (nested lists, numbers, numpy arrays)."""
    try:
        arr = np.asarray(data)
    except ValueError as e:
        raise ValueError(f"expected a rectangular nested sequence of numbers: {e}") from None
    d = to_dtype(dtype) if dtype is not None else infer_dtype(data, arr)
    return cls._from_numpy(arr, d, get_device(device))


def arange(cls, start, end=None, step=1, dtype=None, device=None):
    """A new `cls` tensor of start, start + step, ... below end (above it for a negative step)."""
    if end is None:
        start, end = 0, start
    vals = [start, end, step]
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if dtype is None:
        dtype = get_default_dtype() if any(isinstance(v, float) or
                                           getattr(v, "dtype", None) in (np.float32, np.float64)
                                           for v in vals) else dt.int64
    d = to_dtype(dtype)
    n = max(0, math.ceil((float(end) - float(start)) / float(step)))
    if (step > 0 and start > end) or (step < 0 and start < end):
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    t = cls._empty((n,), d, get_device(device))
    compute = "double" if d.ctype == "double" else ("float" if d.is_floating else "long")
    conv = float if compute != "long" else int
    ops.launch_ew_raw(f"arange_{d.short}", "x0 + (clg_t)clg_gid * x1", t, compute, (),
                      [(compute, conv(start)), (compute, conv(step))])
    return t
