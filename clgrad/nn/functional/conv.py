"""Convolution functions with torch.nn.functional's signatures (pooling and resizing: pooling.py).

Convolutions are im2col + batched GEMM (+ col2im for the transposed direction), all on the
device. Three functions hold the whole method, so a faster kernel can replace any one of them:
`conv_forward`, `conv_input_grad` and `conv_weight_grad`. The conv records' backwards call them;
they are themselves built from differentiable ops, so double backward works."""
from __future__ import annotations

import functools
import math

from ... import autograd
from ...dtypes import LOW_FLOATS, float32, torch_name
from ...tensor.apply import autocast_policy
from ...tensor import nn_ops
from ...tensor.shape import check_pad_size


def _tuple(v, n, name="argument"):
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            v = tuple(v) * n
        if len(v) != n:
            raise ValueError(f"expected {name} to be a single integer value or a list of {n} "
                             f"values to match the convolution dimensions, but got "
                             f"{name}={list(v)}")
        return tuple(int(x) for x in v)
    return (int(v),) * n


def in_float32(fn):
    """Run `fn` in float32 when its input is float16/bfloat16 (the window and im2col kernels are
    float32/float64 only): 16-bit tensors of the input's dtype go in as float32 and floating
    results come back in that dtype, the casts on the tape, so gradients keep their dtypes."""
    @functools.wraps(fn)
    def wrapper(x, *args, **kw):
        low = getattr(x, "dtype", None)
        if low not in LOW_FLOATS:
            return fn(x, *args, **kw)
        up = [a.to(float32) if getattr(a, "dtype", None) is low else a for a in (x, *args)]
        kw = {k: v.to(float32) if getattr(v, "dtype", None) is low else v for k, v in kw.items()}
        res = fn(*up, **kw)
        if isinstance(res, tuple):
            return tuple(r.to(low) if r.dtype is float32 else r for r in res)
        return res.to(low)
    return wrapper


def _check_transposed_bias(bias, weight, OC: int) -> None:
    """A transposed convolution's bias has one value per output channel (PyTorch's message)."""
    if bias is not None and tuple(bias.shape) != (OC,):
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                           f"bias to be 1-dimensional with {OC} elements, but got bias of size "
                           f"{list(bias.shape)} instead")


def _check_float(x, what):
    if not x.dtype.is_floating:
        raise RuntimeError(f'"{what}" not implemented for \'{torch_name(x.dtype)}\'')


# ---- the three convolution primitives (the swap points) ------------------------------------------
def _geometry(x_shape, w_shape, out_hw, stride, pad, dilation):
    _, C, H, W = x_shape
    return (C, H, W, w_shape[2], w_shape[3], out_hw[0], out_hw[1], stride[0], stride[1],
            pad[0], pad[1], dilation[0], dilation[1])


def _pointwise(g):
    """A 1x1 kernel at stride 1 without padding: im2col is a reshape and col2im its inverse."""
    C, H, W, KH, KW, OH, OW, SH, SW, PH, PW = g[:11]
    return KH == KW == SH == SW == 1 and PH == PW == 0 and (OH, OW) == (H, W)


def _im2col(x, g):
    if _pointwise(g):
        return x.reshape(x.shape[0], g[0], g[5] * g[6])
    return nn_ops.im2col(x, g)


def _col2im(cols, g):
    if _pointwise(g):
        return cols.reshape(cols.shape[0], g[0], g[1], g[2])
    return nn_ops.col2im(cols, g)


