"""Window kernels for convolution, pooling, padding and resizing: linear maps in adjoint pairs,
forwards for Tensor._apply."""
from __future__ import annotations

import math

from ..array import Array
from ..dtypes import int64
from ..runtime import codegen, convcols
from .base import copy_into

# Window kernels (kernels_cl/conv.cl, pool.cl, upsample.cl) run on dense (B, H, W) planes; 1-D
# callers pass H = 1. Each kernel pair below is a linear map and its adjoint, recorded (by
# Tensor._apply) so that each one's gradient is the other: double backward comes for free.
def _dense(x):
    """x itself when contiguous from offset 0, else a dense copy (no autograd)."""
    if x._view.is_contiguous() and x._view.offset == 0:
        return x
    return copy_into(x._plain._empty(x.shape, x.dtype, x.device), x)


# the kernels that also build for integer element types (no gradient: values are copied)
_INT_BASES = {"max_pool", "max_pool_tiled", "avg_pool", "nearest"}
_INT_CTYPES = {"long", "int", "short", "char", "uchar"}


def _window_launch(family, base, out, n, *args):
    """Launch window kernel `base` writing `out`, one work-item for each of n (its last
    argument)."""
    dt = out.dtype
    if not dt.is_floating and not (base in _INT_BASES and dt.ctype in _INT_CTYPES):
        dt = next((a.dtype for a in args if isinstance(a, Array) and a.dtype.is_floating), dt)
    if dt.ctype not in ("float", "double") and not (base in _INT_BASES and
                                                    dt.ctype in _INT_CTYPES):
        raise NotImplementedError(f"{base}: only float32 and float64 tensors are supported, "
                                  f"got {dt.name}")
    for a in (out, *args):
        if isinstance(a, Array) and a._view.numel >= codegen.INT32_LIMIT:
            raise RuntimeError(f"{base}: tensors of 2**31 or more elements are not supported")
    k = codegen.window_kernel(out.device, family, base, dt)
    if n:
        k.launch_1d(n, out._buf.raw, *(a._buf.raw if isinstance(a, Array) else a for a in args),
                    n)
    out._buf.version += 1
    return out


def linear_pair(ctx, x, fwd, adj, name):
    """y = fwd(x) for a linear map `fwd` whose adjoint is `adj` (both Tensor -> Tensor, no
    autograd), a forward for Tensor._apply; the backward applies linear_pair(g, adj, fwd), so
    every order differentiates."""
    return fwd(x), name, lambda c, g: (g._apply(linear_pair, g, adj, fwd, name),)


def im2col(x, g, batch_inner=False):
    """(B, C, H, W) -> (B, C*KH*KW, OH*OW) for g = (C, H, W, KH, KW, OH, OW, SH, SW, PH, PW, DH,
    DW); zero padding is implicit (taps outside the input read 0). batch_inner lays the result out
    as (C*KH*KW, B, OH*OW), so a weight gradient's GEMM sums the batch inside its k."""
    C, H, W, KH, KW, OH, OW = g[:7]
    B = x.shape[0]
    shape = (C * KH * KW, B, OH * OW) if batch_inner else (B, C * KH * KW, OH * OW)
    out = x._plain._empty(shape, x.dtype, x.device)
    _check_cols(x, out)
    convcols.im2col(x.device, x.dtype, out._buf.raw, x._buf.raw, x._view.offset, x._view.strides, B, g,
                batch_inner)
    out._buf.version += 1
    return out


def col2im(cols, g):
    """The adjoint of im2col: (B, C*KH*KW, OH*OW) -> (B, C, H, W), summing overlapping taps."""
    C, H, W = g[:3]
    cols = _dense(cols)
    out = cols._plain._empty((cols.shape[0], C, H, W), cols.dtype, cols.device)
    _check_cols(cols, out)
    convcols.col2im(cols.device, cols.dtype, out._buf.raw, cols._buf.raw, cols.shape[0], g)
    out._buf.version += 1
    return out


def _check_cols(*ts):
    if ts[0].dtype.ctype not in ("float", "double"):
        raise NotImplementedError(f"convolution: only float32 and float64 tensors are supported, "
                                  f"got {ts[0].dtype.name}")
    if any(t._view.extent()[1] >= codegen.INT32_LIMIT for t in ts):
        raise RuntimeError("convolution: tensors of 2**31 or more elements are not supported")


PAD_MODES = {"zeros": 0, "constant": 0, "reflect": 1, "replicate": 2, "circular": 3}


def pad_planes(ctx, x, pads, mode):
    """(B, H, W) -> (B, H + PT + PB, W + PL + PR) with `mode` ('zeros', 'reflect', 'replicate',
    'circular'); pads = (PL, PR, PT, PB), F.pad's order."""
    pl, pr, pt, pb = pads
    B, H, W = x.shape
    m = PAD_MODES[mode]
    shape_y = (B, H + pt + pb, W + pl + pr)

    def fwd(t):
        y = t._plain._empty(shape_y, t.dtype, t.device)
        return _window_launch("conv", "pad", y, y.numel(), _dense(t), H, W, shape_y[1],
                              shape_y[2], pt, pl, m)

    def adj(t):
        y = t._plain._empty((B, H, W), t.dtype, t.device)
        return _window_launch("conv", "pad_grad", y, y.numel(), _dense(t), H, W, shape_y[1],
                              shape_y[2], pt, pl, m)

    return linear_pair(ctx, x, fwd, adj, f"{mode.capitalize()}PadBackward0")


def pool_geometry(H, W, OH, OW, k, s, p, d, adaptive):
    return (H, W, OH, OW, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], int(adaptive))


