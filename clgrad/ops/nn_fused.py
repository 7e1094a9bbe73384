"""Fused nn kernels: activations, losses, norms, dropout, embedding and optimizer updates;
forwards for Tensor._apply."""
from __future__ import annotations

import numpy as np

from ..runtime import capture, codegen, faults
from ..runtime.errors import DeviceIndexError
from ..view import View
from .base import Op, _check_devices, _need, ew

_SCALAR = View.contiguous(())

def _fused_guard(ctx, name):
    ctx.forbid_double_backward(name)


def _bce_backward(ctx, g):
    x, t = ctx.arg(0), ctx.arg(1)
    gx = gt = None
    if ctx.needs_input_grad[0]:
        # PyTorch's form: (x - t) / max(x (1 - x), 1e-12) stays finite at x = 0 and 1
        gx = g * (x - t) / (x * (1 - x)).maximum(1e-12)
    if ctx.needs_input_grad[1]:
        gt = g * ((1 - x).log().maximum(-100.0) - x.log().maximum(-100.0))
    return gx, gt


NN_BCE = Op("binary_cross_entropy",
            "-(x1 * fmax(log(x0), F(-100.0)) + (F(1.0) - x1) * fmax(log(F(1.0) - x0), F(-100.0)))",
            _bce_backward, dtype="float", save="x",
            ref=lambda x, t: -(t * np.log(x) + (1 - t) * np.log(1 - x)),
            sample=((0.1, 0.9), (0.0, 1.0)))
RECORDS = (NN_BCE,)


def dense(t):
    """t itself when contiguous from the start of its buffer (what the fixed-layout nn kernels
    read), else a contiguous copy (recorded by autograd like clone)."""
    return t if t._view.is_contiguous() and t._view.offset == 0 else t.clone()


def _nn_real(x):
    if x.dtype.ctype not in ("float", "double"):
        raise RuntimeError(f"expected a float32 or float64 tensor, got {x.dtype.name}")
    return x.dtype.ctype


# fault sites (runtime/faults.py): PyTorch's messages, raised at the next sync
_CE_TARGET = faults.site("cross_entropy", DeviceIndexError, "Target {value} is out of bounds.")
_EMBEDDING_INDEX = faults.site("embedding", DeviceIndexError, "index out of range in self "
                               "(index {value}, num_embeddings {limit})")


def cross_entropy_rows(ctx, x, target, weight, ignore_index: int, smoothing: float):
    """Per-row cross entropy of logits x (N, C, S) contiguous against class indices target
    (N*S,) int64. Returns (loss (N*S,), row weight (N*S,)); row weight is 0 for ignored rows and
    is the denominator of the 'mean' reduction."""
    T = x._plain
    real = _nn_real(x)
    N, C, S = x.shape
    dev = _check_devices([x, target] + ([weight] if weight is not None else []))
    loss = T._empty((N * S,), x.dtype, dev)
    wrow = T._empty((N * S,), x.dtype, dev)
    lse = T._empty((N * S,), x.dtype, dev)
    if N * S == 0:
        return (loss, wrow), "NllLossBackward0", None
    I = "int"
    k = codegen.nn_kernel(dev, "loss", "clg_ce_forward", real,
                          [None] * 6 + [I, "long", real, I, I, I, None, I])
    wbuf = weight if weight is not None else x
    k.launch_1d(N * S, loss._buf.raw, wrow._buf.raw, lse._buf.raw, x._buf.raw, target._buf.raw,
                wbuf._buf.raw, int(weight is not None), int(ignore_index), float(smoothing),
                N, C, S, faults.flag(dev), _CE_TARGET)
    wrow = wrow.detach()
    if ctx is not None:
        ctx.save_for_backward(x, lse)
        ctx.mark_non_differentiable(wrow)
        ctx.materialize_grads = False     # only the loss has a gradient

    def backward(ctx, g, _):
        _fused_guard(ctx, "cross_entropy")
        xs, lse_ = ctx.saved_tensors
        gv = g._view
        if any(st != 0 for st in gv.strides):
            g = dense(g)                # a row's gradient at row * 1
            gv = g._view
        step = int(any(st != 0 for st in gv.strides))
        return _ce_backward(xs, lse_, target, g, step, None, weight, ignore_index, smoothing)
    return (loss, wrow), "NllLossBackward0", backward


