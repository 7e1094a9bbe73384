"""clgrad.nn.functional: the stateless layer, activation, normalisation and loss functions."""
from __future__ import annotations

import math

from .. import autograd, ops
from ..tensor import Tensor
# the activations are the Tensor-level ones: one differentiable version each, double backward too
from ..tensor.pointwise import (_SELU_ALPHA, _SELU_SCALE, celu, elu, gelu, hardsigmoid,
                                hardswish, hardtanh, leaky_relu, logsigmoid, mish, selu, silu,
                                softplus, softsign, where)


# ---- linear ------------------------------------------------------------------------------------
def linear(input, weight, bias=None):
    """y = input @ weight^T + bias.  Shape: (*, in), (out, in), (out,) -> (*, out)."""
    out = input.matmul(weight.t())
    return out + bias if bias is not None else out


def bilinear(input1, input2, weight, bias=None):
    """y_o = sum_ij x1_i A_oij x2_j + b_o.

    Shape: (*, in1), (*, in2), (out, in1, in2), (out,) -> (*, out)."""
    lead = input1.shape[:-1]
    out_f, in1, in2 = weight.shape
    x1 = input1.reshape(-1, in1)
    x2 = input2.reshape(-1, in2)
    t = x1.matmul(weight.permute(1, 0, 2).reshape(in1, out_f * in2))   # (N, O*in2)
    y = (t.reshape(-1, out_f, in2) * x2.unsqueeze(1)).sum(-1)          # (N, O)
    if bias is not None:
        y = y + bias
    return y.reshape(tuple(lead) + (out_f,))


_where = where


def _dense(t):
    return ops.dense(t)


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


def threshold(input, threshold: float, value: float, inplace: bool = False):
    return _inplace(input, lambda x: ops.ew(ops.THRESHOLD, x, float(threshold), float(value)),
                    inplace)


def hardshrink(input, lambd: float = 0.5):
    return ops.ew(ops.HARDSHRINK, input, float(lambd))


def softshrink(input, lambd: float = 0.5):
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return ops.ew(ops.SOFTSHRINK, input, float(lambd))


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
        from ..tensor.creation import rand
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
    import warnings
    warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call "
                  "to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _prep_softmax(input, dim, dtype):
    if dim is None:
        dim = _softmax_dim(input.ndim)
    if dtype is not None:
        input = input.to(dtype)
    return input, dim


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


def softmin(input, dim=None, _stacklevel: int = 3, dtype=None):
    input, dim = _prep_softmax(input, dim, dtype)
    return softmax(-input, dim)


# ---- dropout (Philox draws on the device) -------------------------------------------------------
def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(shape, p, like):
    from ..tensor.creation import rand
    return (rand(shape, dtype=like.dtype, device=like.device) >= p).to(like.dtype)


def _fused_dropout(x, p, group, generator=None):
    """One kernel; the keep mask is recomputed from Philox counters in the backward, never
    stored."""
    from ..tensor.random import default_generator
    xf, orig = _float_for_kernel(x)
    xf = _dense(xf)
    draws = -(-xf.numel() // group) if xf.numel() else 0
    seed, offset = (generator or default_generator)._take(draws)
    out = ops.dropout_apply(xf, p, group, seed, offset)
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
        import warnings
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


# ---- normalisation ------------------------------------------------------------------------------
def _float_for_kernel(x):
    """Fused kernels compute in float32/float64; half and integer inputs go through float32."""
    if x.dtype.ctype in ("float", "double"):
        return x, None
    from ..dtypes import float32
    return x.to(float32), x.dtype


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
    y, _, _, _ = ops.norm_rows(_dense(x).reshape(1, R, D), eps, w, b, per_row=False)
    y = y.reshape(input.shape)
    return y.to(orig) if orig is not None else y


def _zeros_like_param(p):
    from ..tensor.creation import zeros
    return zeros(p.shape, dtype=p.dtype, device=p.device)


def _ones_like_param(p):
    from ..tensor.creation import ones
    return ones(p.shape, dtype=p.dtype, device=p.device)


def _channel_shape(input):
    return (1, -1) + (1,) * (input.ndim - 2)


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
        y, mean, _, var = ops.norm_rows(_dense(x).reshape(N, C, S), eps, w, b, per_row=True)
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
        y, mean, _, var = ops.norm_rows(_dense(x).reshape(1, N * C, S), eps)
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
    y, _, _, _ = ops.norm_rows(_dense(x).reshape(1, N * num_groups, L), eps)
    y = y.reshape(input.shape)
    if orig is not None:
        y = y.to(orig)
    cs = _channel_shape(input)
    if weight is not None:
        y = y * weight.reshape(cs)
    if bias is not None:
        y = y + bias.reshape(cs)
    return y


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
        import numpy as np
        eps = float(np.finfo(input.dtype.np).eps)
    dims = tuple(range(input.ndim - k, input.ndim))
    y = input / ((input * input).mean(dims, keepdim=True) + eps).sqrt()
    return y * weight if weight is not None else y


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0):
    raise NotImplementedError("local_response_norm is not implemented in clgrad")


