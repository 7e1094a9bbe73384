"""Layer, batch, instance, group, RMS and local-response normalisation."""
from __future__ import annotations

import math
import numpy as np

from ... import autograd
from ...dtypes import float32
from ...tensor.apply import autocast_policy
from ...tensor import nn_ops
from ...tensor.creation import ones, zeros
from .activation import _dense


def _float_for_kernel(x):
    """Fused kernels compute in float32/float64; half and integer inputs go through float32."""
    if x.dtype.ctype in ("float", "double"):
        return x, None
    return x.to(float32), x.dtype


@autocast_policy("fp32")
def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the trailing `normalized_shape` dims, then scale and shift per element."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or tuple(input.shape[input.ndim - k:]) != normalized_shape or input.ndim < k:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input "
                           f"with shape [*, {', '.join(map(str, normalized_shape))}], but got "
                           f"input of size{list(input.shape)}")
    x, orig = _float_for_kernel(input)
    D = math.prod(normalized_shape)
    R = x.numel() // D if D else 0
    w = weight.reshape(-1) if weight is not None else None
    b = bias.reshape(-1) if bias is not None else None
    if w is not None and b is None:
        b = _zeros_like_param(w)
    if w is None and b is not None:
        w = _ones_like_param(b)
    rows = _dense(x).reshape(1, R, D)
    y, _, _, _ = nn_ops.norm_rows(rows, w, b, eps, per_row=False)
    y = y.reshape(input.shape)
    return y.to(orig) if orig is not None else y


def _zeros_like_param(p):
    return zeros(p.shape, dtype=p.dtype, device=p.device)


def _ones_like_param(p):
    return ones(p.shape, dtype=p.dtype, device=p.device)


def _channel_shape(input):
    return (1, -1) + (1,) * (input.ndim - 2)


@autocast_policy("fp32")
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum=0.1, eps: float = 1e-5):
    """Normalise each channel (dim 1) over the batch and spatial dims.

    In training (or without running statistics) the batch statistics normalise and, when given,
    the running statistics move towards them on the device: r = (1 - m) r + m stat, with the
    unbiased variance. `momentum` may be a 0-d tensor (the cumulative average's 1/count)."""
    if input.ndim < 2:
        raise ValueError(f"expected 2D or more input (got {input.ndim}D input)")
    N, C = input.shape[0], input.shape[1]
    S = input.numel() // (N * C) if N * C else 0
    if weight is not None and weight.numel() != C:
        raise RuntimeError(f"running_mean should contain {C} elements not {weight.numel()}")
    if training:
        if N * S <= 1:
            raise ValueError("Expected more than 1 value per channel when training, got input "
                             f"size {list(input.shape)}")
        x, orig = _float_for_kernel(input)
        w, b = weight, bias
        if w is not None and b is None:
            b = _zeros_like_param(w)
        if w is None and b is not None:
            w = _ones_like_param(b)
        rows = _dense(x).reshape(N, C, S)
        y, mean, _, var = nn_ops.norm_rows(rows, w, b, eps, per_row=True)
        if running_mean is not None or running_var is not None:
            with autograd.no_grad():
                n = N * S
                if running_mean is not None:
                    running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype) * momentum)
                if running_var is not None:
                    unbiased = var * (n / (n - 1))
                    running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype) * momentum)
        y = y.reshape(input.shape)
        return y.to(orig) if orig is not None else y
    if running_mean is None or running_var is None:
        raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
    cs = _channel_shape(input)
    scale = 1.0 / (running_var.reshape(cs) + eps).sqrt()
    y = (input - running_mean.reshape(cs)) * scale
    if weight is not None:
        y = y * weight.reshape(cs)
    if bias is not None:
        y = y + bias.reshape(cs)
    return y


@autocast_policy("fp32")
def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """Normalise each (sample, channel) plane over its spatial dims."""
    if input.ndim < 2:
        raise ValueError(f"expected 2D or more input (got {input.ndim}D input)")
    N, C = input.shape[0], input.shape[1]
    cs = _channel_shape(input)
    if use_input_stats:
        S = input.numel() // (N * C) if N * C else 0
        x, orig = _float_for_kernel(input)
        rows = _dense(x).reshape(1, N * C, S)
        y, mean, _, var = nn_ops.norm_rows(rows, None, None, eps)
        if running_mean is not None or running_var is not None:
            with autograd.no_grad():
                if running_mean is not None:
                    running_mean.mul_(1 - momentum).add_(mean.reshape(N, C).mean(0) * momentum)
                if running_var is not None:
                    unbiased = var.reshape(N, C).mean(0) * (S / max(S - 1, 1))
                    running_var.mul_(1 - momentum).add_(unbiased * momentum)
        y = y.reshape(input.shape)
        if orig is not None:
            y = y.to(orig)
    else:
        y = (input - running_mean.reshape(cs)) / (running_var.reshape(cs) + eps).sqrt()
    if weight is not None:
        y = y * weight.reshape(cs)
    if bias is not None:
        y = y + bias.reshape(cs)
    return y


@autocast_policy("fp32")
def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Normalise each sample's channel groups, then scale and shift per channel."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{input.ndim}")
    N, C = input.shape[0], input.shape[1]
    if C % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(input.shape)} and "
                           f"num_groups={num_groups}")
    x, orig = _float_for_kernel(input)
    L = x.numel() // (N * num_groups) if N * num_groups else 0
    rows = _dense(x).reshape(1, N * num_groups, L)
    y, _, _, _ = nn_ops.norm_rows(rows, None, None, eps)
    y = y.reshape(input.shape)
    if orig is not None:
        y = y.to(orig)
    cs = _channel_shape(input)
    if weight is not None:
        y = y * weight.reshape(cs)
    if bias is not None:
        y = y + bias.reshape(cs)
    return y


@autocast_policy("fp32")
def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2 over the trailing dims) + eps) * weight; eps defaults to the dtype's
    machine epsilon, as in PyTorch."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    k = len(normalized_shape)
    if tuple(input.shape[input.ndim - k:]) != tuple(normalized_shape):
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input "
                           f"with shape [*, {', '.join(map(str, normalized_shape))}], but got "
                           f"input of size{list(input.shape)}")
    if eps is None:
        # bfloat16 keeps 8 significant bits: its epsilon is 2**-7 (numpy has no bfloat16)
        bf16 = input.dtype.name == "bfloat16"
        eps = 2.0 ** -7 if bf16 else float(np.finfo(input.dtype.np).eps)
    dims = tuple(range(input.ndim - k, input.ndim))
    y = input / ((input * input).mean(dims, keepdim=True) + eps).sqrt()
    return y * weight if weight is not None else y


@autocast_policy("fp32")
def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0):
    raise NotImplementedError("local_response_norm is not implemented in clgrad")
