"""Rprop (sign-based, per-element step sizes) and ASGD (averaged SGD)."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, _check, _flags, _grad_lines


class Rprop(Optimizer):
    r"""Resilient backpropagation, PyTorch's formulation.

    Update rule, per element, with d = -g when maximizing and g otherwise:

        s        = d * prev
        eta      = etaplus if s > 0, etaminus if s < 0, else 1
        size     = clamp(size * eta, step_size_min, step_size_max)   (size starts at lr)
        d        = 0 where s < 0
        p        = p - sign(d) * size
        prev     = d

    Args: lr (default 1e-2), etas (etaminus, etaplus) = (0.5, 1.2),
    step_sizes (min, max) = (1e-6, 50), maximize.
    """

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 < etas[0] < 1.0 < etas[1], f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes),
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _state_names(self, group):
        return {"prev": 0.0, "step_size": float(group["lr"])}

    def _update(self, group):
        code = "\n".join([
            _grad_lines({"maximize": group["maximize"]}),
            "const clg_t s = d * prev;",
            "const clg_t eta = s > (clg_t)0 ? etaplus : (s < (clg_t)0 ? etaminus : (clg_t)1);",
            "step_size = fmin(fmax(step_size * eta, size_min), size_max);",
            "if (s < (clg_t)0)",
            "    d = (clg_t)0;",
            "p = p - sign(d) * step_size;",
            "prev = d;"])
        return ("rprop_" + _flags(group, "maximize"), code,
                ("etaminus", "etaplus", "size_min", "size_max"))

    def _scalars(self, group, step, arena, i):
        (em, ep), (lo, hi) = group["etas"], group["step_sizes"]
        return {"etaminus": em, "etaplus": ep, "size_min": lo, "size_max": hi}

    def _run_key(self, arena, i):
        return 0


class ASGD(Optimizer):
    r"""Averaged stochastic gradient descent (Polyak & Juditsky), PyTorch's formulation.

    Update rule at step t, with eta and mu kept per parameter (eta_1 = lr, mu_1 = 1):

        d    = d + weight_decay * p               (d = -g when maximizing, else g)
        p    = p * (1 - lambd * eta_t) - eta_t * d
        ax   = ax + mu_t * (p - ax)   if mu_t != 1   else p
        eta_{t+1} = lr / (1 + lambd * lr * t)^alpha;   mu_{t+1} = 1 / max(1, t - t0)

    Args: lr (default 1e-2), lambd (1e-4), alpha (0.75), t0 (1e6), weight_decay (0), maximize.
    """

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0,
                 foreach=None, maximize=False, differentiable=False, capturable=False):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _build(self, group):
        arenas = super()._build(group)
        for a in arenas:
            # PyTorch keeps eta and mu as float32 tensors; the host copies are rounded alike
            a.host["eta"] = [float(np.float32(group["lr"]))] * len(a.params)
            a.host["mu"] = [1.0] * len(a.params)
        return arenas

    def _state_names(self, group):
        return {"ax": 0.0}

    def _state_keys(self, group):
        return ["eta", "mu", "ax"]

    def _update(self, group):
        code = "\n".join([_grad_lines(group),
                          "p = p * shrink;",
                          "p = p + neg_eta * d;",
                          "ax = mu != (clg_t)1 ? ax + (p - ax) * mu : p;"])
        return ("asgd_" + _flags(group, "maximize", "weight_decay"), code,
                ("shrink", "neg_eta", "mu", "weight_decay"))

    def _scalars(self, group, step, arena, i):
        eta = arena.host["eta"][i]
        return {"shrink": 1 - group["lambd"] * eta, "neg_eta": -eta,
                "mu": arena.host["mu"][i], "weight_decay": group["weight_decay"]}

    def _run_key(self, arena, i):
        return (arena.host["eta"][i], arena.host["mu"][i])

    def _after_step(self, group, arena, i):
        t = arena.steps[i] + 1
        lr, lambd = group["lr"], group["lambd"]
        arena.host["eta"][i] = float(np.float32(lr / ((1 + lambd * lr * t) ** group["alpha"])))
        arena.host["mu"][i] = float(np.float32(1 / max(1, t - group["t0"])))