# ---- embedding ----------------------------------------------------------------------------------
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False):
    """Rows of `weight` at the integer indices `input`.  Shape: (*) -> (*, embedding_dim)."""
    from ..dtypes import int64
    if input.dtype.is_floating:
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           "following scalar types: Long, Int; but got "
                           f"{ops.torch_name(input.dtype)} instead")
    if weight.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    if padding_idx is not None:
        if padding_idx > 0 and padding_idx >= weight.size(0):
            raise AssertionError("Padding_idx must be within num_embeddings")
        if padding_idx < 0:
            if padding_idx < -weight.size(0):
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx = weight.size(0) + padding_idx
    else:
        padding_idx = -1
    if max_norm is not None:
        _embedding_renorm_(weight, input, float(max_norm), float(norm_type))
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse gradients are not "
                                  "implemented in clgrad")
    idx = _dense(input.to(int64).reshape(-1))
    w, orig = _float_for_kernel(weight)
    out = ops.embedding_lookup(w, idx, padding_idx)
    out = out.reshape(tuple(input.shape) + (weight.shape[1],))
    return out.to(orig) if orig is not None else out


def _embedding_renorm_(weight, input, max_norm, norm_type):
    """Rescale in place the rows of `weight` that `input` references and whose norm exceeds
    max_norm (to max_norm / (norm + 1e-7), as PyTorch), all on the device."""
    from ..tensor.creation import arange
    V = weight.shape[0]
    with autograd.no_grad():
        idx = input.reshape(-1, 1)
        used = (idx == arange(V, device=weight.device).reshape(1, V)).any(0)     # (V,)
        norms = _pnorm(weight.detach(), norm_type, 1, False)
        scale = _where(used * (norms > max_norm), max_norm / (norms + 1e-7), 1.0)
        weight.mul_(scale.to(weight.dtype).unsqueeze(1))


def one_hot(tensor, num_classes: int = -1):
    """(*) int64 -> (*, num_classes) int64 with a 1 at each index."""
    from ..tensor.creation import arange
    from ..dtypes import int64
    if tensor.dtype.is_floating:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        # the output's shape depends on the data: one read of the maximum
        num_classes = int(tensor.amax().item()) + 1 if tensor.numel() else 0
    classes = arange(num_classes, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).to(int64)


# ---- distances ----------------------------------------------------------------------------------
def _pnorm(x, p, dim, keepdim):
    if p == 2:
        return (x * x).sum(dim, keepdim=keepdim).sqrt()
    if p == 1:
        return x.abs().sum(dim, keepdim=keepdim)
    if p == math.inf:
        return x.abs().amax(dim, keepdim=keepdim)
    a = x.abs()
    powed = _where(a > 0, (a.log() * p).exp(), 0)
    s = powed.sum(dim, keepdim=keepdim)
    return _where(s > 0, (s.log() / p).exp(), 0)


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None):
    """input / max(||input||_p along dim, eps)."""
    n = _pnorm(input, p, dim, True)
    return input / n.maximum(eps).expand(input.shape)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    w12 = (x1 * x2).sum(dim)
    w1 = (x1 * x1).sum(dim)
    w2 = (x2 * x2).sum(dim)
    return w12 / (w1 * w2).maximum(eps * eps).sqrt()


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    return _pnorm(x1 - x2 + eps, p, -1, keepdim)


