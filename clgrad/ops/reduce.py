"""Reductions, scans, softmax and p-norms."""
from __future__ import annotations

import math

from ..dtypes import int64, torch_name
from ..array import FUSIBLE
from ..runtime import Buffer, check_dtype, codegen, lazy, reducegen
from ..view import View, coalesce, normalize_dim
from .base import Op, _keep, _wide, cast, ew

def _red_limits(dt: DType):
    if dt.is_floating:
        return "-INFINITY", "INFINITY"
    bits = dt.itemsize * 8
    if not dt.is_signed:
        return "0", str((1 << bits) - 1)
    suffix = "L" if bits == 64 else ""
    lo = f"(-{(1 << (bits - 1)) - 1}{suffix} - 1)"
    return lo, f"{(1 << (bits - 1)) - 1}{suffix}"


def reduce_spec(kind: str, dt: DType):
    """C snippets of a reduction over values of dtype `dt` (already the accumulator's type)."""
    acc = dt.compute
    zero, one = f"({acc})0", f"({acc})1"
    lo, hi = _red_limits(dt)
    nanmax = "(isnan(a) || a > b) ? a : b" if dt.is_floating else "a > b ? a : b"
    nanmin = "(isnan(a) || a < b) ? a : b" if dt.is_floating else "a < b ? a : b"
    specs = {
        "sum": dict(acc_t=acc, init=zero, map="x", combine="a + b", final="a"),
        "mean": dict(acc_t=acc, init=zero, map="x", combine="a + b", final=f"a / ({acc})clg_nred"),
        "prod": dict(acc_t=acc, init=one, map="x", combine="a * b", final="a"),
        "amax": dict(acc_t=acc, init=lo, map="x", combine=nanmax, final="a"),
        "amin": dict(acc_t=acc, init=hi, map="x", combine=nanmin, final="a"),
        "all": dict(acc_t="uchar", init="1", map="x != 0", combine="a && b", final="a"),
        "any": dict(acc_t="uchar", init="0", map="x != 0", combine="a || b", final="a"),
    }
    if kind in ("argmax", "argmin"):
        better = ">" if kind == "argmax" else "<"
        # NaN wins (its first occurrence), as in PyTorch; integers have no NaN (and no isnan)
        nan_rules = ("    if (isnan(a.v)) return (b.i < a.i && isnan(b.v)) ? b : a;\n"
                     "    if (isnan(b.v)) return b;\n") if dt.is_floating else ""
        defs = (f"typedef struct {{ {acc} v; long i; }} clg_pair;\n"
                f"clg_pair clg_pick(clg_pair a, clg_pair b) {{\n"
                f"    if (a.i < 0) return b;\n    if (b.i < 0) return a;\n"
                f"{nan_rules}"
                f"    if (b.v {better} a.v || (b.v == a.v && b.i < a.i)) return b;\n"
                f"    return a;\n}}\n"
                f"clg_pair clg_mk(clg_t v, long i) {{ clg_pair p; p.v = v; p.i = i; return p; }}\n"
                f"clg_pair clg_none(void) {{ clg_pair p; p.v = 0; p.i = -1; return p; }}")
        spec = dict(acc_t="clg_pair", init="clg_none()", map="clg_mk(x, r)",
                    combine="clg_pick(a, b)", final="a.i", defs=defs)
    else:
        spec = dict(specs[kind], defs="")
    spec["load_t"] = acc
    spec["defs"] = f"typedef {acc} clg_t;\n" + spec["defs"]
    return spec


_reduce_plans: dict = {}