def conv_forward(x, w, stride, pad, dilation, groups, out_hw):
    """y = conv(x, w) without bias: (N, C, H, W) * (OC, C/G, KH, KW) -> (N, OC, OH, OW).
    pad = (top, left); the bottom/right padding is whatever out_hw implies."""
    N, C = x.shape[:2]
    OC, Cg, KH, KW = w.shape
    G = groups
    L = out_hw[0] * out_hw[1]
    cols = _im2col(x, _geometry(x.shape, w.shape, out_hw, stride, pad, dilation))
    cols = cols.reshape(N, G, Cg * KH * KW, L)
    wm = w.reshape(G, OC // G, Cg * KH * KW)
    return (wm @ cols).reshape(N, OC, out_hw[0], out_hw[1])          # (N, G, OC/G, L)


def conv_input_grad(g, w, input_shape, stride, pad, dilation, groups):
    """The gradient of conv_forward for its input (= the transposed convolution of g)."""
    N, OC, OH, OW = g.shape
    _, Cg, KH, KW = w.shape
    G = groups
    wm = w.reshape(G, OC // G, Cg * KH * KW)
    gm = g.reshape(N, G, OC // G, OH * OW)
    cols = (wm.mT @ gm).reshape(N, G * Cg * KH * KW, OH * OW)          # (N, C*KH*KW, L)
    geom = _geometry((N, G * Cg) + tuple(input_shape[2:]), w.shape, (OH, OW), stride, pad,
                     dilation)
    return _col2im(cols, geom)


def _cols_batch_inner(N, L, CKK):
    """Whether im2col lays the columns out (C*KH*KW, N, L), so the weight gradient folds the
    batch into one GEMM's k: when g is no larger than the per-image products (L <= CKK)."""
    return N == 1 or L <= CKK


def conv_weight_grad(g, x, weight_shape, stride, pad, dilation, groups, cols=None):
    """The gradient of conv_forward for its weight: sum over the batch of g @ im2col(x)^T.
    When g is no larger than the per-image products (L <= Cg*KH*KW), one GEMM whose k runs over
    (batch, pixel): columns laid out (C*KH*KW, N, L), g copied once to (G, OC/G, N, L); else
    (large images, few taps: copying g costs more than it saves) a batched GEMM and a sum.
    `cols`: the forward's columns of x in that layout (no autograd through them), else im2col
    runs again."""
    N, OC, OH, OW = g.shape
    _, Cg, KH, KW = weight_shape
    G = groups
    L = OH * OW
    geom = _geometry(x.shape, weight_shape, (OH, OW), stride, pad, dilation)
    if _cols_batch_inner(N, L, Cg * KH * KW):
        if cols is None:
            cols = nn_ops.im2col_k(x, geom)
        cols = cols.reshape(G, Cg * KH * KW, N * L)
        gm = g.reshape(N, G, OC // G, L)
        if N > 1:
            gm = gm.permute(1, 2, 0, 3).contiguous()                   # (G, OC/G, N, L)
        gw = gm.reshape(G, OC // G, N * L) @ cols.mT                   # (G, OC/G, Cg*KH*KW)
    else:
        if cols is None:
            cols = _im2col(x, geom)
        cols = cols.reshape(N, G, Cg * KH * KW, L)
        gw = (g.reshape(N, G, OC // G, L) @ cols.mT).sum(0)           # (G, OC/G, Cg*KH*KW)
    return gw.reshape(tuple(weight_shape))


KEEP_COLS_BYTES = 1 << 28   # keep the forward's columns for the weight gradient up to this size


def _forward_fused(x, w, b, stride, pad, dilation, groups, out_hw):
    """No autograd: conv(x, w) + b as one im2col and one GEMM with the bias in its epilogue
    (one bias per output channel; groups > 1 add it separately). Returns y and the columns,
    laid out as conv_weight_grad wants them."""
    N = x.shape[0]
    OC, Cg, KH, KW = w.shape
    G, CKK = groups, Cg * KH * KW
    L = out_hw[0] * out_hw[1]
    geom = _geometry(x.shape, w.shape, out_hw, stride, pad, dilation)
    inner = _cols_batch_inner(N, L, CKK)
    if _pointwise(geom) and not inner:
        cols = x.reshape(N, x.shape[1], L)                           # no copy when contiguous
    else:
        cols = nn_ops.im2col_raw(x, geom, inner)
    if inner:
        cv = cols.reshape(G, CKK, N, L).permute(2, 0, 1, 3)          # (N, G, CKK, L), strided
    else:
        cv = cols.reshape(N, G, CKK, L)
    bias = b.reshape(G, OC // G, 1) if b is not None else None
    y = nn_ops.matmul_bias(w.reshape(G, OC // G, CKK), cv, bias)    # (N, G, OC/G, L)
    return y.reshape(N, OC, out_hw[0], out_hw[1]), cols


def _record_biased(x, w, b, run, grad_x, grad_w, fused=None, grad_w_cols=None):
    """y = run(x, w) (+ bias per channel) through Tensor._apply, recorded as ConvolutionBackward0
    with grad_x(g, x, w) and grad_w(g, x, w). `fused(x, w, b) -> (y, cols)` runs the forward
    with the bias folded in instead; when the columns are small enough they are kept and the
    weight gradient (outside create_graph, where no double backward needs them differentiable)
    is grad_w_cols(g, x, w, cols)."""

    def forward(ctx, xs, ws, bs):
        if fused is not None:
            y, cols = fused(xs, ws, bs)
        else:
            y, cols = run(xs, ws), None
            if bs is not None:
                nn_ops.add_into(y, bs.reshape(1, -1, 1, 1))
        if ctx is None:
            return y, None, None
        if cols is not None and (not ws.requires_grad
                                 or cols.numel() * cols.dtype.itemsize > KEEP_COLS_BYTES):
            cols = None
        # the columns go with the saved tensors, so they are freed with them after backward
        ctx.save_for_backward(xs, ws, *([cols] if cols is not None else []))
        return y, "ConvolutionBackward0", backward

    def backward(c, g):
        xs, ws, *kept = c.saved_tensors
        n = c.needs_input_grad
        gw = None
        if n[1]:
            if kept and not autograd.is_grad_enabled():
                gw = grad_w_cols(g, xs, ws, kept[0])
            else:
                gw = grad_w(g, xs, ws)
        return (grad_x(g, xs, ws) if n[0] else None, gw,
                g.sum((0, 2, 3)) if n[2] else None)

    return x._apply(forward, x, w, b)


def _conv_record(x, w, b, stride, pad, dilation, groups, out_hw):
    return _record_biased(
        x, w, b,
        lambda xs, ws: conv_forward(xs, ws, stride, pad, dilation, groups, out_hw),
        lambda g, xs, ws: conv_input_grad(g, ws, xs.shape, stride, pad, dilation, groups),
        lambda g, xs, ws: conv_weight_grad(g, xs, ws.shape, stride, pad, dilation, groups),
        fused=lambda xs, ws, bs: _forward_fused(xs, ws, bs, stride, pad, dilation, groups,
                                                out_hw),
        grad_w_cols=lambda g, xs, ws, cols: conv_weight_grad(g, xs, ws.shape, stride, pad,
                                                             dilation, groups, cols))


def _conv_transpose_record(x, w, b, stride, pad, dilation, groups, out_shape):
    return _record_biased(
        x, w, b,
        lambda xs, ws: conv_input_grad(xs, ws, out_shape, stride, pad, dilation, groups),
        lambda g, xs, ws: conv_forward(g, ws, stride, pad, dilation, groups, xs.shape[2:]),
        lambda g, xs, ws: conv_weight_grad(xs, g, ws.shape, stride, pad, dilation, groups))


# ---- public convolutions ---------------------------------------------------------------------
def _batched(x, nd, name):
    if x.ndim == nd + 2:
        return x, False
    if x.ndim == nd + 1:
        return x.unsqueeze(0), True
    raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, "
                       f"but got input of size: {list(x.shape)}")


def _conv_common(x, weight, bias, stride, padding, dilation, groups, nd, name):
    """Normalise 1-D/2-D arguments to the 2-D form; returns the 4-D views and 2-D tuples."""
    _check_float(x, "conv")
    x, unbatched = _batched(x, nd, name)
    if weight.ndim != nd + 2:
        raise RuntimeError(f"weight should have {nd + 2} dimensions, got {weight.ndim}")
    if weight.dtype is not x.dtype or (bias is not None and bias.dtype is not x.dtype):
        raise RuntimeError(f"Input type ({torch_name(x.dtype)}) and weight type "
                           f"({torch_name(weight.dtype)}) should be the same")
    if groups < 1:
        raise RuntimeError("non-positive groups is not supported")
    stride = _tuple(stride, nd, "stride")
    dilation = _tuple(dilation, nd, "dilation")
    if any(s < 1 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d < 1 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    if nd == 1:
        x = x.unsqueeze(2)
        weight = weight.unsqueeze(2)
        stride, dilation = (1,) + stride, (1,) + dilation
    return x, weight, stride, dilation, unbatched


def _same_or_valid(padding, ksize, dilation, stride, nd):
    """(pad_begin, pad_end) per spatial dim (2-D form) for int/tuple/'same'/'valid' padding."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"Invalid padding string '{padding}', should be one of "
                             "{'valid', 'same'}")
        if any(s != 1 for s in stride):
            raise ValueError("padding='same' is not supported for strided convolutions")
        total = [d * (k - 1) for d, k in zip(dilation, ksize)]
        begin = tuple(t // 2 for t in total)
        return begin, tuple(t - b for t, b in zip(total, begin))
    p = _tuple(padding, nd, "padding")
    if any(v < 0 for v in p):
        raise RuntimeError("negative padding is not supported")
    p = (0,) + p if nd == 1 else p
    return p, p


@in_float32
def _convnd(x, weight, bias, stride, padding, dilation, groups, nd):
    name = f"conv{nd}d"
    x4, w4, stride, dilation, unbatched = _conv_common(x, weight, bias, stride, padding,
                                                       dilation, groups, nd, name)
    N, C, H, W = x4.shape
    OC, Cg, KH, KW = w4.shape
    if C != Cg * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{list(x.shape)} to have {Cg * groups} channels, "
                           f"but got {C} channels instead")
    if OC % groups:
        raise RuntimeError("Given groups={}, expected weight to be divisible by {} at dimension "
                           "0, but got weight of size {} instead".format(
                               groups, groups, list(weight.shape)))
    if bias is not None and tuple(bias.shape) != (OC,):
        raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {OC} elements, but got bias of size "
                           f"{list(bias.shape)} instead")
    begin, end = _same_or_valid(padding, (KH, KW), dilation, stride, nd)
    out_hw = tuple((n + b + e - d * (k - 1) - 1) // s + 1 for n, b, e, d, k, s in
                   zip((H, W), begin, end, dilation, (KH, KW), stride))
    if any(o < 1 for o in out_hw):
        padded = [n + b + e for n, b, e in zip((H, W), begin, end)][2 - nd:]
        eff = [d * (k - 1) + 1 for d, k in zip(dilation, (KH, KW))][2 - nd:]
        raise RuntimeError(f"Calculated padded input size per channel: "
                           f"({' x '.join(map(str, padded))}). Kernel size: "
                           f"({' x '.join(map(str, eff))}). Kernel size can't be greater than "
                           "actual input size")
    y = _conv_record(x4, w4, bias, stride, begin, dilation, groups, out_hw)
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


@autocast_policy("low")
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation) over (N, C, L) or (C, L) input.

    Shape: weight (OC, C/groups, K), bias (OC,); padding an int, a tuple, 'same' or 'valid'."""
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 1)


@autocast_policy("low")
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) over (N, C, H, W) or (C, H, W) input.

    Shape: weight (OC, C/groups, KH, KW), bias (OC,); padding an int, a pair, 'same' or 'valid'.

    Example: ``y = clgrad.conv2d(x, w, b, stride=2, padding=1)``"""
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 2)


@in_float32
def _conv_transposend(x, weight, bias, stride, padding, output_padding, groups, dilation, nd,
                      output_size=None):
    name = f"conv_transpose{nd}d"
    x4, w4, stride, dilation, unbatched = _conv_common(x, weight, bias, stride, 0, dilation,
                                                       groups, nd, name)
    pad = _tuple(padding, nd, "padding")
    opad = _tuple(output_padding, nd, "output_padding")
    if nd == 1:
        pad, opad = (0,) + pad, (0,) + opad
    N, Cin, H, W = x4.shape
    Cin_w, Cog, KH, KW = w4.shape
    if Cin != Cin_w:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {Cin_w} channels, but got {Cin} "
                           "channels instead")
    if Cin % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} "
                           "instead")
    for o, s, d in zip(opad, stride, dilation):
        if o >= s and o >= d:
            raise RuntimeError("output padding must be smaller than either stride or dilation, "
                               f"but got output_padding: {opad[2 - nd:]}, stride: "
                               f"{stride[2 - nd:]}, dilation: {dilation[2 - nd:]}")
    OC = Cog * groups
    _check_transposed_bias(bias, weight, OC)
    out_hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, s, p, d, k, o in
                   zip((H, W), stride, pad, dilation, (KH, KW), opad))
    if any(o < 1 for o in out_hw):
        raise RuntimeError(f"Given input size per channel: ({H} x {W}). Calculated output size "
                           f"per channel: ({out_hw[0]} x {out_hw[1]}). Output size is too small")
    y = _conv_transpose_record(x4, w4, bias, stride, pad, dilation, groups, (N, OC) + out_hw)
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


@autocast_policy("low")
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """1-D transposed convolution (the gradient of conv1d for its input).

    Shape: weight (C_in, C_out/groups, K); output length
    (L - 1)*stride - 2*padding + dilation*(K - 1) + output_padding + 1."""
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups,
                             dilation, 1)


@autocast_policy("low")
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution (the gradient of conv2d for its input).

    Shape: weight (C_in, C_out/groups, KH, KW); each output side is
    (n - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1."""
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups,
                             dilation, 2)


# ---- padding modes -------------------------------------------------------------------------------
def pad_spatial(x, pads, mode):
    """Pad the last one or two dims of x by pads = (left, right[, top, bottom]) (F.pad's order)
    with mode 'zeros'/'constant' (0), 'reflect', 'replicate' or 'circular'."""
    if mode not in nn_ops.PAD_MODES:
        raise NotImplementedError(f"padding mode {mode!r} is not supported")
    pads = tuple(int(p) for p in pads)
    if len(pads) not in (2, 4) or x.ndim < len(pads) // 2:
        raise ValueError(f"pad_spatial takes 2 or 4 pad values, got {len(pads)}")
    if any(p < 0 for p in pads):
        raise RuntimeError("negative padding is not supported")
    nd = len(pads) // 2
    lead = x.shape[:x.ndim - nd]
    H, W = (1, x.shape[-1]) if nd == 1 else tuple(x.shape[-2:])
    pl, pr = pads[:2]
    pt, pb = pads[2:] if nd == 2 else (0, 0)
    for n, a, b, dim in ((W, pl, pr, x.ndim - 1), (H, pt, pb, x.ndim - 2)):
        check_pad_size(mode, n, a, b, dim, x.shape)
        if mode == "replicate" and n == 0 and (a or b):
            raise RuntimeError("padding of an empty dimension is not supported")
        if nd == 1:
            break
    B = math.prod(lead)
    planes = x.reshape(B, H, W)
    y = nn_ops.pad_planes(planes, (pl, pr, pt, pb), mode)
    return y.reshape(tuple(lead) + tuple(y.shape[3 - nd:]))


# ---- pooling -------------------------------------------------------------------------------------
