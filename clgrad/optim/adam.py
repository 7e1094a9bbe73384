"""Adam and relatives: AdamW, Adamax, NAdam, RAdam (bias corrections as PyTorch computes them)."""
from __future__ import annotations

import math

import numpy as np

from .optimizer import Optimizer, _check, _flags, _grad_lines


def _check_adam(lr, betas, eps, weight_decay):
    _check(0.0 <= lr, f"Invalid learning rate: {lr}")
    _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
    _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
    _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
    _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")



class Adam(Optimizer):
    r"""Adam (Kingma & Ba), PyTorch's formulation.

    Update rule at step t, with d = -g when maximizing and g otherwise:

        d     = d + weight_decay * p                 (Adam; AdamW instead does p = p*(1 - lr*wd))
        m     = lerp(m, d, 1 - beta1)                (m = beta1 m + (1 - beta1) d)
        v     = beta2 * v + (1 - beta2) * d * d
        vmax  = max(vmax, v); use vmax for v         (amsgrad)
        denom = sqrt(v) / sqrt(1 - beta2^t) + eps
        p     = p - lr / (1 - beta1^t) * m / denom

    Args:
        params: iterable of tensors or dicts defining parameter groups.
        lr: learning rate (default 1e-3). betas: (beta1, beta2), default (0.9, 0.999).
        eps: added to the denominator (default 1e-8). weight_decay: L2 penalty (default 0).
        amsgrad: use the running maximum of v (default False). maximize: ascend instead.
        foreach, capturable, differentiable, fused: accepted for PyTorch compatibility.

    Example:
        >>> opt = clgrad.optim.Adam(model.parameters(), lr=3e-4)
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None):
        _check_adam(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _state_names(self, group):
        names = {"exp_avg": 0.0, "exp_avg_sq": 0.0}
        if group["amsgrad"]:
            names["max_exp_avg_sq"] = 0.0
        return names

    def _update(self, group):
        lines = [_grad_lines(group, self._decoupled),
                 "exp_avg = clg_lerp(exp_avg, d, one_minus_beta1);",
                 "exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * d * d;"]
        if group["amsgrad"]:
            lines.append("max_exp_avg_sq = fmax(max_exp_avg_sq, exp_avg_sq);")
            lines.append("const clg_t denom = sqrt(max_exp_avg_sq) / bc2_sqrt + eps;")
        else:
            lines.append("const clg_t denom = sqrt(exp_avg_sq) / bc2_sqrt + eps;")
        lines.append("p = p + neg_step_size * (exp_avg / denom);")
        name = ("adamw_" if self._decoupled else "adam_") + _flags(
            group, "maximize", "weight_decay", "amsgrad")
        return (name, "\n".join(lines), ("one_minus_beta1", "beta2", "one_minus_beta2",
                                         "bc2_sqrt", "eps", "neg_step_size", "weight_decay",
                                         "decay"))

    def _scalars(self, group, step, arena, i):
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        bc1 = 1 - beta1 ** step
        bc2 = 1 - beta2 ** step
        return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2,
                "bc2_sqrt": math.sqrt(bc2), "eps": group["eps"], "neg_step_size": -(lr / bc1),
                "weight_decay": wd, "decay": 1 - lr * wd}


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's formulation.

    Update rule at step t (the Adam rule, with the decay applied to the parameter first):

        p     = p * (1 - lr * weight_decay)
        m     = lerp(m, d, 1 - beta1);  v = beta2 v + (1 - beta2) d^2   (vmax for amsgrad)
        p     = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Args: as Adam, with weight_decay defaulting to 1e-2.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused)


class Adamax(Optimizer):
    r"""Adamax: Adam with the infinity norm (Kingma & Ba), PyTorch's formulation.

    Update rule at step t:

        d = d + weight_decay * p                  (d = -g when maximizing, else g)
        m = lerp(m, d, 1 - beta1)
        u = max(beta2 * u, |d| + eps)
        p = p - lr / (1 - beta1^t) * m / u

    Args: lr (default 2e-3), betas (0.9, 0.999), eps (1e-8), weight_decay (0), maximize.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        _check_adam(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _state_names(self, group):
        return {"exp_avg": 0.0, "exp_inf": 0.0}

    def _update(self, group):
        code = "\n".join([_grad_lines(group),
                          "exp_avg = clg_lerp(exp_avg, d, one_minus_beta1);",
                          "exp_inf = fmax(beta2 * exp_inf, fabs(d) + eps);",
                          "p = p + neg_clr * (exp_avg / exp_inf);"])
        return ("adamax_" + _flags(group, "maximize", "weight_decay"), code,
                ("one_minus_beta1", "beta2", "eps", "neg_clr", "weight_decay"))

    def _scalars(self, group, step, arena, i):
        beta1, beta2 = group["betas"]
        return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "eps": group["eps"],
                "neg_clr": -(group["lr"] / (1 - beta1 ** step)),
                "weight_decay": group["weight_decay"]}


