"""The `out=` keyword of PyTorch's functional forms, with its rules: the result is written into
`out` (converted to out's dtype when the result's category allows it), an `out` of another shape
is resized (with PyTorch's deprecation warning unless it was empty), and autograd refuses it."""
from __future__ import annotations

import functools
import warnings

from .. import autograd, ops
from ..dtypes import torch_name
from ..runtime import Buffer
from ..view import View


def _tensors(args):
    for a in args:
        if hasattr(a, "_view"):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from _tensors(a)


def _short(dt) -> str:
    return torch_name(dt).split(".")[-1].capitalize()


def write_out(name, out, res):
    """Write the result `res` into `out` under PyTorch's rules and return `out`."""
    if res.dtype.category > out.dtype.category:
        raise RuntimeError(f"result type {_short(res.dtype)} can't be cast to the desired "
                           f"output type {_short(out.dtype)}")
    if res.device != out.device:
        raise RuntimeError(f"{name}(): Expected out tensor to be on device {res.device}, but "
                           f"got {out.device}")
    if tuple(out.shape) != tuple(res.shape):
        if out.numel():
            warnings.warn(f"An output with one or more elements was resized since it had shape "
                          f"{list(out.shape)}, which does not match the required output shape "
                          f"{list(res.shape)}. This behavior is deprecated, and in a future "
                          "PyTorch release outputs will not be resized unless they have zero "
                          "elements. You can explicitly reuse an out tensor t by resizing it, "
                          "inplace, to zero elements with t.resize_(0).", UserWarning,
                          stacklevel=3)
        view = View.contiguous(tuple(res.shape))
        out._buf = Buffer(out.device, max(view.numel, 1) * out.dtype.itemsize)
        out._view = view
    if res.numel():
        ops.copy_into(out, res)
    return out


def with_out(fn):
    """`fn` (a functional form) accepting `out=`: a tensor, or a tuple of tensors for a function
    returning several."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, out=None, **kwargs):
        if out is None:
            return fn(*args, **kwargs)
        if autograd.is_grad_enabled() and any(t.requires_grad for t in _tensors(args)):
            raise RuntimeError(f"{name}(): functions with out=... arguments don't support "
                               "automatic differentiation, but one of the arguments requires "
                               "grad.")
        res = fn(*args, **kwargs)
        if isinstance(res, tuple):
            if not isinstance(out, (tuple, list)) or len(out) != len(res):
                raise TypeError(f"{name}(): argument 'out' must be a tuple of {len(res)} "
                                "Tensors")
            for o, r in zip(out, res):
                write_out(name, o, r)
            return type(res)(*out) if hasattr(res, "_fields") else tuple(out)
        if not hasattr(out, "_view"):
            raise TypeError(f"{name}(): argument 'out' must be Tensor, not "
                            f"{type(out).__name__}")
        return write_out(name, out, res)
    return wrapper
