"""Movement ops: a new View over the same buffer, no kernel; the gradient of a view."""
from __future__ import annotations

from .base import copy_into


def view_op(ctx, x, view: View, name: str, backward):
    """x seen through `view` (a forward for Tensor._apply): shares x's buffer and base."""
    lz = x._lazy
    if lz is not None and lz.prod:
        out = x._plain._pending_view(lz, view)      # a view of a pending product stays pending
    else:
        out = x._plain._make(x._buf, view, x.dtype)
    out._base = x._base if x._base is not None else x
    return out, name, backward


def scatter_view(ctx, g, shape, view_fn):
    """zeros(shape) with `view_fn(view)` of it set to g: the gradient of a non-overlapping view
    (a forward for Tensor._apply)."""
    T = g._plain
    z = T._zeros(shape, g.dtype, g.device)
    target = T._make(z._buf, view_fn(z._view), z.dtype)
    copy_into(target, g)
    return z, "ViewScatterBackward0", lambda c, gg: (_view_of(gg, view_fn),)


def _view_of(t, view_fn):
    if not t.is_contiguous():
        return t._plain._make(*_strided(t.contiguous(), view_fn))
    return view_op(None, t, view_fn(t._view), "AsStridedBackward0", None)[0]


def _strided(t, view_fn):
    return t._buf, view_fn(t._view), t.dtype

