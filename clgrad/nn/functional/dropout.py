"""Dropout family: Philox draws on the device."""
from __future__ import annotations

import math
import warnings

from ...tensor import nn_ops
from ...tensor.creation import rand
from ...tensor.activation import _SELU_ALPHA, _SELU_SCALE
from ...tensor.random import default_generator
from .activation import _dense, _inplace
from .normalization import _float_for_kernel


def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(shape, p, like):
    return (rand(shape, dtype=like.dtype, device=like.device) >= p).to(like.dtype)


def _fused_dropout(x, p, group, generator=None):
    """One kernel; the keep mask is recomputed from Philox counters in the backward, never
    stored."""
    xf, orig = _float_for_kernel(x)
    xf = _dense(xf)
    draws = -(-xf.numel() // group) if xf.numel() else 0
    seed, offset = (generator or default_generator)._take(draws)
    out = nn_ops.dropout_apply(xf, p, group, seed, offset)
    return out.to(orig) if orig is not None else out


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _inplace(input, lambda x: x * 0.0, inplace)
    return _inplace(input, lambda x: _fused_dropout(x, p, 1), inplace)


def _feature_dropout(input, p, training, inplace, batched_ndim, name):
    _check_p(p)
    if not training or p == 0.0:
        return input
    if input.ndim not in (batched_ndim, batched_ndim - 1):
        warnings.warn(f"{name}: Received a {input.ndim}-D input; expected {batched_ndim - 1}-D "
                      f"or {batched_ndim}-D.", stacklevel=3)
    if p == 1.0:
        return _inplace(input, lambda x: x * 0.0, inplace)
    # one draw per (sample, channel): the channel's elements are contiguous after _dense
    if input.ndim == batched_ndim - 1:      # unbatched (C, ...)
        group = math.prod(input.shape[1:])
    else:
        group = math.prod(input.shape[2:])
    return _inplace(input, lambda x: _fused_dropout(x, p, max(group, 1)), inplace)


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    return _feature_dropout(input, p, training, inplace, 3, "dropout1d")


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    return _feature_dropout(input, p, training, inplace, 4, "dropout2d")


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    return _feature_dropout(input, p, training, inplace, 5, "dropout3d")


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    """Dropout that keeps SELU's zero mean and unit variance: dropped values become
    -alpha*scale, then an affine map restores the moments."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _inplace(input, lambda x: x * 0.0, inplace)
    alpha_p = -_SELU_ALPHA * _SELU_SCALE
    a = ((1 - p) * (1 + p * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * p
    keep = _keep_mask(input.shape, p, input)
    return _inplace(input, lambda x: (x * keep + (1 - keep) * alpha_p) * a + b, inplace)
