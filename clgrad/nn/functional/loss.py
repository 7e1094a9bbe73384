"""Loss functions with PyTorch's reduction rules."""
from __future__ import annotations

import math
import warnings

from ...dtypes import int64
from ...tensor.apply import autocast_policy
from ...tensor import nn_ops
from ...tensor.creation import arange
from ...tensor.activation import logsigmoid, softplus
from .activation import _dense, log_softmax, _where
from .normalization import _float_for_kernel


def _reduction(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _apply_reduction(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_sizes(input, target, name):
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input "
                      f"size ({input.shape}). This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)


@autocast_policy("fp32")
def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None):
    _check_sizes(input, target, "l1_loss")
    loss = (input - target).abs()
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


@autocast_policy("fp32")
def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None):
    _check_sizes(input, target, "mse_loss")
    d = input - target
    loss = d * d
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


@autocast_policy("fp32")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0):
    _check_sizes(input, target, "smooth_l1_loss")
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = input - target
    ad = d.abs()
    if beta == 0:
        loss = ad
    else:
        loss = _where(ad < beta, d * d * (0.5 / beta), ad - 0.5 * beta)
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


@autocast_policy("fp32")
def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    _check_sizes(input, target, "huber_loss")
    d = input - target
    ad = d.abs()
    loss = _where(ad < delta, d * d * 0.5, (ad - 0.5 * delta) * delta)
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, reduction)


@autocast_policy("fp32")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """-(t log x + (1 - t) log(1 - x)), each log clamped at -100 as in PyTorch."""
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same "
                         "size.")
    loss = nn_ops.binary_cross_entropy(input, target)
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


@autocast_policy("fp32")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """Sigmoid and binary cross entropy in one stable expression:
    (1 - t) x - (1 + (pos_weight - 1) t) log sigmoid(x)."""
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    ls = logsigmoid(input)
    if pos_weight is not None:
        loss = (1 - target) * input - (1 + (pos_weight - 1) * target) * ls
    else:
        loss = (1 - target) * input - ls
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


@autocast_policy("fp32")
def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False):
    """Pointwise KL divergence with `input` given as log-probabilities."""
    red = _reduction(size_average, reduce, reduction)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        pos = target > 0
        safe = _where(pos, target, 1)
        loss = _where(pos, target * safe.log(), 0) - target * input
    if red == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    if red == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", stacklevel=2)
    return _apply_reduction(loss, red)


def _class_shape(input):
    """(N, C, S) of a (N, C, d1, ...) or (C,) input."""
    if input.ndim == 1:
        return 1, input.shape[0], 1
    N, C = input.shape[0], input.shape[1]
    S = math.prod(input.shape[2:])
    return N, C, S


def _check_target(input, target):
    if input.ndim == 1:
        if target.ndim != 0:
            raise RuntimeError(f"Expected target to be 0-D for 1-D input, got {target.ndim}-D")
        return
    exp_shape = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != exp_shape:
        if target.ndim and target.shape[0] != input.shape[0]:
            raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                             f"batch_size ({target.shape[0]}).")
        raise RuntimeError(f"Expected target size {list(exp_shape)}, got {list(target.shape)}")


@autocast_policy("fp32")
def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean"):
    """-input[n, target[n]] * weight[target[n]], rows with ignore_index left out."""
    red = _reduction(size_average, reduce, reduction)
    if input.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    _check_target(input, target)
    N, C, S = _class_shape(input)
    x = input.reshape(N, C, S)
    t = target.reshape(N, 1, S)
    nn_ops.check_class_targets(t, C, ignore_index)
    hit = t == arange(C, device=input.device).reshape(1, C, 1)     # (N, C, S)
    picked = _where(hit, x, 0).sum(1)                                  # (N, S)
    valid = (t.reshape(N, S) != ignore_index).to(input.dtype)
    if weight is not None:
        wrow = _where(hit, weight.reshape(1, C, 1), 0).sum(1) * valid
    else:
        wrow = valid
    loss = -picked * wrow
    if red == "none":
        return loss.reshape(target.shape)
    if red == "sum":
        return loss.sum()
    if red == "mean":
        return loss.sum() / wrow.sum()
    raise ValueError(f"{red} is not a valid value for reduction")


@autocast_policy("fp32")
def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0):
    """Log-softmax over dim 1 (dim 0 for 1-D input) and negative log-likelihood.

    Class-index targets run one fused, max-subtracted kernel per row (its gradient is one more
    kernel); probability targets (same shape as input) use log_softmax."""
    red = _reduction(size_average, reduce, reduction)
    if red not in ("none", "mean", "sum"):
        raise ValueError(f"{red} is not a valid value for reduction")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    N, C, S = _class_shape(input)
    cdim = 0 if input.ndim == 1 else 1
    if target.dtype.is_floating:
        if tuple(target.shape) != tuple(input.shape):
            raise RuntimeError(f"Expected target size {list(input.shape)}, got "
                               f"{list(target.shape)}")
        logp = log_softmax(input, cdim)
        t = target
        if label_smoothing > 0:
            t = t * (1 - label_smoothing) + label_smoothing / C
        prod = logp * t
        if weight is not None:
            prod = prod * weight.reshape((C,) + (1,) * (input.ndim - 1 - cdim))
        loss = -prod.sum(cdim)
        if red == "mean":
            return loss.sum() / (N * S)
        return loss.sum() if red == "sum" else loss
    _check_target(input, target)
    x, orig = _float_for_kernel(input)
    t = _dense(target.to(int64).reshape(-1))
    w = _dense(weight.to(x.dtype)) if weight is not None else None
    rows = _dense(x).reshape(N, C, S)
    if red != "none" and 0 < N * C * S <= nn_ops.CE_REDUCED_MAX:
        loss = nn_ops.cross_entropy_reduced(rows, t, w, ignore_index, label_smoothing,
                                            red == "mean")
        return loss.to(orig) if orig is not None else loss
    loss, wrow = nn_ops.cross_entropy_rows(rows, t, w, ignore_index, label_smoothing)
    if orig is not None:
        loss, wrow = loss.to(orig), wrow.to(orig)
    if red == "none":
        return loss.reshape(target.shape)
    if red == "sum":
        return loss.sum()
    return loss.sum() / wrow.sum()


@autocast_policy("fp32")
def cosine_embedding_loss(input1, input2, target, margin: float = 0.0, size_average=None,
                          reduce=None, reduction: str = "mean"):
    eps = 1e-12
    dim = input1.ndim - 1
    prod = (input1 * input2).sum(dim)
    m1 = (input1 * input1).sum(dim) + eps
    m2 = (input2 * input2).sum(dim) + eps
    cos = prod / (m1 * m2).sqrt()
    zeros = cos * 0
    pos = _where(target == 1, 1 - cos, zeros)
    neg = _where(target == -1, (cos - margin).relu(), zeros)
    return _apply_reduction(pos + neg, _reduction(size_average, reduce, reduction))


@autocast_policy("fp32")
def margin_ranking_loss(input1, input2, target, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean"):
    loss = (-target * (input1 - input2) + margin).relu()
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


@autocast_policy("fp32")
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    loss = softplus(-target * input)
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


@autocast_policy("fp32")
def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    zeros = input * 0
    loss = (_where(target == 1, input, zeros) +
            _where(target == -1, (margin - input).relu(), zeros))
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))