class NAdam(Optimizer):
    r"""Adam with Nesterov momentum (Dozat), PyTorch's formulation.

    Update rule at step t, with psi = momentum_decay:

        d      = d + weight_decay * p    (or p = p * (1 - lr*wd) with decoupled_weight_decay)
        mu_t   = beta1 * (1 - 0.5 * 0.96^(t psi));  mu_{t+1} likewise;  P_t = prod_{i<=t} mu_i
        m      = lerp(m, d, 1 - beta1);  v = beta2 v + (1 - beta2) d^2
        denom  = sqrt(v / (1 - beta2^t)) + eps
        p      = p - lr (1 - mu_t) / (1 - P_t) * d / denom
        p      = p - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / denom

    Args: lr (default 2e-3), betas (0.9, 0.999), eps (1e-8), weight_decay (0),
    momentum_decay (4e-3), decoupled_weight_decay (False), maximize.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        _check_adam(lr, betas, eps, weight_decay)
        _check(0.0 <= momentum_decay, f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _build(self, group):
        arenas = super()._build(group)
        for a in arenas:
            a.host["mu_product"] = [1.0] * len(a.params)
        return arenas

    def _state_names(self, group):
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    def _state_keys(self, group):
        return ["mu_product", "exp_avg", "exp_avg_sq"]

    def _update(self, group):
        code = "\n".join([_grad_lines(group, group["decoupled_weight_decay"]),
                          "exp_avg = clg_lerp(exp_avg, d, one_minus_beta1);",
                          "exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * d * d;",
                          "const clg_t denom = sqrt(exp_avg_sq / bc2) + eps;",
                          "p = p + c_grad * (d / denom);",
                          "p = p + c_avg * (exp_avg / denom);"])
        name = "nadam_" + _flags(group, "maximize", "weight_decay", "decoupled_weight_decay")
        return (name, code, ("one_minus_beta1", "beta2", "one_minus_beta2", "bc2", "eps",
                             "c_grad", "c_avg", "weight_decay", "decay"))

    def _mu(self, group, step):
        beta1 = group["betas"][0]
        psi = group["momentum_decay"]
        return (beta1 * (1.0 - 0.5 * 0.96 ** (step * psi)),
                beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi)))

    def _new_mu_product(self, group, step, arena, i):
        # PyTorch keeps mu_product as a float32 tensor: round it the same way
        mu, _ = self._mu(group, step)
        return float(np.float32(arena.host["mu_product"][i]) * np.float32(mu))

    def _scalars(self, group, step, arena, i):
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        mu, mu_next = self._mu(group, step)
        prod = self._new_mu_product(group, step, arena, i)
        return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2,
                "bc2": 1 - beta2 ** step, "eps": group["eps"],
                "c_grad": -lr * (1.0 - mu) / (1.0 - prod),
                "c_avg": -lr * mu_next / (1.0 - prod * mu_next),
                "weight_decay": wd, "decay": 1 - lr * wd}

    def _run_key(self, arena, i):
        return (arena.steps[i], arena.host["mu_product"][i])

    def _after_step(self, group, arena, i):
        arena.host["mu_product"][i] = self._new_mu_product(group, arena.steps[i] + 1, arena, i)


class RAdam(Optimizer):
    r"""Rectified Adam (Liu et al.), PyTorch's formulation.

    Update rule at step t:

        d      = d + weight_decay * p    (or p = p * (1 - lr*wd) with decoupled_weight_decay)
        m      = lerp(m, d, 1 - beta1);  v = beta2 v + (1 - beta2) d^2
        rho_inf = 2 / (1 - beta2) - 1;   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        if rho_t > 5:
            r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p = p - m / (1 - beta1^t) * lr * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
        else:
            p = p - m / (1 - beta1^t) * lr

    Args: lr (default 1e-3), betas (0.9, 0.999), eps (1e-8), weight_decay (0),
    decoupled_weight_decay (False), maximize.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        _check_adam(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _state_names(self, group):
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    def _update(self, group):
        code = "\n".join([
            _grad_lines(group, group["decoupled_weight_decay"]),
            "exp_avg = clg_lerp(exp_avg, d, one_minus_beta1);",
            "exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * d * d;",
            "const clg_t corrected = exp_avg / bc1;",
            "if (rect != (clg_t)0)",
            "    p = p - corrected * lr * (bc2_sqrt / (sqrt(exp_avg_sq) + eps)) * rect;",
            "else",
            "    p = p - corrected * lr;"])
        name = "radam_" + _flags(group, "maximize", "weight_decay", "decoupled_weight_decay")
        return (name, code, ("one_minus_beta1", "beta2", "one_minus_beta2", "bc1", "bc2_sqrt",
                             "eps", "lr", "rect", "weight_decay", "decay"))

    def _scalars(self, group, step, arena, i):
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        bc1 = 1 - beta1 ** step
        bc2 = 1 - beta2 ** step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bc2
        rect = 0.0
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                             / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2,
                "bc1": bc1, "bc2_sqrt": math.sqrt(bc2), "eps": group["eps"], "lr": lr,
                "rect": rect, "weight_decay": wd, "decay": 1 - lr * wd}
