"""Movement ops: a new View over the same buffer, no kernel; the gradient of a view."""
from __future__ import annotations

from .. import autograd
from .base import copy_into


def view_op(x, view: View, name: str, backward):
    T = x._plain
    out = T._make(x._buf, view, x.dtype)
    out._base = x._base if x._base is not None else x
    if backward is not None and autograd.needs_grad(x):
        ctx = autograd.Context([True])
        autograd.record(name, backward, ctx, (x,), [out])
    return out


def scatter_view(g, shape, view_fn):
    """zeros(shape) with `view_fn(view)` of it set to g: the gradient of a non-overlapping view."""
    T = g._plain
    z = T._zeros(shape, g.dtype, g.device)
    target = T._make(z._buf, view_fn(z._view), z.dtype)
    copy_into(target, g.detach())
    if autograd.needs_grad(g):
        ctx = autograd.Context([True])
        autograd.record("ViewScatterBackward0",
                        lambda c, gg: (view_op(gg, view_fn(gg._view), "AsStridedBackward0", None)
                                       if gg.is_contiguous() else
                                       _strided_of(gg.contiguous(), view_fn),), ctx, (g,), [z])
    return z


def _strided_of(t, view_fn):
    T = t._plain
    return T._make(t._buf, view_fn(t._view), t.dtype)
