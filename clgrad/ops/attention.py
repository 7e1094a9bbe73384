"""Scaled dot-product attention: a streaming (online-softmax) forward kernel, a forward for
Tensor._apply, and the matmul + softmax formulation (Tensor methods) its gradient uses."""
from __future__ import annotations

import math

from ..runtime import codegen, gemm
from .base import copy_into
from .linalg import matmul2
from .movement import scatter_view

_I, _L = "int", "long"
MAX_FUSED_DV = 256          # the fused kernel keeps a value row in private memory
# Where the CPU GEMM kernels run, the forward is two batched GEMMs around one probabilities kernel
# and keeps the (N, L, S) probabilities for the backward, up to this many of them (256 MiB of
# float32); past it, the streaming kernel. Measured on Intel's runtime (tools/kernel_profile.py,
# the bench Transformer, (N, L, E) = (128, 64, 32) causal): the streaming kernel took ~45 ms a
# layer, the GEMMs and the probabilities kernel ~2 ms: one work-item per query row walking its
# keys is scalar work, where the GEMMs are register-blocked vector code.
MAX_GEMM_SCORES = 1 << 26
# Measured on PoCL (2 shared cores), causal, float32: (N, L, E) = (8, 64, 16) 2.3 ms fused vs
# 18.8 ms matmul + softmax; (8, 256, 32) 44 vs 166 ms; (4, 512, 64) 124 vs 507 ms. So the fused
# kernel is used whenever it applies (no dropout, float32/64, Ev <= MAX_FUSED_DV). It streams
# keys from global memory without __local tiles: on CPU devices the caches do that work.


def additive_mask(attn_mask, dtype):
    """PyTorch's two mask kinds as one additive bias: a boolean mask marks the pairs that take
    part (True -> 0, False -> -inf); a float mask is added as it is."""
    if attn_mask is None:
        return None
    if attn_mask.dtype.name == "bool":
        return attn_mask.new_zeros((), dtype=dtype).where(attn_mask, float("-inf"))
    if not attn_mask.dtype.is_floating:
        raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query "
                           f"dtype, but got attn_mask.dtype: {attn_mask.dtype.name}")
    return attn_mask if attn_mask.dtype is dtype else attn_mask.to(dtype)


def causal_bias(L, S, dtype, device_like):
    """(L, S) float bias, -inf above the diagonal (key j may be seen by query i iff j <= i)."""
    return device_like.new_full((L, S), float("-inf"), dtype=dtype).triu(1)


def scores(q, k, bias, scale, is_causal):
    """q k^T * scale + bias (+ the causal bias): (..., L, S)."""
    s = (q @ k.mT) * scale
    if is_causal:
        s = s + causal_bias(q.shape[-2], k.shape[-2], s.dtype, s)
    if bias is not None:
        s = s + bias
    return s


def probs(s):
    """softmax over the last dim, with rows whose scores are all -inf (every key masked out)
    giving zeros instead of NaN, as PyTorch's attention does; those rows pass no gradient."""
    dead = s.amax(-1, keepdim=True) == float("-inf")
    return s.masked_fill(dead, 0.0).softmax(-1).masked_fill(dead, 0.0)


def _mask_strides(bias, batch, L, S):
    """(offset, sb, sh, sl, ss) reading `bias` as (outer batch, last batch dim, L, S)."""
    nb = len(batch)
    shape = tuple(batch) + (L, S)
    v = bias._view.expand(shape)
    if nb > 2:
        outer = math.prod(batch[:-1])
        bias = bias.expand(shape).contiguous().reshape(outer, batch[-1], L, S)
        v = bias._view
        st = v.strides
    else:
        st = (0,) * (2 - nb) + tuple(v.strides)
    return bias, v.offset, st


def _kernel(q, name, Ev):
    dv = 16
    while dv < Ev:
        dv *= 2
    args = {"clg_sdpa_fwd": [None] * 5 + [_I, _L, _L, _L, _L, _L, _I, q.dtype.ctype] + [_I] * 6,
            "clg_sdpa_probs": [None] * 2 + [_I, _L, _L, _L, _L, _L, _I, q.dtype.ctype] + [_I] * 4,
            "clg_sdpa_probs_bwd": [None, None, q.dtype.ctype, _L, _I]}[name]
    return codegen.seq_kernel(q.device, "attention", name, q.dtype.ctype, args, dv=dv)


def _uses_gemm(q, N, L, S):
    return gemm.family_for(q.device, q.dtype) == "cpu" and N * L * S <= MAX_GEMM_SCORES