def _tiled(geom, planes: int) -> bool:
    """The windows tile the planes exactly (LeNet's 2x2, stride 2): stride = kernel size, no
    padding, dilation only along a one-tap dimension, and no input left over."""
    H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW, adaptive = geom
    return (not adaptive and (SH, SW) == (KH, KW) and PH == PW == 0 and H == OH * KH and
            W == OW * KW and (DH == 1 or KH == 1) and (DW == 1 or KW == 1) and
            planes * OH * OW < 1 << 21)        # the kernels' float split of an output index


def max_pool_planes(ctx, x, geom):
    """Max pooling of (B, H, W) planes -> (values (B, OH, OW), int64 plane indices)."""
    T = x._plain
    H, W, OH, OW = geom[:4]
    xd = _dense(x)
    B = x.shape[0]
    y = T._empty((B, OH, OW), x.dtype, x.device)
    idx = T._empty((B, OH, OW), int64, x.device)
    if _tiled(geom, B):
        _window_launch("pool", "max_pool_tiled", y, B * OH * OW, idx, xd, OH, OW, *geom[4:6],
                       1.0 / OW, 1.0 / (OH * OW))
    else:
        _window_launch("pool", "max_pool", y, y.numel(), idx, xd, *geom)
    shape = x.shape
    if ctx is not None:
        ctx.materialize_grads = False     # the indices get no gradient: no zeros for them
    return ((y, idx), "MaxPool2DWithIndicesBackward0",
            lambda c, g, _: (g._apply(max_pool_scatter, g, idx, geom, shape),))


def max_pool_scatter(ctx, g, idx, geom, shape):
    """Gradient of max pooling: each input sums the output gradients whose argmax it is."""
    H, W, OH, OW, KH, KW = geom[:6]
    planes = math.prod(shape) // (H * W)
    tiled = _tiled(geom, planes)

    def fwd(t):
        out = t._plain._empty(shape, t.dtype, t.device)
        if tiled:
            return _window_launch("pool", "max_pool_grad_tiled", out, planes * OH * OW,
                                  _dense(t), idx, OH, OW, KH, KW, 1.0 / OW, 1.0 / (OH * OW))
        return _window_launch("pool", "max_pool_grad", out, out.numel(), _dense(t), idx, *geom)

    def adj(t):
        return gather_planes(t, idx, geom[0] * geom[1])

    return linear_pair(ctx, g, fwd, adj, "MaxPoolScatterBackward0")


def gather_planes(x, idx, plane):
    """out[b, j] = x[b, idx[b, j]] per plane of `plane` elements, shaped like idx (no autograd)."""
    out = x._plain._empty(idx.shape, x.dtype, x.device)
    L = idx.numel() // max(idx.shape[0], 1)
    return _window_launch("pool", "unpool_grad", out, out.numel(), _dense(x), _dense(idx), L,
                          plane)


def unpool_planes(ctx, x, idx, OH, OW):
    """max_unpool: zeros (B, OH, OW) with x[b, j] placed at plane index idx[b, j]."""
    B = x.shape[0]
    L = x.numel() // max(B, 1)
    idd = _dense(idx)

    def fwd(t):
        y = copy_into(t._plain._empty((B, OH, OW), t.dtype, t.device), 0)
        return _window_launch("pool", "unpool", y, t.numel(), _dense(t), idd, L, OH * OW)

    def adj(t):
        return gather_planes(t, idd, OH * OW).reshape(x.shape)

    return linear_pair(ctx, x, fwd, adj, "MaxUnpool2DBackward0")


def avg_pool_planes(ctx, x, geom, include_pad, divisor):
    """Average pooling of (B, H, W) planes; geom from pool_geometry (dilation unused)."""
    H, W, OH, OW = geom[:4]
    g = geom[:10] + (geom[12], int(include_pad), int(divisor or 0))
    B = x.shape[0]

    def fwd(t):
        y = t._plain._empty((B, OH, OW), t.dtype, t.device)
        return _window_launch("pool", "avg_pool", y, y.numel(), _dense(t), *g)

    def adj(t):
        y = t._plain._empty((B, H, W), t.dtype, t.device)
        return _window_launch("pool", "avg_pool_grad", y, y.numel(), _dense(t), *g)

    return linear_pair(ctx, x, fwd, adj, "AvgPool2DBackward0")


def resize_planes(ctx, x, OH, OW, mode, scales, align_corners=False):
    """Resize (B, H, W) planes to (B, OH, OW): mode 'nearest', 'nearest-exact' or 'bilinear';
    `scales` are the per-dim source steps (input/output ratios) the kernels multiply output
    coordinates by. The nearest modes also resize integer planes (without a gradient)."""
    B, H, W = x.shape
    sh, sw = scales
    near = mode in ("nearest", "nearest-exact")
    extra = (float(sh), float(sw), int(mode == "nearest-exact")) if near else (
        float(sh), float(sw), int(align_corners))
    family, base = ("nearest", "nearest") if near else ("upsample", "bilinear")

    def fwd(t):
        y = t._plain._empty((B, OH, OW), t.dtype, t.device)
        return _window_launch(family, base, y, y.numel(), _dense(t), H, W, OH, OW, *extra)

    def adj(t):
        y = t._plain._empty((B, H, W), t.dtype, t.device)
        return _window_launch(family, base + "_grad", y, y.numel(), _dense(t), H, W, OH, OW,
                              *extra)

    name = {"nearest": "UpsampleNearest2DBackward0",
            "nearest-exact": "UpsampleNearestExact2DBackward0"}.get(mode,
                                                                    "UpsampleBilinear2DBackward0")
    if not x.dtype.is_floating:
        return fwd(x), name, None
    return linear_pair(ctx, x, fwd, adj, name)