# ---- losses -------------------------------------------------------------------------------------
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
        import warnings
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input "
                      f"size ({input.shape}). This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None):
    _check_sizes(input, target, "l1_loss")
    loss = (input - target).abs()
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None):
    _check_sizes(input, target, "mse_loss")
    d = input - target
    loss = d * d
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


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


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    _check_sizes(input, target, "huber_loss")
    d = input - target
    ad = d.abs()
    loss = _where(ad < delta, d * d * 0.5, (ad - 0.5 * delta) * delta)
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """-(t log x + (1 - t) log(1 - x)), each log clamped at -100 as in PyTorch."""
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same "
                         "size.")
    loss = ops.ew(ops.NN_BCE, input, target)
    if weight is not None:
        loss = loss * weight
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


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
        import warnings
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


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean"):
    """-input[n, target[n]] * weight[target[n]], rows with ignore_index left out."""
    from ..tensor.creation import arange
    red = _reduction(size_average, reduce, reduction)
    if input.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    _check_target(input, target)
    N, C, S = _class_shape(input)
    x = input.reshape(N, C, S)
    t = target.reshape(N, 1, S)
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
    from ..dtypes import int64
    t = _dense(target.to(int64).reshape(-1))
    w = _dense(weight.to(x.dtype)) if weight is not None else None
    loss, wrow = ops.cross_entropy_rows(_dense(x).reshape(N, C, S), t, w, ignore_index,
                                        label_smoothing)
    if orig is not None:
        loss, wrow = loss.to(orig), wrow.to(orig)
    if red == "none":
        return loss.reshape(target.shape)
    if red == "sum":
        return loss.sum()
    return loss.sum() / wrow.sum()


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


def margin_ranking_loss(input1, input2, target, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean"):
    loss = (-target * (input1 - input2) + margin).relu()
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    loss = softplus(-target * input)
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    zeros = input * 0
    loss = (_where(target == 1, input, zeros) +
            _where(target == -1, (margin - input).relu(), zeros))
    return _apply_reduction(loss, _reduction(size_average, reduce, reduction))


# ---- re-exports from the other groups (guarded: each lands on its own branch) -------------------
_CONV_NAMES = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d",
               "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
               "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
               "max_unpool1d", "max_unpool2d", "interpolate", "upsample", "pixel_shuffle",
               "pixel_unshuffle")
try:
    from .. import _conv
except ImportError:
    _conv = None
# name by name, so one function missing there does not hide the others
for _name in _CONV_NAMES if _conv is not None else ():
    if hasattr(_conv, _name):
        globals()[_name] = getattr(_conv, _name)
try:
    from ..tensor.shape import pad  # noqa: F401
except ImportError:
    pass
try:
    from ..tensor.shape import one_hot  # noqa: F401,F811
except ImportError:
    pass