def _probs(q, k, bias, scale, is_causal):
    """softmax(q k^T * scale + bias) (causal: keys past the query dropped), (*batch, L, S), from
    one batched GEMM and one kernel over its rows, in place."""
    batch = tuple(q.shape[:-2])
    L, S = q.shape[-2], k.shape[-2]
    p = matmul2(q, k.mT)
    if bias is not None:
        mbuf, moff, (mb, mh, ml, ms) = _mask_strides(bias, batch, L, S)
    else:
        mbuf, moff, (mb, mh, ml, ms) = p, 0, (0, 0, 0, 0)
    N = math.prod(batch)
    _kernel(q, "clg_sdpa_probs", 1).launch_1d(
        N * L, p._buf.raw, mbuf._buf.raw, int(bias is not None), moff, mb, mh, ml, ms,
        int(is_causal), float(scale), N, batch[-1] if batch else 1, L, S)
    return p


def _recording(ctx) -> bool:
    """Whether this backward is itself recorded (create_graph=True)."""
    return ctx._records_backward


def sdpa_fused(ctx, q, k, v, bias, scale: float, is_causal: bool):
    """Attention output (*batch, L, Ev) of q (*batch, L, E), k (*batch, S, E), v (*batch, S, Ev)
    with an additive float bias broadcastable to (*batch, L, S) (or None): two batched GEMMs
    around one probabilities kernel on CPU GEMM devices (strided operands, no copies), else one
    streaming kernel."""
    T = q._plain
    batch = tuple(q.shape[:-2])
    L, E = q.shape[-2:]
    S, Ev = v.shape[-2:]
    N = math.prod(batch)
    Hh = batch[-1] if batch else 1
    probs_ = None
    if N * L and _uses_gemm(q, N, L, S):
        probs_ = _probs(q, k, bias, scale, is_causal)              # (*batch, L, S)
        out = probs_ @ v                                           # (*batch, L, Ev)
    else:
        out = _streaming(T, q, k, v, bias, scale, is_causal, batch, N, Hh, L, S, E, Ev)
    if ctx is not None:
        ctx.save_for_backward(q, k, v, bias)
        ctx.probs = probs_

    def backward(ctx, g):
        sq, sk, sv, sb = ctx.saved_tensors
        n = ctx.needs_input_grad
        p = ctx.probs
        if p is None or n[3] or _recording(ctx):
            # recompute the probabilities with matmul + softmax; written with Tensor ops, so
            # create_graph=True differentiates through it
            p = probs(scores(sq, sk, sb, scale, is_causal))           # (..., L, S)
            dv_ = p.mT @ g if n[2] else None
            ds = None
            if n[0] or n[1] or n[3]:
                dp = g @ sv.mT
                ds = p * (dp - (dp * p).sum(-1, keepdim=True))
            dq = (ds @ sk) * scale if n[0] else None
            dk = (ds.mT @ sq) * scale if n[1] else None
            return dq, dk, dv_, (ds if n[3] else None)
        dv_ = p.mT @ g if n[2] else None
        dq = dk = None
        if n[0] or n[1]:
            ds = g @ sv.mT                                   # (..., L, S) fresh: ds in place
            _kernel(sq, "clg_sdpa_probs_bwd", sv.shape[-1]).launch_1d(
                N * L, ds._buf.raw, p._buf.raw, float(scale), N * L, S)
            dq = ds @ sk if n[0] else None
            dk = ds.mT @ sq if n[1] else None
        return dq, dk, dv_, None
    return out, "ScaledDotProductAttentionBackward0", backward


def _streaming(T, q, k, v, bias, scale, is_causal, batch, N, Hh, L, S, E, Ev):
    """The online-softmax kernel: contiguous copies of q, k, v, one work-item per query row."""
    qc = q.contiguous()
    kc = k.contiguous()
    vc = v.contiguous()
    qc = qc if qc._view.offset == 0 else qc.clone()
    kc = kc if kc._view.offset == 0 else kc.clone()
    vc = vc if vc._view.offset == 0 else vc.clone()
    out = T._empty(batch + (L, Ev), q.dtype, q.device)
    if N * L:
        if bias is not None:
            mbuf, moff, (mb, mh, ml, ms) = _mask_strides(bias, batch, L, S)
        else:
            mbuf, moff, (mb, mh, ml, ms) = qc, 0, (0, 0, 0, 0)
        _kernel(q, "clg_sdpa_fwd", Ev).launch_1d(
            N * L, out._buf.raw, qc._buf.raw, kc._buf.raw, vc._buf.raw, mbuf._buf.raw,
            int(bias is not None), moff, mb, mh, ml, ms, int(is_causal), float(scale), N, Hh, L,
            S, E, Ev)
    return out


