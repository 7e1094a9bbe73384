"""Stochastic gradient descent with momentum, dampening and Nesterov momentum."""
from __future__ import annotations

from .optimizer import Optimizer, _check, _flags, _grad_lines


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), PyTorch's formulation.

    Update rule, with d = -g when maximizing and g otherwise:

        d      = d + weight_decay * p                       (if weight_decay != 0)
        b      = d                                           (first step)
        b      = momentum * b + (1 - dampening) * d          (later steps)
        d      = d + momentum * b   if nesterov   else   b   (if momentum != 0)
        p      = p - lr * d

    Args:
        params: iterable of tensors or dicts defining parameter groups.
        lr: learning rate (default 1e-3). momentum, dampening, weight_decay: default 0.
        nesterov: Nesterov momentum (needs momentum > 0 and zero dampening).
        maximize: ascend the objective instead of descending it.
        foreach, differentiable, fused: accepted for PyTorch compatibility (every group is
            updated by one fused kernel per arena regardless).

    Example:
        >>> opt = clgrad.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    _has_step = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        _check(lr >= 0.0, f"Invalid learning rate: {lr}")
        _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _state_names(self, group):
        return {"momentum_buffer": 0.0} if group["momentum"] != 0 else {}

    def _state_keys(self, group):
        return ["momentum_buffer"]

    def _update(self, group):
        lines = [_grad_lines(group)]
        if group["momentum"] != 0:
            lines.append("momentum_buffer = first != (clg_t)0 ? d : "
                         "momentum * momentum_buffer + one_minus_damp * d;")
            lines.append("d = d + momentum * momentum_buffer;" if group["nesterov"]
                         else "d = momentum_buffer;")
        lines.append("p = p + neg_lr * d;")
        flags = _flags(group, "maximize", "weight_decay", "momentum", "nesterov")
        return (f"sgd_{flags}", "\n".join(lines),
                ("neg_lr", "momentum", "one_minus_damp", "weight_decay", "first"))

    def _scalars(self, group, step, arena, i):
        return {"neg_lr": -group["lr"], "momentum": group["momentum"],
                "one_minus_damp": 1 - group["dampening"], "weight_decay": group["weight_decay"],
                "first": 1.0 if step == 1 else 0.0}

    def _run_key(self, arena, i):
        return min(arena.steps[i], 1)

    def _implied_step(self, st):
        return 1 if st.get("momentum_buffer") is not None else 0