def _ce_backward(xs, lse, target, g, g_step, div, weight, ignore_index, smoothing):
    """(dx, None, None) of cross entropy: one clg_ce_backward launch. Row r's incoming gradient
    is g[offset + r * g_step], divided by div[1] when `div` (clg_ce_reduce's output) is given."""
    N, C, S = xs.shape
    real = _nn_real(xs)
    I = "int"
    kb = codegen.nn_kernel(xs.device, "loss", "clg_ce_backward", real,
                           [None] * 5 + [I, I, None, I, None, I, None, "long", real, I, I, I])
    # the class weights' sum, which only label smoothing reads
    wsum = weight.detach().sum() if weight is not None and smoothing else None
    dx = xs._plain._empty(xs.shape, xs.dtype, xs.device)
    kb.launch_1d(N * C * S, dx._buf.raw, xs._buf.raw, lse._buf.raw, target._buf.raw,
                 g._buf.raw, g._view.offset, g_step, (div if div is not None else xs)._buf.raw,
                 int(div is not None), (weight if weight is not None else xs)._buf.raw,
                 int(weight is not None), (wsum if wsum is not None else xs)._buf.raw,
                 int(ignore_index), float(smoothing), N, C, S)
    return dx, None, None


# the most elements (rows x classes) cross_entropy_reduced takes: one work-group reads them all
CE_REDUCED_MAX = 1 << 16


