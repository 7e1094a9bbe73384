"""Activation functions with torch.nn.functional's signatures over the differentiable
elementwise records (one version of each; double backward works)."""
from __future__ import annotations

from .. import ops
from .apply import apply


def _act(input, fn, inplace):
    return input._ip(fn, saves_self=True) if inplace else fn(input)


def relu(input, inplace=False):
    """max(x, 0); its gradient at 0 is 0, as in PyTorch."""
    return input.relu_() if inplace else input.relu()


def relu_(input):
    return input.relu_()


def relu6(input, inplace=False):
    """min(max(x, 0), 6): hardtanh(x, 0, 6)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clamped to [min_val, max_val]; the gradient is 0 on and outside the bounds."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _act(input, lambda s: apply(ops.HARDTANH, s, min_val, max_val), inplace)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, True)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x if x > 0 else negative_slope * x."""
    return _act(input, lambda s: apply(ops.LEAKY_RELU, s, float(negative_slope)), inplace)


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, True)


def _elu(input, alpha, scale, input_scale, inplace):
    return _act(input, lambda s: apply(ops.ELU, s, float(alpha), float(scale),
                                        float(input_scale)), inplace)


def elu(input, alpha=1.0, inplace=False):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _elu(input, alpha, 1.0, 1.0, inplace)


def elu_(input, alpha=1.0):
    return elu(input, alpha, True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al."""
    return _elu(input, _SELU_ALPHA, _SELU_SCALE, 1.0, inplace)


def selu_(input):
    return selu(input, True)


def celu(input, alpha=1.0, inplace=False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _elu(input, alpha, 1.0, 1.0 / alpha, inplace)


def celu_(input, alpha=1.0):
    return celu(input, alpha, True)


def gelu(input, approximate="none"):
    """x * Phi(x) (Phi: the standard normal CDF); approximate='tanh' uses the tanh formula."""
    if approximate == "none":
        return apply(ops.GELU, input)
    if approximate == "tanh":
        return apply(ops.GELU_TANH, input)
    raise RuntimeError("approximate argument must be either none or tanh.")


def silu(input, inplace=False):
    """x * sigmoid(x)."""
    return _act(input, lambda s: apply(ops.SILU, s), inplace)


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    return _act(input, lambda s: apply(ops.MISH, s), inplace)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6."""
    return _act(input, lambda s: apply(ops.HARDSIGMOID, s), inplace)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6."""
    return _act(input, lambda s: apply(ops.HARDSWISH, s), inplace)


def softsign(input):
    """x / (1 + |x|)."""
    return apply(ops.SOFTSIGN, input)


def logsigmoid(input):
    """log(sigmoid(x)), computed as min(x, 0) - log1p(exp(-|x|)) so it never overflows."""
    return apply(ops.LOGSIGMOID, input)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold."""
    return apply(ops.SOFTPLUS, input, float(beta), float(threshold))


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def logit(input, eps=None):
    return input.logit(eps)


__all__ = ["relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu",
           "elu_", "selu", "selu_", "celu", "celu_", "gelu", "silu", "mish", "hardsigmoid",
           "hardswish", "softsign", "logsigmoid", "softplus", "sigmoid", "tanh", "logit"]


def threshold(input, threshold, value, inplace=False):
    """value where x <= threshold, else x."""
    def fn(s):
        return apply(ops.THRESHOLD, s, float(threshold), float(value))
    return input._inplace(fn) if inplace else fn(input)


def hardshrink(input, lambd=0.5):
    """x where |x| > lambd, else 0."""
    return apply(ops.HARDSHRINK, input, float(lambd))


def softshrink(input, lambd=0.5):
    """x - lambd above lambd, x + lambd below -lambd, else 0."""
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return apply(ops.SOFTSHRINK, input, float(lambd))