class _ReducePlan:
    """What `reduce` derived for one (kind, input dtype and view, dims, keepdim, dtypes,
    device): the output's view, whether the input is cast first, and the launch with its
    arguments in place (slots 0 and `in_pos` take each call's buffers)."""

    __slots__ = ("out_view", "nbytes", "device", "cast", "kernel", "gsize", "lsize", "args",
                 "in_pos", "node")

    # as a pending producer (clgrad/array.py): its result waits until something needs it
    def takes(self, name, other) -> bool:
        return False

    def dense(self) -> bool:
        """Its output fills its buffer from the start in row-major order (always)."""
        return True

    def produce(self, out_raw, args, name=None, other=None, out_off=0):
        launch = self.args.copy()
        launch[0] = out_raw
        launch[1] += out_off            # a copy's target it writes into (array._absorb_copies)
        launch[self.in_pos] = args[0][0].raw
        self.kernel(self.gsize, self.lsize, *launch)


def reduce(kind: str, x, dims, keepdim: bool, out_dtype: DType, acc_dtype: DType):
    """Reduce `x` over `dims` with `kind` into a new tensor of `out_dtype`. A repeated call
    (same kind, dtypes, view, dims, device) reuses everything but the buffers."""
    v = x._view
    key = (kind, x._buf.device.index, x.dtype, v.shape, v.strides, v.offset, tuple(dims),
           keepdim, out_dtype, acc_dtype)
    plan = _reduce_plans.get(key)
    if plan is None:
        plan = _keep(_reduce_plans, key, _reduce_plan(kind, x, dims, keepdim, out_dtype,
                                                      acc_dtype))
    if plan.node is not None and lazy.enabled:
        return x._plain._pending(plan, (x,), producer=True)
    out = x._plain._make(Buffer(plan.device, plan.nbytes), plan.out_view, out_dtype)
    if plan.kernel is None:
        return out
    src = cast(x, acc_dtype) if plan.cast else x
    args = plan.args.copy()
    args[0] = out._buf.raw
    args[plan.in_pos] = src._buf.raw
    plan.kernel(plan.gsize, plan.lsize, *args)
    return out


def _reduce_plan(kind, x, dims, keepdim, out_dtype, acc_dtype):
    nd = x.ndim
    device = x.device
    check_dtype(device, out_dtype)
    dims = sorted({normalize_dim(d, nd) for d in dims}) if nd else []
    keep = [d for d in range(nd) if d not in dims]
    out_shape_keep = tuple(x.shape[d] if d not in dims else 1 for d in range(nd))
    out_shape = out_shape_keep if keepdim else tuple(x.shape[d] for d in keep)
    plan = _ReducePlan()
    plan.device = device
    plan.out_view = out_view = View.contiguous(out_shape)
    plan.nbytes = out_view.numel * out_dtype.itemsize
    plan.kernel = plan.node = None
    plan.cast = x.dtype is not acc_dtype and kind not in ("all", "any")
    if out_view.numel == 0:
        return plan
    # cast() writes a contiguous copy: that is the view the kernel reads
    src_dtype = acc_dtype if plan.cast else x.dtype
    xv = View.contiguous(x.shape) if plan.cast else x._view
    kept_shape = [xv.shape[d] for d in keep]
    red_shape = [xv.shape[d] for d in dims]
    ov = out_view if not keepdim else out_view.squeeze(dims) if nd else out_view
    o_shape, (o_st, k_st) = coalesce(tuple(kept_shape), ov.strides,
                                     tuple(xv.strides[d] for d in keep)) if keep else ((), ((), ()))
    r_shape, (r_st,) = coalesce(tuple(red_shape), tuple(xv.strides[d] for d in dims)) \
        if dims else ((1,), ((0,),))
    spec = reduce_spec(kind, src_dtype)
    acc_bytes = {"clg_pair": 16, "uchar": 1, "double": 8, "long": 8}.get(spec["acc_t"], 4)
    name = f"reduce_{kind}_{src_dtype.short}_{out_dtype.short}"
    seq = reducegen.reduce_sequential(device, out_view.numel, math.prod(r_shape), k_st)
    k = reducegen.reduce_kernel(device, name, spec, src_dtype, out_dtype, len(o_shape),
                              len(r_shape), _wide([xv, out_view]), seq)
    launch = reducegen.reduce_launch(k, acc_bytes, None, ov.offset, o_st, None, xv.offset,
                                   k_st, r_st, o_shape, r_shape, seq)
    if launch is not None:
        plan.kernel = k
        plan.gsize, plan.lsize, plan.args = launch
        plan.in_pos = 2 + len(o_st)
        if not plan.cast and out_dtype.name in FUSIBLE and x.dtype.name in FUSIBLE:
            plan.node = (device, out_view, out_dtype, out_dtype.compute)
    return plan


