"""Kernels behind PyTorch's long-tail ops: searchsorted, multinomial draws, cummax/cummin and
logcumsumexp scans (kernels_cl/search.cl, scan_index.cl and the scan template), and the
elementwise records logaddexp, logaddexp2 and copysign."""
from __future__ import annotations

import numpy as np

from ..dtypes import float32, float64, int64
from ..runtime import codegen
from ..runtime.program import kernel, memoize, render
from ..view import normalize_dim
from .base import Op, _binary_grads, _wide, cast
from .reduce import _row_layout

_L = np.int64
_SEARCH_TYPES = {"float": "f32", "double": "f64", "long": "i64"}


def _search_dtype(*dts):
    """The one type a search compares in: int64 for integers, else float32/float64."""
    if any(d.ctype == "double" for d in dts):
        return float64
    if any(d.is_floating for d in dts):
        return float32
    return int64


def _dense_as(x, dt):
    """x as a contiguous tensor of dtype dt starting at its buffer's first element."""
    if x.dtype is not dt:
        return cast(x, dt)
    if x.is_contiguous() and x._view.offset == 0:
        return x
    return cast(x, dt)


@memoize
def _search_kernels(device, t: str):
    sfx = _SEARCH_TYPES[t]
    double = t == "double"
    philox = codegen._preamble(("philox.cl", "philox_f64.cl") if double else ("philox.cl",))
    src = render("search", extensions=codegen._extensions(t), philox=philox, t=t, sfx=sfx,
                 uniform="clg_uniform_d" if double else "clg_uniform_f")
    search = kernel(device, src, f"searchsorted_{sfx}", [None, None, _L, _L, None, _L, _L,
                                                         np.int32])
    draw = None
    if t != "long":
        draw = kernel(device, src, f"multinomial_draw_{sfx}", [None, None, _L, _L, _L, np.uint64,
                                                               np.uint64])
    return search, draw


def searchsorted_rows(seq, values, right: bool):
    """int64 insertion positions of `values` (..., M) in the sorted last-dim rows of `seq`
    (..., N), or in the one row of a 1-D seq; no autograd."""
    T = values._plain
    dt = _search_dtype(seq.dtype, values.dtype)
    out = T._empty(values.shape, int64, values.device)
    total = values.numel()
    if total == 0:
        return out
    s = _dense_as(seq, dt)
    v = _dense_as(values, dt)
    n = seq.shape[-1] if seq.ndim else 1
    per_row = values.shape[-1] if values.ndim and seq.ndim > 1 else total
    search, _ = _search_kernels(values.device, dt.ctype)
    search.launch_1d(total, out._buf.raw, s._buf.raw, n, n if seq.ndim > 1 else 0, v._buf.raw,
                     max(per_row, 1), total, int(bool(right)))
    out._buf.version += 1
    return out


def multinomial_draw(cdf, k: int, seed: int, offset: int):
    """(rows, k) int64 categories drawn with replacement from rows of cumulative weights `cdf`
    (rows, n), float32/float64, contiguous; draw q uses Philox counter offset + q."""
    T = cdf._plain
    rows, n = cdf.shape
    out = T._empty((rows, k), int64, cdf.device)
    total = rows * k
    if total == 0:
        return out
    _, draw = _search_kernels(cdf.device, cdf.dtype.ctype)
    draw.launch_1d(total, out._buf.raw, cdf._buf.raw, n, k, total, seed & ((1 << 64) - 1),
                   offset)
    out._buf.version += 1
    return out


@memoize
def _scan_index_kernel(device, kind: str, t: str):
    sfx = {"float": "f32", "double": "f64", "long": "i64", "int": "i32", "short": "i16",
           "char": "i8", "uchar": "u8"}[t]
    op = ">=" if kind == "max" else "<="
    nan = " || isnan(v)" if t in ("float", "double") else ""
    src = render("scan_index", extensions=codegen._extensions(t), t=t, sfx=sfx, kind=kind,
                 wins=f"v {op} best{nan}")
    return kernel(device, src, f"cum{kind}_{sfx}", [None, None, None, _L, _L])


