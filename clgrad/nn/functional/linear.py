"""Linear maps, embeddings, one_hot and distances."""
from __future__ import annotations

import math

from ... import autograd
from ...dtypes import int64, torch_name
from ...tensor.apply import autocast_policy
from ...tensor import nn_ops
from ...tensor.creation import arange
from .activation import _dense, _where
from .normalization import _float_for_kernel


@autocast_policy("low")
def linear(input, weight, bias=None):
    """y = input @ weight^T + bias.  Shape: (*, in), (out, in), (out,) -> (*, out).
    With a bias, as PyTorch: the input is viewed as a matrix and one addmm (the bias added in
    the GEMM's epilogue, AddmmBackward0) runs, then viewed back."""
    if bias is None or input.ndim == 0 or weight.ndim != 2 or bias.ndim > 1:
        out = input.matmul(weight.t())
        return out + bias if bias is not None else out
    if input.shape[-1] != weight.shape[1]:
        lead = list(input.shape[:-1]) if input.ndim > 1 else [1]
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied "
                           f"({math.prod(lead)}x{input.shape[-1]} and "
                           f"{weight.shape[1]}x{weight.shape[0]})")
    if input.ndim == 2:
        return nn_ops.addmm(bias, input, weight.t())
    x2 = input.reshape(-1, input.shape[-1])
    out = nn_ops.addmm(bias, x2, weight.t())
    return out.reshape(tuple(input.shape[:-1]) + (weight.shape[0],))


@autocast_policy("low")
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




# ---- embedding ----------------------------------------------------------------------------------
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False):
    """Rows of `weight` at the integer indices `input`.  Shape: (*) -> (*, embedding_dim)."""
    if input.dtype.is_floating:
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           "following scalar types: Long, Int; but got "
                           f"{torch_name(input.dtype)} instead")
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
    out = nn_ops.embedding_lookup(w, idx, padding_idx)
    out = out.reshape(tuple(input.shape) + (weight.shape[1],))
    return out.to(orig) if orig is not None else out


def _embedding_renorm_(weight, input, max_norm, norm_type):
    """Rescale in place the rows of `weight` that `input` references and whose norm exceeds
    max_norm (to max_norm / (norm + 1e-7), as PyTorch), all on the device."""
    V = weight.shape[0]
    with autograd.no_grad():
        idx = input.reshape(-1, 1)
        used = (idx == arange(V, device=weight.device).reshape(1, V)).any(0)     # (V,)
        norms = _pnorm(weight.detach(), norm_type, 1, False)
        scale = _where(used * (norms > max_norm), max_norm / (norms + 1e-7), 1.0)
        weight.mul_(scale.to(weight.dtype).unsqueeze(1))


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


@autocast_policy("fp32")
def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None):
    """input / max(||input||_p along dim, eps)."""
    n = _pnorm(input, p, dim, True)
    return input / n.maximum(eps).expand(input.shape)


@autocast_policy("fp32")
def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    w12 = (x1 * x2).sum(dim)
    w1 = (x1 * x1).sum(dim)
    w2 = (x2 * x2).sum(dim)
    return w12 / (w1 * w2).maximum(eps * eps).sqrt()


@autocast_policy("fp32")
def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    return _pnorm(x1 - x2 + eps, p, -1, keepdim)