def cross_entropy_reduced(ctx, x, target, weight, ignore_index: int, smoothing: float,
                          mean: bool):
    """Cross entropy of logits x (N, C, S) contiguous against class indices target (N*S,) int64,
    reduced to one value ('mean' over the kept rows' weights, or 'sum') in one launch of one
    work-group; its gradient is one more launch. For N * C * S <= CE_REDUCED_MAX (the loss of
    a classifier's batch), where the per-row kernel, two sums and a division took four launches
    and the gradient two."""
    T = x._plain
    real = _nn_real(x)
    N, C, S = x.shape
    dev = _check_devices([x, target] + ([weight] if weight is not None else []))
    out = T._empty((2,), x.dtype, dev)      # [loss, total row weight]
    lse = T._empty((max(N * S, 1),), x.dtype, dev)
    I = "int"
    k = codegen.nn_kernel(dev, "loss", "clg_ce_reduce", real,
                          [None] * 5 + [I, "long", real, I, I, I, I, None, I, None])
    limit = max(1, min(k.max_group, dev.max_work_group_size,
                       dev.local_mem_size // (2 * x.dtype.itemsize)))
    # PoCL builds a work-group function per local size: there it stays fixed per kernel
    L = min(limit, 256) if k.one_local else min(limit, 256, max(1, 1 << (N * S - 1).bit_length()))
    wbuf = weight if weight is not None else x
    k((L,), (L,), out._buf.raw, lse._buf.raw, x._buf.raw, target._buf.raw, wbuf._buf.raw,
      int(weight is not None), int(ignore_index), float(smoothing), N, C, S, int(mean),
      faults.flag(dev), _CE_TARGET, codegen.local_mem(2 * L * x.dtype.itemsize))
    loss = T._make(out._buf, _SCALAR, x.dtype)
    if ctx is not None:
        ctx.save_for_backward(x, lse)

    def backward(ctx, g):
        _fused_guard(ctx, "cross_entropy")
        xs, lse_ = ctx.saved_tensors
        return _ce_backward(xs, lse_, target, g, 0, out if mean else None, weight,
                            ignore_index, smoothing)
    return loss, "NllLossBackward0", backward


def norm_rows(ctx, x, weight, bias, eps: float, per_row=False):
    """Normalise each row r of a contiguous (A, R, B) tensor over its A*B elements, then apply
    weight/bias indexed per row (per_row) or per b. Returns (y, mean (R,), rstd (R,), var (R,))
    with the biased variance; only y is differentiable."""
    T = x._plain
    real = _nn_real(x)
    A, R, B = x.shape
    dev = x.device
    y = T._empty(x.shape, x.dtype, dev)
    mean, rstd, var = (T._empty((R,), x.dtype, dev) for _ in range(3))
    affine = weight is not None
    I = "int"
    if R:
        k = codegen.nn_kernel(dev, "norm", "clg_norm_forward", real,
                              [None] * 7 + [I, I, real, I, I, I])
        w = dense(weight) if affine else x
        b = dense(bias) if affine else x
        k.launch_1d(R, y._buf.raw, mean._buf.raw, rstd._buf.raw, var._buf.raw, x._buf.raw,
                    w._buf.raw, b._buf.raw, int(affine), int(per_row), float(eps), A, R, B)
    if ctx is not None:
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.mark_non_differentiable(mean, rstd, var)
        ctx.materialize_grads = False     # only y has a gradient

    def backward(ctx, g, *_):
        _fused_guard(ctx, "layer_norm/batch_norm")
        xs, mu, rs, w = ctx.saved_tensors
        g = dense(g)
        dx = T._empty(xs.shape, xs.dtype, xs.device)
        dw = T._empty((R,), xs.dtype, xs.device)
        db = T._empty((R,), xs.dtype, xs.device)
        kb = codegen.nn_kernel(xs.device, "norm", "clg_norm_backward", real,
                               [None] * 8 + [I, I, I, I, I])
        wb = dense(w) if w is not None else xs
        kb.launch_1d(R, dx._buf.raw, dw._buf.raw, db._buf.raw, g._buf.raw, xs._buf.raw,
                     mu._buf.raw, rs._buf.raw, wb._buf.raw, int(w is not None),
                     int(per_row), A, R, B)
        gw = gb = None
        if w is not None and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            if per_row:
                gw, gb = dw, db
            else:
                gw = T._empty((B,), xs.dtype, xs.device)
                gb = T._empty((B,), xs.dtype, xs.device)
                kw = codegen.nn_kernel(xs.device, "norm", "clg_norm_wgrad", real,
                                       [None] * 6 + [I, I, I])
                kw.launch_1d(B, gw._buf.raw, gb._buf.raw, g._buf.raw, xs._buf.raw, mu._buf.raw,
                             rs._buf.raw, A, R, B)
        return (dx if ctx.needs_input_grad[0] else None,
                gw if ctx.needs_input_grad[1] else None,
                gb if ctx.needs_input_grad[2] else None)
    name = "NativeBatchNormBackward0" if per_row else "NativeLayerNormBackward0"
    return (y, mean, rstd, var), name, backward


def dropout_apply(ctx, x, p: float, group: int, seed: int, offset: int):
    """x * keep / (1 - p) with keep drawn from Philox counter (seed, offset + i // group);
    x contiguous from offset 0. Its gradient is the same map of the gradient."""
    T = x._plain
    real = _nn_real(x)
    n = x.numel()
    out = T._empty(x.shape, x.dtype, x.device)
    if n:
        k = codegen.nn_kernel(x.device, "dropout", "clg_dropout", real,
                              [None, None, "ulong", "ulong", "float", real, "long", "long"])
        k.launch_1d(n, out._buf.raw, x._buf.raw, seed & ((1 << 64) - 1), offset, float(p),
                    1.0 / (1.0 - p), int(group), n)
    return out, "NativeDropoutBackward0", lambda c, g: (_dropout_grad(g, p, group, seed, offset),)


def _dropout_grad(g, p, group, seed, offset):
    g = dense(g)
    return g._apply(dropout_apply, g, p, group, seed, offset)


def embedding_lookup(ctx, weight, idx, padding_idx: int):
    """Rows of weight (V, D) at int64 indices idx (n,) -> (n, D); the backward sums gradient rows
    per destination row in index order (deterministic, no atomics)."""
    T = weight._plain
    real = _nn_real(weight)
    V, D = weight.shape
    n = idx.numel()
    dev = _check_devices([weight, idx])
    out = T._empty((n, D), weight.dtype, dev)
    L = "long"
    wv = weight._view
    if n * D:
        k = codegen.nn_kernel(dev, "embedding", "clg_embedding_forward", real,
                              [None, None, L, L, L, None, L, L, L, None, "int"])
        k.launch_1d(n * D, out._buf.raw, weight._buf.raw, wv.offset, wv.strides[0],
                    wv.strides[1], idx._buf.raw, n, D, V, faults.flag(dev), _EMBEDDING_INDEX)
    def backward(ctx, g):
        _fused_guard(ctx, "embedding")
        g = dense(g)
        dw = T._empty((V, D), g.dtype, g.device)
        if V * D:
            kb = codegen.nn_kernel(g.device, "embedding", "clg_embedding_backward", real,
                                   [None, None, None, L, L, L, L])
            kb.launch_1d(V, dw._buf.raw, g._buf.raw, idx._buf.raw, n, D, V,
                         int(padding_idx))
        return dw, None
    return out, "EmbeddingBackward0", backward


def optim_update(name, update, param, grad, states, scalars, offset: int, n: int, replay=None):
    """Run a fused optimizer update in place over elements [offset, offset + n) of the flat
    arenas `param`, `grad` and `states` (a tuple of (C name, 1-D tensor)); `scalars` is a tuple
    of (C name, value), passed as kernel arguments so changing a learning rate builds nothing.
    `replay()`, if given, returns the scalars anew each time a captured step replays."""
    if n <= 0:
        return
    dt = param.dtype
    names = tuple(s for s, _ in states)
    snames = tuple(s for s, _ in scalars)
    wide = offset + n >= codegen.INT32_LIMIT
    k = codegen.optim_kernel(param.device, f"optim_{name}_{dt.short}", dt, names, snames,
                             update, wide)
    args = [param._buf.raw, grad._buf.raw, *(t._buf.raw for _, t in states),
            *(float(v) for _, v in scalars), int(offset), int(n)]
    if replay is not None:
        capture.vary(range(2 + len(states), 2 + len(states) + len(scalars)), replay)
    k.launch_1d(int(n), *args)
    param._buf.version += 1
    for _, t in states:
        t._buf.version += 1