def _row_layout(x, out, dim):
    """(row shape, out row strides, in row strides, out dim stride, in dim stride, n) of the rows
    of `x` along `dim` (every other dim, coalesced) and the matching rows of `out`."""
    if x.ndim == 0:
        return (1,), (0,), (0,), 0, 0, 1
    keep = [d for d in range(x.ndim) if d != dim]
    xs, os_ = x._view.strides, out._view.strides
    shape, (o_st, i_st) = coalesce(tuple(x.shape[d] for d in keep),
                                   tuple(os_[d] for d in keep), tuple(xs[d] for d in keep))
    return shape, o_st, i_st, os_[dim], xs[dim], x.shape[dim]


def softmax_fwd(x, dim: int, log: bool, out_dtype: DType):
    """Softmax (or log-softmax) of x along dim into a new contiguous tensor; no autograd."""
    T = x._plain
    out = T._empty(x.shape, out_dtype, x.device)
    if out.numel() == 0:
        return out
    src = x if x.dtype.is_floating else cast(x, out_dtype)
    shape, o_st, i_st, o_rst, i_rst, n = _row_layout(src, out, dim)
    k = codegen.softmax_kernel(x.device, log, src.dtype, out_dtype, len(shape),
                               _wide([src._view, out._view]))
    acc_bytes = 8 if "double" in (src.dtype.ctype, out_dtype.ctype) else 4
    codegen.launch_softmax(k, acc_bytes, out._buf.raw, out._view.offset, o_st, o_rst,
                           src._buf.raw, src._view.offset, i_st, i_rst, shape, n)
    return out


def _softmax_backward(ctx, g):
    y, = ctx.saved_tensors
    d = ctx.dim
    # dL/dx = y * (g - <g, y>) along the dim; written with Tensor ops so it differentiates again
    return (y * (g - (g * y).sum(d, keepdim=True)),)


def _log_softmax_backward(ctx, g):
    y, = ctx.saved_tensors
    return (g - y.exp() * g.sum(ctx.dim, keepdim=True),)


def softmax(ctx, x, dim: int, log: bool = False):
    """softmax / log_softmax along `dim` as one fused, max-shifted kernel (a forward for
    Tensor._apply; the caller has converted x to the requested dtype)."""
    if not x.dtype.is_floating:
        raise RuntimeError(f"\"{'log_' if log else ''}softmax_lastdim_kernel_impl\" not "
                           f"implemented for '{torch_name(x.dtype)}'")
    d = normalize_dim(dim, x.ndim)
    out = softmax_fwd(x, d, log, x.dtype)
    if ctx is not None:
        ctx.save_for_backward(out)
        ctx.dim = d
    if log:
        return out, "LogSoftmaxBackward0", _log_softmax_backward
    return out, "SoftmaxBackward0", _softmax_backward


def scan(kind: str, x, dim: int, out_dtype: DType, reverse: bool = False):
    """Inclusive cumulative sum/product of x along dim (reversed: from the end); no autograd."""
    T = x._plain
    out = T._empty(x.shape, out_dtype, x.device)
    if out.numel() == 0:
        return out
    shape, o_st, i_st, o_rst, i_rst, n = _row_layout(x, out, dim)
    k = codegen.scan_kernel(x.device, kind, x.dtype, out_dtype, len(shape),
                            _wide([x._view, out._view]))
    codegen.launch_scan(k, out._buf.raw, out._view.offset, o_st, o_rst, x._buf.raw,
                        x._view.offset, i_st, i_rst, shape, n, reverse)
    return out


