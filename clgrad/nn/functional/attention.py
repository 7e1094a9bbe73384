"""Scaled dot-product and multi-head attention."""
from __future__ import annotations

import math

from ...tensor import nn_ops
from ...tensor.apply import autocast_policy
from ...tensor.creation import zeros
from ...tensor.shape import cat
from ...view import broadcast_shapes
from .dropout import _check_p, dropout
from .linear import linear


@autocast_policy("low")
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
    bias = nn_ops.additive_mask(attn_mask, query.dtype)
    if query.dtype.ctype not in ("float", "double") or dropout_p > 0.0 or \
            value.shape[-1] > nn_ops.MAX_FUSED_DV:
        return _sdpa_math(query, key, value, bias, scale, is_causal, dropout_p)
    shapes = [query.shape[:-2], key.shape[:-2], value.shape[:-2]]
    if bias is not None:
        shapes.append(bias.shape[:-2])
    batch = tuple(broadcast_shapes(*shapes))
    q = query.expand(*batch, L, query.shape[-1])
    k = key.expand(*batch, S, key.shape[-1])
    v = value.expand(*batch, S, value.shape[-1])
    return nn_ops.sdpa_fused(q, k, v, bias, scale, is_causal)


def _mha_float_mask(mask, dtype, name):
    """MultiheadAttention's masks mark the pairs to *leave out* when boolean: True -> -inf."""
    if mask is None:
        return None
    if mask.dtype.name == "bool":
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
    if (query is key and key is value and not use_separate_proj_weight and bias_k is None
            and bias_v is None and not add_zero_attn and not need_weights
            and key_padding_mask is None and (dropout_p == 0.0 or not training)
            and query.dtype.ctype in ("float", "double")
            and (attn_mask is None or attn_mask.ndim == 2)):
        out = _self_attention_packed(query, num_heads, in_proj_weight, in_proj_bias,
                                     out_proj_weight, out_proj_bias, attn_mask, is_causal)
        return (out if batched else out.squeeze(1)), None
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
        s = nn_ops.scores(q, k, attn_mask, 1.0 / math.sqrt(hd), False)   # (N*H, L, S)
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


def _self_attention_packed(x, heads, w_in, b_in, w_out, b_out, attn_mask, is_causal):
    """Self-attention of x (L, N, E) as PyTorch's packed-projection path: one linear for q, k and
    v, attention on head views of its result (no copies), the output projection. Tokens stay in
    x's memory order: batch-major when x is a transpose of a contiguous (N, L, E)."""
    L, N, E = x.shape
    batch_major = x.transpose(0, 1).is_contiguous()
    xt = x.transpose(0, 1) if batch_major else x.contiguous()            # (N, L, E) or (L, N, E)
    qkv = linear(xt, w_in, b_in).contiguous()                             # (.., .., 3E)
    bias = _mha_float_mask(attn_mask, x.dtype, "attn_mask")
    if bias is not None and tuple(bias.shape) != (L, L):
        raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(bias.shape)}, but should "
                           f"be {(L, L)}.")
    if qkv.dtype.ctype in ("float", "double"):
        o = nn_ops.sdpa_packed(qkv, bias, heads, batch_major, 1.0 / math.sqrt(E // heads),
                               is_causal)                                  # (.., .., E)
    else:       # autocast's 16-bit projection: attention with Tensor ops on head views
        order = (0, 2, 1, 3) if batch_major else (1, 2, 0, 3)
        q, k, v = (qkv.reshape(*xt.shape[:2], 3, heads, E // heads).select(2, i).permute(*order)
                   for i in range(3))                                      # (N, H, L, hd)
        o = scaled_dot_product_attention(q, k, v, bias, 0.0, is_causal)
        o = o.permute(*((0, 2, 1, 3) if batch_major else (2, 0, 1, 3)))
    o = linear(o.reshape(-1, E), w_out, b_out).reshape(xt.shape)
    return o.transpose(0, 1) if batch_major else o                       # (L, N, E)


def _pad_last(mask):
    """A zero column appended to the last dim of a float mask (for bias_k / zero attention)."""
    return cat([mask, zeros(*mask.shape[:-1], 1, dtype=mask.dtype, device=mask.device)], -1)


def _sdpa_math(q, k, v, bias, scale: float, is_causal: bool, dropout_p: float):
    """softmax(q k^T * scale + bias) (dropped out) @ v with Tensor ops."""
    p = nn_ops.probs(nn_ops.scores(q, k, bias, scale, is_causal))
    if dropout_p > 0.0:
        p = dropout(p, dropout_p, True)
    return p @ v