# ---- sequence models
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None, enable_gqa: bool = False):
    """softmax(Q K^T * scale + mask) V over the last two dims, batch dims broadcast.

    Args:
        query (*, L, E), key (*, S, E), value (*, S, Ev).
        attn_mask: boolean (True = the pair takes part) or float (added to the scores),
            broadcastable to (*, L, S).
        dropout_p: dropout on the attention probabilities.
        is_causal: query i sees keys j <= i (top-left aligned); attn_mask must then be None.
        scale: defaults to 1 / sqrt(E).
        enable_gqa: key/value may have fewer heads (dim -3) than query, a divisor of them.

    Shape: -> (*, L, Ev).

    Without dropout this is one streaming kernel (online softmax, no (L, S) matrix stored);
    its gradient recomputes the probabilities with matmul + softmax.
    """
    from .. import _attention
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError("scaled_dot_product_attention: query, key and value must be at "
                           "least 2-D")
    if query.dtype is not key.dtype or query.dtype is not value.dtype:
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got "
                           f"query.dtype: {query.dtype.name} key.dtype: {key.dtype.name} and "
                           f"value.dtype: {value.dtype.name} instead.")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"scaled_dot_product_attention: query and key must have the same "
                           f"embedding dimension, got {query.shape[-1]} and {key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: key and value must have the same "
                           f"sequence length, got {key.shape[-2]} and {value.shape[-2]}")
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                           "set when is_causal=True")
    _check_p(dropout_p)
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hk == 0 or hq % hk or hq % value.shape[-3]:
            raise RuntimeError(f"number of heads in key/value ({hk}) must divide the number "
                               f"of heads in query ({hq})")
        key = key.repeat_interleave(hq // hk, -3)
        value = value.repeat_interleave(hq // value.shape[-3], -3)
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    bias = _attention.additive_mask(attn_mask, query.dtype)
    if query.dtype.ctype not in ("float", "double") or dropout_p > 0.0 or \
            value.shape[-1] > _attention.MAX_FUSED_DV:
        return _attention.sdpa_math(query, key, value, bias, scale, is_causal, dropout_p)
    from ..view import broadcast_shapes
    shapes = [query.shape[:-2], key.shape[:-2], value.shape[:-2]]
    if bias is not None:
        shapes.append(bias.shape[:-2])
    batch = tuple(broadcast_shapes(*shapes))
    q = query.expand(*batch, L, query.shape[-1])
    k = key.expand(*batch, S, key.shape[-1])
    v = value.expand(*batch, S, value.shape[-1])
    return _attention.sdpa_fused(q, k, v, bias, scale, is_causal)


def _mha_float_mask(mask, dtype, name):
    """MultiheadAttention's masks mark the pairs to *leave out* when boolean: True -> -inf."""
    if mask is None:
        return None
    if mask.dtype.name == "bool":
        from ..tensor.creation import zeros
        return zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask,
                                                                              float("-inf"))
    if not mask.dtype.is_floating:
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask.to(dtype)


def multi_head_attention_forward(query, key, value, embed_dim_to_check: int, num_heads: int,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v,
                                 add_zero_attn: bool, dropout_p: float, out_proj_weight,
                                 out_proj_bias, training: bool = True, key_padding_mask=None,
                                 need_weights: bool = True, attn_mask=None,
                                 use_separate_proj_weight: bool = False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights: bool = True,
                                 is_causal: bool = False):
    """Multi-head attention on sequence-first inputs: query (L, N, E) or (L, E), key/value
    (S, N, E_k/E_v). Returns (output (L, N, E), weights (N, L, S) averaged over heads, or
    (N, H, L, S), or None when need_weights is False). Boolean masks here mark what is masked
    out (True = ignore), as in PyTorch's MultiheadAttention."""
    from ..tensor.shape import cat
    if static_k is not None or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: static_k/static_v are not "
                                  "supported")
    batched = query.ndim == 3
    if query.ndim not in (2, 3):
        raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received "
                             f"{query.ndim}-D query tensor")
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    L, N, E = query.shape
    S = key.shape[0]
    if E != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but "
                             f"got {E}")
    if E % num_heads:
        raise AssertionError(f"embed_dim {E} not divisible by num_heads {num_heads}")
    hd = E // num_heads
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                           "Transformer module method `generate_square_subsequent_mask` to "
                           "create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None        # the hint replaces the mask: the kernel skips masked keys
    else:
        is_causal = False
    # ---- input projections
    if not use_separate_proj_weight:
        wq, wk, wv = in_proj_weight[:E], in_proj_weight[E:2 * E], in_proj_weight[2 * E:]
    else:
        wq, wk, wv = q_proj_weight, k_proj_weight, v_proj_weight
    bq = bk = bv = None
    if in_proj_bias is not None:
        bq, bk, bv = in_proj_bias[:E], in_proj_bias[E:2 * E], in_proj_bias[2 * E:]
    q = linear(query, wq, bq)                                     # (L, N, E)
    k = linear(key, wk, bk)                                       # (S, N, E)
    v = linear(value, wv, bv)                                     # (S, N, E)
    attn_mask = _mha_float_mask(attn_mask, q.dtype, "attn_mask")
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if tuple(attn_mask.shape) != (L, S):
                raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}"
                                   f", but should be {(L, S)}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.ndim == 3:
            if tuple(attn_mask.shape) != (N * num_heads, L, S):
                raise RuntimeError(f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}"
                                   f", but should be {(N * num_heads, L, S)}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")
    kpm = _mha_float_mask(key_padding_mask, q.dtype, "key_padding_mask")
    if bias_k is not None and bias_v is not None:
        k = cat([k, bias_k.expand(1, N, E)], 0)                   # (S+1, N, E)
        v = cat([v, bias_v.expand(1, N, E)], 0)
        if attn_mask is not None:
            attn_mask = _pad_last(attn_mask)
        if kpm is not None:
            kpm = _pad_last(kpm)
    q = q.reshape(L, N * num_heads, hd).transpose(0, 1)           # (N*H, L, hd)
    k = k.reshape(k.shape[0], N * num_heads, hd).transpose(0, 1)  # (N*H, S, hd)
    v = v.reshape(v.shape[0], N * num_heads, hd).transpose(0, 1)
    if add_zero_attn:
        from ..tensor.creation import zeros
        z = zeros(N * num_heads, 1, hd, dtype=q.dtype, device=q.device)
        k, v = cat([k, z], 1), cat([v, z], 1)
        if attn_mask is not None:
            attn_mask = _pad_last(attn_mask)
        if kpm is not None:
            kpm = _pad_last(kpm)
    S2 = k.shape[1]
    if kpm is not None:
        if tuple(kpm.shape) != (N, S2):
            raise AssertionError(f"expecting key_padding_mask shape of {(N, S2)}, but got "
                                 f"{tuple(kpm.shape)}")
        kpm = kpm.reshape(N, 1, 1, S2).expand(N, num_heads, 1, S2).reshape(N * num_heads, 1,
                                                                           S2)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0
    if need_weights:
        from .. import _attention
        s = _attention.scores(q, k, attn_mask, 1.0 / math.sqrt(hd), False)   # (N*H, L, S)
        w = s.softmax(-1)
        wd = dropout(w, dropout_p, True) if dropout_p > 0.0 else w
        out = wd @ v                                                          # (N*H, L, hd)
        out = out.transpose(0, 1).reshape(L * N, E)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(L, N, E)
        w = w.reshape(N, num_heads, L, S2)
        if average_attn_weights:
            w = w.mean(1)
        if not batched:
            out, w = out.squeeze(1), w.squeeze(0)
        return out, w
    if attn_mask is not None:
        attn_mask = attn_mask.reshape(N, num_heads, -1, S2) if attn_mask.shape[0] != 1 \
            else attn_mask.unsqueeze(0)
    qh = q.reshape(N, num_heads, L, hd)
    kh = k.reshape(N, num_heads, S2, hd)
    vh = v.reshape(N, num_heads, S2, hd)
    out = scaled_dot_product_attention(qh, kh, vh, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(L * N, E)                          # (L*N, E)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(L, N, E)
    if not batched:
        out = out.squeeze(1)
    return out, None


def _pad_last(mask):
    """A zero column appended to the last dim of a float mask (for bias_k / zero attention)."""
    from ..tensor.shape import cat
    from ..tensor.creation import zeros
    return cat([mask, zeros(*mask.shape[:-1], 1, dtype=mask.dtype, device=mask.device)], -1)
