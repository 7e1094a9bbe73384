"""`apply`: the one path of a table op from Tensor to the op floor and onto the tape."""
from __future__ import annotations

import functools

from .. import autograd, ops
from ..array import Array
from ..autograd import autocast_mode
from ..autograd.grad_mode import _set_enabled as _set_grad_enabled
from ..autograd.graph import _record
from .autocast import POLICY, wanted

# grad_fn names by record name, computed once: the hot path formats no strings
_GRAD_NAMES: dict = {}


class OpContext(autograd.Context):
    """Context of a table op: saved inputs by position (tensors or Python scalars) and output."""

    def arg(self, i):
        v = self._args[i]
        return self._unpack(self._slot[i]) if v is None else v

    def out(self):
        return self._unpack(-1)


def _grad_name(name: str) -> str:
    g = _GRAD_NAMES.get(name)
    if g is None:
        g = _GRAD_NAMES[name] = "".join(p.capitalize() for p in name.split("_")) + "Backward0"
    return g


def record_op(name, backward, save, args, out):
    """Put the node of a table op on the tape: saved values by the record's `save` letters."""
    inputs, needs, consts, saved, slot = [], [], [], [], {}
    keep_x = "x" in save
    for i, a in enumerate(args):
        if isinstance(a, Array):
            inputs.append(a)
            needs.append(a.requires_grad)
            consts.append(None)
            if keep_x:
                slot[i] = len(saved)
                saved.append(a)
        else:
            inputs.append(None)
            needs.append(False)
            consts.append(a)
    if "o" in save:
        saved.append(out)
    ctx = OpContext(needs)
    ctx._args = tuple(consts)
    ctx._slot = slot
    ctx._save(saved)
    _record(_grad_name(name), backward, ctx, tuple(inputs), [out])


def apply(op, *args, **kw):
    """The one differentiable path of a Tensor call: run `op` forward on the device (floor 3)
    and, when grad is enabled and an input requires grad, record its node (floor 4). The hook
    for autocast and step capture.

    `op` is an elementwise record (`ops.Op`; keyword: `out`) or a forward function
    `op(ctx, *args, **kw) -> (output(s), grad_fn name, backward)`: `ctx` is None when nothing
    is recorded, else a Context the forward saves into (its Tensor calls are not recorded).

    Inside an autocast region an op on autocast's lists (tensor/autocast.py) gets its inputs
    cast first (recorded casts) and runs with autocast off inside."""
    mode = autocast_mode._current()
    if mode is not None:
        kind = POLICY.get(op)
        if kind is not None:
            return autocast_run(kind, apply, (op, *args), kw, mode)
    if isinstance(op, ops.Op):
        res = ops.ew(op, *args, **kw)
        if op.backward is not None and autograd.needs_grad(*args):
            record_op(op.grad_name or op.name, op.backward, op.save, args, res)
        return res
    if not autograd.needs_grad(*args):
        return op(None, *args, **kw)[0]
    ctx = autograd.Context([isinstance(a, Array) and a.requires_grad for a in args])
    # grad is on here (needs_grad said so): off for the forward's own Tensor calls, without a
    # no_grad object per op
    _set_grad_enabled(False)
    try:
        res, name, backward = op(ctx, *args, **kw)
    finally:
        _set_grad_enabled(True)
    if backward is not None:
        autograd.record(name, backward, ctx, args, res if isinstance(res, tuple) else [res])
    return res


def cast(x, dtype):
    """x converted to `dtype` on the device, recorded as PyTorch's ToCopyBackward0."""
    res = ops.cast(x, dtype)
    if dtype.is_floating and autograd.needs_grad(x):
        src = x.dtype
        record_op("to_copy", lambda ctx, g: (g.to(src),), "", (x,), res)
    return res


# ---- autocast ------------------------------------------------------------------------------------
def _autocast_cast(t, to):
    # a leaf that requires grad (a parameter) is cast once per region; its cast stays on the tape
    if not (autocast_mode._cache_on() and t.requires_grad and t._ctx is None):
        return cast(t, to)
    cache = autocast_mode.cast_cache()
    key = (id(t), to)
    hit = cache.get(key)
    if hit is not None and hit[0] is t and hit[1] == t._buf.version:
        return hit[2]
    out = cast(t, to)
    cache[key] = (t, t._buf.version, out)
    return out


def _autocast_arg(a, mode, kind):
    to = wanted(a, mode, kind) if isinstance(a, Array) else None
    return a if to is None else _autocast_cast(a, to)


def autocast_run(kind, fn, args, kw, mode):
    """fn(*args, **kw) with tensor inputs cast as autocast's `kind` says, and autocast off while
    it runs: its own Tensor calls keep the dtypes it was given (a PyTorch autocast kernel
    redispatches below autocast the same way)."""
    args = [_autocast_arg(a, mode, kind) for a in args]
    if kw:
        kw = {k: _autocast_arg(v, mode, kind) for k, v in kw.items()}
    autocast_mode._set(None)
    try:
        return fn(*args, **kw)
    finally:
        autocast_mode._set(mode)


def autocast_policy(kind):
    """Mark a floor-6 entry made of several ops (F.linear, F.conv2d, a loss, a norm) as on
    autocast's `kind` list ('low' or 'fp32'): inside an enabled region its tensor arguments are
    cast before it runs."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            mode = autocast_mode._current()
            if mode is None:
                return fn(*args, **kw)
            return autocast_run(kind, fn, args, kw, mode)
        return wrapper
    return deco