def cumsum(ctx, x, dim: int, reverse: bool = False):
    """cumsum (a forward for Tensor._apply); its gradient is the reversed cumsum of the
    incoming gradient."""
    out_dt = x.dtype if x.dtype.is_floating else int64
    d = normalize_dim(dim, x.ndim)
    out = scan("sum", x, d, out_dt, reverse)
    return out, "CumsumBackward0", lambda c, g: (g._apply(cumsum, g, d, not reverse),)


def _cumprod_backward(ctx, g):
    x, y = ctx.saved_tensors
    d = ctx.dim
    # Before the first zero of a row: sum_{j>=i} g_j y_j / x_i. At the first zero z: the
    # products skip x_z, i.e. the cumprod with x_z replaced by 1, summed over j >= z. After it
    # every product holds x_z = 0, so the gradient is 0 (PyTorch's zero-aware formula).
    zero = x == 0
    nz = zero.cumsum(d)
    before = nz == 0
    first = zero * (nz == 1)
    safe = x.where(before, 1)
    lead = g._apply(cumsum, g * y, d, True) / safe
    patched = x.where(first.logical_not(), 1).cumprod(d)
    at_first = (g * patched).where(nz >= 1, 0).sum(d, keepdim=True)
    return (lead.where(before, at_first.where(first, 0)),)


def cumprod(ctx, x, dim: int):
    """cumprod (a forward for Tensor._apply) with PyTorch's zero-aware gradient."""
    out_dt = x.dtype if x.dtype.is_floating else int64
    d = normalize_dim(dim, x.ndim)
    out = scan("prod", x, d, out_dt)
    if ctx is not None:
        ctx.save_for_backward(x, out)
        ctx.dim = d
    return out, "CumprodBackward0", _cumprod_backward


# |x|^p for the p-norms: its own record so the gradient is p sign(x) |x|^(p-1), finite at 0
ABSPOW = Op("abspow", "pow(fabs(x0), x1)",
            lambda ctx, g: (g * ctx.arg(1) * ctx.arg(0).sign() *
                            g._apply(ABSPOW, ctx.arg(0), ctx.arg(1) - 1),), dtype="float", save="x")


def _pnorm_backward(ctx, g):
    x, out = ctx.saved_tensors
    p, dims, keepdim = ctx.p, ctx.dims, ctx.keepdim
    if not keepdim and x.ndim:
        shape = tuple(1 if d in dims else s for d, s in enumerate(x.shape))
        g, out = g.reshape(shape), out.reshape(shape)
    # d|x|_p/dx = sign(x) |x|^(p-1) / |x|_p^(p-1); PyTorch's gradient where the norm is 0 is 0
    nz = out != 0
    if p == 2:
        scale = (g / out.where(nz, 1)).where(nz, 0)
        return (x * scale,)
    scale = (g / g._apply(ABSPOW, out.where(nz, 1), p - 1)).where(nz, 0)
    return (x.sign() * g._apply(ABSPOW, x, p - 1) * scale,)


def pnorm(ctx, x, p: float, dims: tuple, keepdim: bool):
    """sum(|x|^p)^(1/p) over dims (float x), a forward for Tensor._apply, with a gradient that
    is 0 where the norm is 0."""
    if p == 2:
        out = (x * x).sum(dims, keepdim).sqrt()
    else:
        out = ew(ABSPOW, ew(ABSPOW, x, p).sum(dims, keepdim), 1.0 / p)
    if ctx is not None:
        ctx.save_for_backward(x, out)
        ctx.p, ctx.dims, ctx.keepdim = p, dims, keepdim
    return out, "NormBackward1", _pnorm_backward
