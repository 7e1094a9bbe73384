"""Gradient clipping; the norms and scaling stay on the device (no host sync)."""
from __future__ import annotations

import math

from ... import autograd
from ...tensor import Tensor
from ...tensor.creation import tensor
from ...tensor.pointwise import where
from ...view import View


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _flat_runs(tensors):
    """The same elements as `tensors`, as few tensors as possible: contiguous tensors that lie
    back to back in one buffer (a parameter arena's gradients, clgrad/optim/optimizer.py) become
    one flat view, so the norm and the scaling take one launch per run, not per parameter."""
    groups, runs = {}, []
    for t in tensors:
        if t._lazy is None and t._view.is_contiguous():
            groups.setdefault((id(t._buf), t.dtype), []).append(t)
        else:
            runs.append(t)
    for group in groups.values():
        group.sort(key=lambda t: t._view.offset)
        start = end = None
        for t in group + [None]:
            if t is not None and t._view.offset == end:
                end += t.numel()
                continue
            if start is not None:
                runs.append(first if end - start == first.numel() else
                            Tensor._make(first._buf, View.contiguous((end - start,), start),
                                         first.dtype))
            if t is not None:
                first, start, end = t, t._view.offset, t._view.offset + t.numel()
    return runs


def _power_sum(g, p):
    """max |g| for p = inf, else sum |g|^p (the root is taken once over all tensors)."""
    if p == math.inf:
        return g.abs().amax()
    if p == 2:
        return (g * g).sum()
    if p == 1:
        return g.abs().sum()
    a = g.abs()
    return where(a > 0, (a.log() * p).exp(), 0).sum()


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None):
    """The norm of all `tensors` together, as a 0-d device tensor."""
    p = float(norm_type)
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return tensor(0.0)
    with autograd.no_grad():
        parts = [_power_sum(t.detach(), p).to(tensors[0].dtype) for t in _flat_runs(tensors)]
        total = parts[0]
        for part in parts[1:]:
            total = total.maximum(part) if p == math.inf else total + part
        if p == 2:
            total = total.sqrt()
        elif p not in (1, math.inf):
            total = (total.log() / p).exp()
    if error_if_nonfinite:
        # the one place a host read is wanted: the caller asked for an exception
        if not bool(total.isfinite().item()):
            raise RuntimeError(f"The total norm of order {p} for gradients from `parameters` "
                               "is non-finite, so it cannot be clipped. To disable this error "
                               "and scale the gradients by the non-finite norm anyway, set "
                               "`error_if_nonfinite=False`")
    return total


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None):
    """Scale all gradients by min(1, max_norm / (total_norm + 1e-6)) in place; returns the
    total norm (0-d tensor on the device)."""
    grads = _grads(parameters)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if not grads:
        return total
    with autograd.no_grad():
        coef = (float(max_norm) / (total + 1e-6)).minimum(1.0)
        for g in _flat_runs(grads):
            g.mul_(coef.to(g.dtype))
    return total


clip_grad_norm = clip_grad_norm_


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] in place."""
    v = float(clip_value)
    with autograd.no_grad():
        for g in _grads(parameters):
            g.clamp_(-v, v)
