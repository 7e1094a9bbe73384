"""Tensor creation: from host data, filled, ranges, identity, and random draws."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from .. import ops
from ..dtypes import get_default_dtype, to_dtype
from . import factory
from .random import fill_random
from ..runtime import get_device
from .conversion import _shape_arg
from .tensor import Tensor


def _dev(device):
    return get_device(device)


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, numbers, numpy arrays, tensors)."""
    if isinstance(data, Tensor):
        out = data.detach().to(device=device if device is not None else data.device,
                               dtype=dtype, copy=True)
        return out.requires_grad_(requires_grad)
    t = factory.from_host(Tensor, data, dtype, device)
    return t.requires_grad_(requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if (dtype or device) else data
    return tensor(data, dtype=dtype, device=device)


def from_numpy(arr: np.ndarray, device=None) -> Tensor:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    return Tensor._from_numpy(arr, dt.from_numpy_dtype(arr.dtype), _dev(device))


def _new(size, dtype, device, requires_grad, value=None):
    d = to_dtype(dtype)
    t = Tensor._empty(_shape_arg(size), d, _dev(device))
    if value is not None:
        ops.copy_into(t, value)
    return t.requires_grad_(requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, **_):
    return _new(size, dtype, device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, **_):
    return _new(size, dtype, device, requires_grad, 0)


def ones(*size, dtype=None, device=None, requires_grad=False, **_):
    return _new(size, dtype, device, requires_grad, 1)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False, **_):
    if dtype is None:
        dtype = dt.result_type(fill_value)
    return _new((size,), dtype, device, requires_grad, fill_value)


def _like(x, dtype, device):
    return (to_dtype(dtype) if dtype is not None else x.dtype,
            device if device is not None else x.device)


def empty_like(x, *, dtype=None, device=None, requires_grad=False, **_):
    d, dev = _like(x, dtype, device)
    return _new((x.shape,), d, dev, requires_grad)


def zeros_like(x, *, dtype=None, device=None, requires_grad=False, **_):
    d, dev = _like(x, dtype, device)
    return _new((x.shape,), d, dev, requires_grad, 0)


def ones_like(x, *, dtype=None, device=None, requires_grad=False, **_):
    d, dev = _like(x, dtype, device)
    return _new((x.shape,), d, dev, requires_grad, 1)


def full_like(x, fill_value, *, dtype=None, device=None, requires_grad=False, **_):
    d, dev = _like(x, dtype, device)
    return _new((x.shape,), d, dev, requires_grad, fill_value)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Values start, start + step, ... below end (above it for a negative step)."""
    return factory.arange(Tensor, start, end, step, dtype, device).requires_grad_(requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """`steps` evenly spaced values from start to end inclusive (symmetric, as PyTorch)."""
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    d = to_dtype(dtype) if dtype is not None else get_default_dtype()
    t = Tensor._empty((steps,), d, _dev(device))
    if steps == 0:
        return t.requires_grad_(requires_grad)
    step = (float(end) - float(start)) / (steps - 1) if steps > 1 else 0.0
    if steps == 1:
        end = start      # the count-down half would otherwise return `end`
    compute = "double" if d.ctype == "double" or not d.is_floating else "float"
    if compute == "double" and not t.device.has_fp64:
        compute = "float"
    # the first half counts up from start, the second half down from end
    expr = "clg_gid < x3 ? x0 + (clg_t)clg_gid * x2 : x1 - (clg_t)(x4 - clg_gid) * x2"
    ops.launch_ew_raw(f"linspace_{d.short}", expr, t, compute, (),
                      [(compute, float(start)), (compute, float(end)), (compute, step),
                       ("long", steps // 2), ("long", steps - 1)])
    return t.requires_grad_(requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    d = to_dtype(dtype)
    t = Tensor._empty((n, m), d, _dev(device))
    ops.launch_ew_raw(f"eye_{d.short}", "(clg_t)(clg_gid / x0 == clg_gid % x0)", t, d.compute,
                      (), [("long", max(m, 1))])
    return t.requires_grad_(requires_grad)


def _random(size, kind, a, b, dtype, device, requires_grad, generator):
    d = to_dtype(dtype)
    if kind != "randint" and not d.is_floating:
        raise RuntimeError(f"\"{kind}\" draws are not implemented for '{ops.torch_name(d)}'")
    t = Tensor._empty(_shape_arg(size), d, _dev(device))
    fill_random(t, kind, a, b, generator)
    return t.requires_grad_(requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform draws in [0, 1)."""
    return _random(size, "uniform", 0.0, 1.0, dtype, device, requires_grad, generator)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal draws."""
    return _random(size, "normal", 0.0, 1.0, dtype, device, requires_grad, generator)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False):
    """Integers uniform in [low, high): randint(high, size), randint(high, size=...) or
    randint(low, high, size)."""
    if size is None:
        low, high, size = 0, low, high
    elif high is None:                      # randint(high, size=...)
        low, high = 0, low
    if high is None or size is None:
        raise TypeError("randint() needs high and size")
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                           f"from={low} >= to={high}")
    return _random((tuple(size),), "randint", low, high, dtype or dt.int64, device,
                   requires_grad, generator)


def rand_like(x, *, dtype=None, device=None, requires_grad=False, generator=None):
    d, dev = _like(x, dtype, device)
    return _random((x.shape,), "uniform", 0.0, 1.0, d, dev, requires_grad, generator)


def randn_like(x, *, dtype=None, device=None, requires_grad=False, generator=None):
    d, dev = _like(x, dtype, device)
    return _random((x.shape,), "normal", 0.0, 1.0, d, dev, requires_grad, generator)


def randint_like(x, low, high=None, *, dtype=None, device=None, requires_grad=False,
                 generator=None):
    if high is None:
        low, high = 0, low
    d, dev = _like(x, dtype, device)
    return _random((x.shape,), "randint", low, high, d, dev, requires_grad, generator)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0..n-1: argsort of uniform keys, all on the device."""
    keys = rand(n, generator=generator, dtype=dt.float32, device=device)
    if not hasattr(keys, "argsort"):
        raise NotImplementedError("randperm needs argsort (autograd issue)")
    return keys.argsort().to(to_dtype(dtype) if dtype else dt.int64)
