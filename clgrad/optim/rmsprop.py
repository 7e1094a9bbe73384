"""Optimizers that scale by running averages of squared gradients: RMSprop, Adagrad, Adadelta."""
from __future__ import annotations

from .optimizer import Optimizer, _check, _flags, _grad_lines



class RMSprop(Optimizer):
    r"""RMSprop (Hinton), PyTorch's formulation.

    Update rule, with d = -g when maximizing and g otherwise:

        d   = d + weight_decay * p
        v   = alpha * v + (1 - alpha) * d * d
        gbar = lerp(gbar, d, 1 - alpha);  avg = sqrt(v - gbar^2)     (centered)
        avg = sqrt(v)                                                 (otherwise)
        avg = avg + eps
        b   = momentum * b + d / avg;  p = p - lr * b                 (momentum > 0)
        p   = p - lr * d / avg                                        (otherwise)

    Args: lr (default 1e-2), alpha (0.99), eps (1e-8), weight_decay (0), momentum (0),
    centered (False), maximize.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check(0.0 <= momentum, f"Invalid momentum value: {momentum}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= alpha, f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def _state_names(self, group):
        names = {"square_avg": 0.0}
        if group["momentum"] > 0:
            names["momentum_buffer"] = 0.0
        if group["centered"]:
            names["grad_avg"] = 0.0
        return names

    def _update(self, group):
        lines = [_grad_lines(group),
                 "square_avg = alpha * square_avg + one_minus_alpha * d * d;"]
        if group["centered"]:
            lines.append("grad_avg = clg_lerp(grad_avg, d, one_minus_alpha);")
            lines.append("clg_t avg = sqrt(square_avg - grad_avg * grad_avg);")
        else:
            lines.append("clg_t avg = sqrt(square_avg);")
        lines.append("avg = avg + eps;")
        if group["momentum"] > 0:
            lines.append("momentum_buffer = momentum * momentum_buffer + d / avg;")
            lines.append("p = p + neg_lr * momentum_buffer;")
        else:
            lines.append("p = p + neg_lr * (d / avg);")
        flags = _flags(group, "maximize", "weight_decay", "centered", "momentum")
        return (f"rmsprop_{flags}", "\n".join(lines),
                ("alpha", "one_minus_alpha", "eps", "momentum", "neg_lr", "weight_decay"))

    def _scalars(self, group, step, arena, i):
        return {"alpha": group["alpha"], "one_minus_alpha": 1 - group["alpha"],
                "eps": group["eps"], "momentum": group["momentum"], "neg_lr": -group["lr"],
                "weight_decay": group["weight_decay"]}

    def _run_key(self, arena, i):
        return 0          # no step-dependent scalar: every parameter can share one launch


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al.), PyTorch's formulation.

    Update rule at step t:

        d   = d + weight_decay * p                 (d = -g when maximizing, else g)
        clr = lr / (1 + (t - 1) * lr_decay)
        s   = s + d * d                            (s starts at initial_accumulator_value)
        p   = p - clr * d / (sqrt(s) + eps)

    Args: lr (default 1e-2), lr_decay (0), weight_decay (0), initial_accumulator_value (0),
    eps (1e-10), maximize.
    """

    _eager_state = True

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= lr_decay, f"Invalid lr_decay value: {lr_decay}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= initial_accumulator_value,
               f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _state_names(self, group):
        return {"sum": float(group["initial_accumulator_value"])}

    def _update(self, group):
        code = "\n".join([_grad_lines(group),
                          "sum = sum + d * d;",
                          "p = p + neg_clr * (d / (sqrt(sum) + eps));"])
        return ("adagrad_" + _flags(group, "maximize", "weight_decay"), code,
                ("neg_clr", "eps", "weight_decay"))

    def _scalars(self, group, step, arena, i):
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        return {"neg_clr": -clr, "eps": group["eps"], "weight_decay": group["weight_decay"]}


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler), PyTorch's formulation.

    Update rule:

        d     = d + weight_decay * p               (d = -g when maximizing, else g)
        v     = rho * v + (1 - rho) * d * d
        delta = sqrt(u + eps) / sqrt(v + eps) * d
        u     = rho * u + (1 - rho) * delta * delta
        p     = p - lr * delta

    Args: lr (default 1.0), rho (0.9), eps (1e-6), weight_decay (0), maximize.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _state_names(self, group):
        return {"square_avg": 0.0, "acc_delta": 0.0}

    def _update(self, group):
        code = "\n".join([_grad_lines(group),
                          "square_avg = rho * square_avg + one_minus_rho * d * d;",
                          "const clg_t std_ = sqrt(square_avg + eps);",
                          "const clg_t delta = sqrt(acc_delta + eps) / std_ * d;",
                          "acc_delta = rho * acc_delta + one_minus_rho * delta * delta;",
                          "p = p + neg_lr * delta;"])
        return ("adadelta_" + _flags(group, "maximize", "weight_decay"), code,
                ("rho", "one_minus_rho", "eps", "neg_lr", "weight_decay"))

    def _scalars(self, group, step, arena, i):
        return {"rho": group["rho"], "one_minus_rho": 1 - group["rho"], "eps": group["eps"],
                "neg_lr": -group["lr"], "weight_decay": group["weight_decay"]}

    def _run_key(self, arena, i):
        return 0