def qkv_view(view, part: int, heads: int, batch_major: bool):
    """The (N, H, L, hd) view of q (part 0), k (1) or v (2) in a packed projection: a contiguous
    (N, L, 3E) (`batch_major`) or (L, N, 3E) view of tokens, each row q | k | v, heads inside."""
    outer, inner, e3 = view.shape
    v = view.reshape((outer, inner, 3, heads, e3 // (3 * heads))).select(2, part)
    return v.permute((0, 2, 1, 3) if batch_major else (1, 2, 0, 3))


def heads_view(view, heads: int, batch_major: bool):
    """The (N, H, L, hd) view of a contiguous (N, L, E) or (L, N, E) attention output."""
    outer, inner, e = view.shape
    v = view.reshape((outer, inner, heads, e // heads))
    if v is None:
        return None
    return v.permute((0, 2, 1, 3) if batch_major else (1, 2, 0, 3))


def sdpa_packed(ctx, qkv, bias, heads: int, batch_major: bool, scale: float, is_causal: bool):
    """Self-attention on a packed projection qkv (N, L, 3E) (`batch_major`) or (L, N, 3E),
    contiguous, into a contiguous result of the same token order (N, L, E) or (L, N, E): the
    layouts multi-head attention reads and writes, so no head is ever copied out. The GEMMs take
    the strided head views; the gradient's three parts are written into one (.., 3E) buffer.
    On devices without the CPU GEMM kernels the streaming kernel runs on contiguous copies."""
    T = qkv._plain
    outer, inner, e3 = qkv.shape
    E = e3 // 3
    N, L = (outer, inner) if batch_major else (inner, outer)
    q, k, v = (T._make(qkv._buf, qkv_view(qkv._view, i, heads, batch_major), qkv.dtype)
               for i in range(3))
    res = T._empty((outer, inner, E), qkv.dtype, qkv.device)
    o = T._make(res._buf, heads_view(res._view, heads, batch_major), res.dtype)
    p = None
    if N * L and _uses_gemm(qkv, N * heads, L, L):
        p = _probs(q, k, bias, scale, is_causal)
        matmul2(p, v, out=o)
    elif N * L:
        copy_into(o, _streaming(T, q, k, v, bias, scale, is_causal, (N, heads), N * heads,
                                heads, L, L, E // heads, E // heads))
    if ctx is not None:
        ctx.save_for_backward(qkv, bias)
        ctx.probs = p

    def backward(ctx, g):
        sqkv, sb = ctx.saved_tensors
        fn = [lambda w, i=i: qkv_view(w, i, heads, batch_major) for i in range(3)]
        order = (0, 2, 1, 3) if batch_major else (1, 2, 0, 3)
        if ctx.probs is None or ctx.needs_input_grad[1] or _recording(ctx):
            # Tensor ops (double backward, a mask's gradient, the streaming kernel's recompute)
            hv = [sqkv.reshape(outer, inner, 3, heads, E // heads).select(2, i).permute(*order)
                  for i in range(3)]
            gv = g.reshape(outer, inner, heads, E // heads).permute(*order)
            pr = probs(scores(hv[0], hv[1], sb, scale, is_causal))
            dp = gv @ hv[2].mT
            ds = pr * (dp - (dp * pr).sum(-1, keepdim=True))
            parts = ((ds @ hv[1]) * scale, (ds.mT @ hv[0]) * scale, pr.mT @ gv)
            gq = None
            for i, d in enumerate(parts):
                d = d._apply(scatter_view, d, sqkv.shape, fn[i])
                gq = d if gq is None else gq + d
            return gq, (ds if ctx.needs_input_grad[1] else None)
        pr = ctx.probs
        w = heads_view(g._view, heads, batch_major)
        if w is None:
            g = g.contiguous()
            w = heads_view(g._view, heads, batch_major)
        gh = g._plain._make(g._buf, w, g.dtype)
        G = sqkv._plain._empty(sqkv.shape, sqkv.dtype, sqkv.device)
        hq, hk, hv = (sqkv._plain._make(sqkv._buf, f(sqkv._view), sqkv.dtype) for f in fn)
        gq, gk, gv = (G._plain._make(G._buf, f(G._view), G.dtype) for f in fn)
        matmul2(pr.mT, gh, out=gv)
        ds = matmul2(gh, hv.mT)                             # (N, H, L, L) fresh: ds in place
        _kernel(sqkv, "clg_sdpa_probs_bwd", 1).launch_1d(
            N * heads * L, ds._buf.raw, pr._buf.raw, float(scale), N * heads * L, L)
        matmul2(ds, hk, out=gq)
        matmul2(ds.mT, hq, out=gk)
        return G, None
    return res, "ScaledDotProductAttentionBackward0", backward
