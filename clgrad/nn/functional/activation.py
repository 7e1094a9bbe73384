"""Activation functions and softmax: the Tensor-level pointwise ones re-exported (one
differentiable version each) plus those nn adds."""
from __future__ import annotations

import warnings

from ...tensor import Tensor
from ...tensor.apply import autocast_policy
from ...tensor.activation import hardtanh, leaky_relu
from ...tensor.nn_ops import dense
from ...tensor.creation import rand
from ...tensor.pointwise import where


_where = where


_dense = dense


def _inplace(input, fn, inplace):
    if inplace:
        return input._inplace(lambda s: fn(s))
    return fn(input)


# ---- activations -------------------------------------------------------------------------------
def relu(input, inplace: bool = False):
    return _inplace(input, lambda x: x.relu(), inplace)


def relu_(input):
    return relu(input, True)


def relu6(input, inplace: bool = False):
    return hardtanh(input, 0.0, 6.0, inplace)


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def tanhshrink(input):
    return input - input.tanh()


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), weight broadcast along the channel dim 1."""
    w = weight
    if weight.numel() != 1:
        if input.ndim < 2 or input.shape[1] != weight.numel():
            raise RuntimeError("Mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {weight.numel()} and channel size = "
                               f"{input.shape[1] if input.ndim >= 2 else 1}.")
        w = weight.reshape((1, -1) + (1,) * (input.ndim - 2))
    elif weight.ndim:
        w = weight.reshape(())
    return input.relu() - (-input).relu() * w


def rrelu(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False):
    if training:
        a = rand(input.shape, dtype=input.dtype, device=input.device) * (upper - lower) + lower
        return _inplace(input, lambda x: x.relu() - (-x).relu() * a, inplace)
    return leaky_relu(input, (lower + upper) / 2, inplace)


def glu(input, dim: int = -1):
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {n}")
    a = input.narrow(dim, 0, n // 2)
    b = input.narrow(dim, n // 2, n // 2)
    return a * b.sigmoid()


def _softmax_dim(ndim: int) -> int:
    warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call "
                  "to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _prep_softmax(input, dim, dtype):
    if dim is None:
        dim = _softmax_dim(input.ndim)
    if dtype is not None:
        input = input.to(dtype)
    return input, dim


@autocast_policy("fp32")
def log_softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """x - logsumexp(x, dim), with the max subtracted first (stable)."""
    input, dim = _prep_softmax(input, dim, dtype)
    if hasattr(Tensor, "log_softmax"):
        return input.log_softmax(dim)
    if input.ndim == 0:
        return input - input
    m = input.detach().amax(dim, keepdim=True)
    m = _where(m.isfinite(), m, 0)
    shifted = input - m
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


@autocast_policy("fp32")
def softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    input, dim = _prep_softmax(input, dim, dtype)
    if hasattr(Tensor, "softmax"):
        return input.softmax(dim)
    if input.ndim == 0:
        return input / input
    m = input.detach().amax(dim, keepdim=True)
    m = _where(m.isfinite(), m, 0)
    e = (input - m).exp()
    return e / e.sum(dim, keepdim=True)


@autocast_policy("fp32")
def softmin(input, dim=None, _stacklevel: int = 3, dtype=None):
    input, dim = _prep_softmax(input, dim, dtype)
    return softmax(-input, dim)