def cum_extreme(x, dim: int, kind: str):
    """(values, int64 indices) of the running max ('max') or min ('min') of x along dim, as
    new contiguous tensors; no autograd. x's dtype must be a plain C type (no half)."""
    T = x._plain
    d = normalize_dim(dim, max(x.ndim, 1))
    xt = x.reshape(1) if x.ndim == 0 else x
    moved = xt.transpose(d, -1) if d != xt.ndim - 1 else xt
    src = cast(moved, x.dtype, out=T._empty(moved.shape, x.dtype, x.device))
    vals = T._empty(moved.shape, x.dtype, x.device)
    idx = T._empty(moved.shape, int64, x.device)
    n = moved.shape[-1] if moved.ndim else 1
    rows = moved.numel() // n if n else 0
    if rows:
        k = _scan_index_kernel(x.device, kind, x.dtype.ctype)
        k.launch_1d(rows, vals._buf.raw, idx._buf.raw, src._buf.raw, n, rows)
        vals._buf.version += 1
        idx._buf.version += 1
    if d != xt.ndim - 1:
        vals, idx = vals.transpose(d, -1), idx.transpose(d, -1)
    if x.ndim == 0:
        vals, idx = vals.reshape(()), idx.reshape(())
    return vals, idx


# log(e^a + e^b) without overflow; infinities and NaN pass through as PyTorch's do
_LOGADDEXP = ("(isinf(fmax(a, b)) ? ((isnan(a) || isnan(b)) ? a + b : fmax(a, b)) : "
              "fmax(a, b) + log1p(exp(-fabs(a - b))))")


@memoize
def _logcumsumexp_kernel(device, dt, rank, wide):
    name = f"logcumsumexp_{dt.short}_r{rank}"
    return codegen._row_kernel("scan", device, name, dt, dt, dt.compute, rank, wide,
                               combine=_LOGADDEXP, init="(clg_t)(-INFINITY)", value="clg_acc")


def logcumsumexp(x, dim: int, reverse: bool = False):
    """log(cumsum(exp(x))) along dim of a floating x, computed stably in one pass per row (from
    the end when `reverse`); no autograd."""
    T = x._plain
    out = T._empty(x.shape, x.dtype, x.device)
    if out.numel() == 0:
        return out
    d = normalize_dim(dim, max(x.ndim, 1))
    shape, o_st, i_st, o_rst, i_rst, n = _row_layout(x, out, d)
    k = _logcumsumexp_kernel(x.device, x.dtype, len(shape), _wide([x._view, out._view]))
    codegen.launch_scan(k, out._buf.raw, out._view.offset, o_st, o_rst, x._buf.raw,
                        x._view.offset, i_st, i_rst, shape, n, reverse)
    return out


# ---- elementwise records ---------------------------------------------------------------------
# max + log1p(exp(-|a - b|)) never overflows; equal infinities give themselves, NaN propagates
LOGADDEXP = Op("logaddexp", "(isinf(x0) && x0 == x1) ? x0 : "
               "fmax(x0, x1) + log1p(exp(-fabs(x0 - x1)))",
               _binary_grads(lambda c, g: g * (c.arg(0) - c.arg(1)).sigmoid(),
                             lambda c, g: g * (c.arg(1) - c.arg(0)).sigmoid()),
               dtype="float", save="x", ref=np.logaddexp, sample=((-3.0, 3.0), (-3.0, 3.0)))
_LN2 = 0.6931471805599453
LOGADDEXP2 = Op("logaddexp2", "(isinf(x0) && x0 == x1) ? x0 : "
                "fmax(x0, x1) + log1p(exp2(-fabs(x0 - x1))) * F(1.4426950408889634)",
                _binary_grads(lambda c, g: g * ((c.arg(0) - c.arg(1)) * _LN2).sigmoid(),
                              lambda c, g: g * ((c.arg(1) - c.arg(0)) * _LN2).sigmoid()),
                dtype="float", save="x", ref=np.logaddexp2, sample=((-3.0, 3.0), (-3.0, 3.0)))
# |x0| with x1's sign; as in PyTorch the gradient reaches only x0 (and is 0 where x0 is 0)
COPYSIGN = Op("copysign", "copysign(x0, x1)",
              _binary_grads(lambda c, g: g * c.arg(0).sign() * c.out().sign(),
                            lambda c, g: g * 0),
              dtype="float", save="xo", ref=np.copysign, sample=((-2.0, 2.0), (-2.0, 2.0)))
RECORDS = (LOGADDEXP, LOGADDEXP2, COPYSIGN)
