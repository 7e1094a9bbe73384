"""The op table: one record per primitive op (kernel snippet, dtype rule, gradient) and the
dispatchers that launch each kernel family on strided, broadcast tensors."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from . import autograd
from .dtypes import (DType, bool_, float32, float64, get_default_dtype, int64, result_type,
                     torch_name)
from .runtime import codegen
from .view import View, broadcast_shapes, coalesce, normalize_dim

_T = None


def _tensor():
    global _T
    if _T is None:
        from .tensor import Tensor
        _T = Tensor
    return _T


@dataclass(frozen=True)
class Op:
    """An elementwise primitive: a C expression over x0, x1, ... in the compute type `clg_t`.

    `F(c)` in an expression is a floating constant in the compute precision. `int_expr` replaces
    `expr` when the op computes in an integer type. `dtype`: 'same' keeps the promoted input type,
    'float' promotes integers to the default float, 'bool' outputs bool. `save`: which values the
    backward needs, from 'x' (the inputs) and 'o' (the output)."""

    name: str
    expr: str
    backward: Callable | None = None
    dtype: str = "same"
    save: str = ""
    int_expr: str | None = None
    preamble: tuple = ()


# ---- gradients of the primitives (Tensor-level, so they are differentiable themselves) ----------
def _need(ctx, i):
    return ctx.needs_input_grad[i]


def _binary_grads(fa, fb):
    def backward(ctx, g):
        return (fa(ctx, g) if _need(ctx, 0) else None,
                fb(ctx, g) if _need(ctx, 1) else None)
    return backward


NEG = Op("neg", "-x0", lambda ctx, g: (-g,))
EXP = Op("exp", "exp(x0)", lambda ctx, g: (g * ctx.out(),), dtype="float", save="o")
LOG = Op("log", "log(x0)", lambda ctx, g: (g / ctx.arg(0),), dtype="float", save="x")
SQRT = Op("sqrt", "sqrt(x0)", lambda ctx, g: (g / (ctx.out() * 2),), dtype="float", save="o")
SIN = Op("sin", "sin(x0)", lambda ctx, g: (g * ctx.arg(0).cos(),), dtype="float", save="x")
COS = Op("cos", "cos(x0)", lambda ctx, g: (-g * ctx.arg(0).sin(),), dtype="float", save="x")
TANH = Op("tanh", "clg_tanh(x0)", lambda ctx, g: (ew(TANH_BWD, g, ctx.out()),),
          dtype="float", save="o", preamble=("math_float.cl",))
SIGMOID = Op("sigmoid", "F(1.0) / (F(1.0) + exp(-x0))",
             lambda ctx, g: (ew(SIGMOID_BWD, g, ctx.out()),), dtype="float", save="o")
# relu keeps NaN (x < 0 is false for NaN); its gradient at 0 is 0, as in PyTorch
RELU = Op("relu", "x0 < (clg_t)0 ? (clg_t)0 : x0",
          lambda ctx, g: (ew(RELU_BWD, g, ctx.out()),), save="o")
ABS = Op("abs", "x0 < (clg_t)0 ? -x0 : x0", lambda ctx, g: (g * ctx.arg(0).sign(),), save="x")
SIGN = Op("sign", "(clg_t)((x0 > (clg_t)0) - (x0 < (clg_t)0))",
          lambda ctx, g: (g * 0,))
COPY = Op("copy", "x0", lambda ctx, g: (g,))

ADD = Op("add", "x0 + x1", lambda ctx, g: (g, g))
SUB = Op("sub", "x0 - x1", lambda ctx, g: (g, -g if _need(ctx, 1) else None))
MUL = Op("mul", "x0 * x1", _binary_grads(lambda c, g: g * c.arg(1), lambda c, g: g * c.arg(0)),
         save="x")
DIV = Op("div", "x0 / x1", _binary_grads(lambda c, g: g / c.arg(1),
                                         lambda c, g: -g * c.arg(0) / (c.arg(1) * c.arg(1))),
         dtype="float", save="x")
# maximum/minimum propagate NaN; ties send half the gradient to each side (as PyTorch does)
MAXIMUM = Op("maximum", "(isnan(x0) || x0 > x1) ? x0 : x1",
             _binary_grads(lambda c, g: g * ((c.arg(0) > c.arg(1)) + (c.arg(0) == c.arg(1)) * 0.5),
                           lambda c, g: g * ((c.arg(1) > c.arg(0)) + (c.arg(0) == c.arg(1)) * 0.5)),
             save="x", int_expr="x0 > x1 ? x0 : x1")
MINIMUM = Op("minimum", "(isnan(x0) || x0 < x1) ? x0 : x1",
             _binary_grads(lambda c, g: g * ((c.arg(0) < c.arg(1)) + (c.arg(0) == c.arg(1)) * 0.5),
                           lambda c, g: g * ((c.arg(1) < c.arg(0)) + (c.arg(0) == c.arg(1)) * 0.5)),
             save="x", int_expr="x0 < x1 ? x0 : x1")
EQ = Op("eq", "x0 == x1", dtype="bool")
NE = Op("ne", "x0 != x1", dtype="bool")
LT = Op("lt", "x0 < x1", dtype="bool")
LE = Op("le", "x0 <= x1", dtype="bool")
GT = Op("gt", "x0 > x1", dtype="bool")
GE = Op("ge", "x0 >= x1", dtype="bool")
WHERE = Op("where", "x0 != (clg_t)0 ? x1 : x2",
           lambda ctx, g: (None,
                           g.where(ctx.arg(0), 0) if _need(ctx, 1) else None,
                           ew(WHERE, ctx.arg(0), 0, g) if _need(ctx, 2) else None),
           save="x")
ISFINITE = Op("isfinite", "isfinite(x0)", dtype="bool", int_expr="1")
LOGICAL_NOT = Op("logical_not", "!x0", dtype="bool")

_CONST = re.compile(r"F\(([^()]*)\)")


def _render_expr(expr: str, compute: str) -> str:
    suffix = "f" if compute == "float" else ""
    return _CONST.sub(lambda m: f"(clg_t){m.group(1)}{suffix}", expr)


def _check_devices(tensors):
    dev = tensors[0].device
    for t in tensors[1:]:
        if t.device != dev:
            raise RuntimeError("Expected all tensors to be on the same device, but found at least "
                               f"two devices, {dev} and {t.device}!")
    return dev


def _wide(views) -> bool:
    for v in views:
        lo, hi = v.extent()
        if hi >= codegen.INT32_LIMIT or lo < -codegen.INT32_LIMIT or v.numel >= codegen.INT32_LIMIT:
            return True
    return False


def launch_ew(name, expr, out, inputs, compute: str, preamble=()):
    """Run `expr` elementwise into the tensor `out` (any view). inputs: tensors (broadcast to
    out's shape) or scalars passed as kernel arguments of the compute type `compute`."""
    T = _tensor()
    shape = out.shape
    n = out._view.numel
    if n == 0:
        return out
    tens = [a for a in inputs if isinstance(a, T)]
    views = [a._view.expand(shape) if a.shape != shape else a._view for a in tens]
    cshape, cstrides = coalesce(shape, out._view.strides, *(v.strides for v in views))
    rank = len(cshape)
    spec, operands, vi = [], [], 0
    for a in inputs:
        if isinstance(a, T):
            spec.append((a.dtype, compute))
            operands.append((a._buf.raw, views[vi].offset, cstrides[1 + vi]))
            vi += 1
        else:
            spec.append((None, compute))
            operands.append(a)
    k = codegen.elementwise_kernel(out.device, name, _render_expr(expr, compute), out.dtype,
                                   tuple(spec), rank, _wide([out._view, *views]), compute,
                                   tuple(preamble))
    codegen.launch_elementwise(k, n, out._buf.raw, out._view.offset, cstrides[0], operands,
                               cshape)
    out._buf.version += 1
    return out


def _compute_type(op: Op, args) -> tuple[DType, DType]:
    """(compute dtype, output dtype) of an elementwise op under PyTorch's promotion."""
    common = result_type(*args)
    if op.dtype == "float" and not common.is_floating:
        common = get_default_dtype()
    out = bool_ if op.dtype == "bool" else common
    return common, out


class OpContext(autograd.Context):
    """Context of a table op: saved inputs by position (tensors or Python scalars) and output."""

    def arg(self, i):
        v = self._args[i]
        return self._unpack(self._slot[i]) if v is None else v

    def out(self):
        return self._unpack(-1)


def ew(op: Op, *args, out=None):
    """Apply an elementwise table op, recording its gradient when needed."""
    T = _tensor()
    tens = [a for a in args if isinstance(a, T)]
    device = _check_devices(tens)
    common, out_dtype = _compute_type(op, args)
    shape = broadcast_shapes(*(t.shape for t in tens))
    if out is None:
        out = T._empty(shape, out_dtype, device)
    else:
        if out.shape != shape:
            raise RuntimeError(f"output with shape {list(out.shape)} doesn't match the "
                               f"broadcast shape {list(shape)}")
        if out_dtype.category > out.dtype.category:
            raise RuntimeError(f"result type {torch_name(out_dtype)} can't be cast to the "
                               f"desired output type {torch_name(out.dtype)}")
    expr = op.int_expr if (op.int_expr is not None and not common.is_floating) else op.expr
    compute = common.compute
    label = f"{op.name}_{out.dtype.short}" + "".join(
        "_" + t.dtype.short for t in tens if t.dtype is not out.dtype)
    # scalars reach the kernel converted to the compute type
    conv = [a if isinstance(a, T) else _scalar(a, common) for a in args]
    launch_ew(f"ew_{label}", expr, out, conv, compute, op.preamble)
    if op.backward is not None and autograd.needs_grad(*tens):
        _record(op.name, op.backward, op.save, args, out)
    return out


def _scalar(v, dt: DType):
    if dt is bool_:
        return int(bool(v))
    if dt.is_floating:
        return float(v)
    return int(v)


def _record(name, backward, save, args, out):
    T = _tensor()
    ctx = OpContext([isinstance(a, T) and a.requires_grad for a in args])
    ctx._args = tuple(None if isinstance(a, T) else a for a in args)
    saved, slot = [], {}
    if "x" in save:
        for i, a in enumerate(args):
            if isinstance(a, T):
                slot[i] = len(saved)
                saved.append(a)
    if "o" in save:
        saved.append(out)
    ctx._slot = slot
    ctx.save_for_backward(*saved)
    autograd.record(_grad_name(name), backward, ctx, args, [out])


def _grad_name(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_")) + "Backward0"


def cast(x, dtype: DType, out=None):
    """Convert to `dtype` on the device (C conversion: float -> int truncates, like PyTorch)."""
    T = _tensor()
    if out is None:
        out = T._empty(x.shape, dtype, x.device)
    # to bool the test is `!= 0` in the source type (0.5 -> True), not after truncation
    compute = x.dtype.compute if dtype is bool_ else dtype.compute
    launch_ew(f"cast_{x.dtype.short}_{dtype.short}", "x0", out, [x], compute)
    if autograd.needs_grad(x) and dtype.is_floating:
        src = x.dtype
        _record("to_copy", lambda ctx, g: (g.to(src),), "", (x,), out)
    return out


def copy_into(dst, src):
    """dst[...] = src with broadcasting and conversion (no autograd; callers record it)."""
    is_t = isinstance(src, _tensor())
    compute = src.dtype.compute if is_t and dst.dtype is bool_ else dst.dtype.compute
    launch_ew(f"copy_{dst.dtype.short}_{src.dtype.short}" if is_t
              else f"fill_{dst.dtype.short}", "x0", dst, [src if is_t
                                                          else _scalar(src, dst.dtype)],
              compute)
    return dst


# ---- reductions --------------------------------------------------------------------------------
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


def reduce(kind: str, x, dims, keepdim: bool, out_dtype: DType, acc_dtype: DType):
    """Reduce `x` over `dims` with `kind` into a new tensor of `out_dtype`."""
    T = _tensor()
    nd = x.ndim
    dims = sorted({normalize_dim(d, nd) for d in dims}) if nd else []
    keep = [d for d in range(nd) if d not in dims]
    out_shape_keep = tuple(x.shape[d] if d not in dims else 1 for d in range(nd))
    out_shape = out_shape_keep if keepdim else tuple(x.shape[d] for d in keep)
    out = T._empty(out_shape, out_dtype, x.device)
    if out.numel() == 0:
        return out
    src = x if x.dtype is acc_dtype else cast(x, acc_dtype) if acc_dtype is not x.dtype else x
    if kind in ("all", "any") and x.dtype is not acc_dtype:
        src = x
    xv = src._view
    kept_shape = [xv.shape[d] for d in keep]
    red_shape = [xv.shape[d] for d in dims]
    ov = out._view if not keepdim else out._view.squeeze(dims) if nd else out._view
    o_shape, (o_st, k_st) = coalesce(tuple(kept_shape), ov.strides,
                                     tuple(xv.strides[d] for d in keep)) if keep else ((), ((), ()))
    r_shape, (r_st,) = coalesce(tuple(red_shape), tuple(xv.strides[d] for d in dims)) \
        if dims else ((1,), ((0,),))
    spec = reduce_spec(kind, src.dtype)
    acc_bytes = {"clg_pair": 16, "uchar": 1, "double": 8, "long": 8}.get(spec["acc_t"], 4)
    name = f"reduce_{kind}_{src.dtype.short}_{out_dtype.short}"
    k = codegen.reduce_kernel(out.device, name, spec, src.dtype, out_dtype, len(o_shape),
                              len(r_shape), _wide([xv, out._view]))
    codegen.launch_reduce(k, acc_bytes, out._buf.raw, ov.offset, o_st, src._buf.raw, xv.offset,
                          k_st, r_st, o_shape, r_shape)
    return out


# ---- matmul ------------------------------------------------------------------------------------
MATMUL_BLOCK = (8, 8)     # rows x columns of C per work-item on CPU devices (measured best)


def matmul2(a, b):
    """Batched matmul of (..., M, K) @ (..., K, N) with broadcast batch dims; no autograd."""
    T = _tensor()
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{a.dtype.name} != {b.dtype.name}")
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, a.shape[-2:]))} and "
            f"{'x'.join(map(str, b.shape[-2:]))})")
    device = _check_devices([a, b])
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    c = T._empty(batch + (M, N), a.dtype, device)
    if c.numel() == 0:
        return c
    if K == 0:
        return copy_into(c, 0)
    av = a._view.expand(batch + (M, K))
    bv = b._view.expand(batch + (K, N))
    cv = c._view
    bshape, (c_bst, a_bst, b_bst) = coalesce(batch, cv.strides[:-2], av.strides[:-2],
                                              bv.strides[:-2]) if batch else ((1,), ((0,),) * 3)
    dt = a.dtype
    acc_t = dt.compute if dt.is_floating else "long"
    acc_bytes = 8 if acc_t in ("double", "long") else 4
    wide = _wide([av, bv, cv])
    nb = 1
    for s in bshape:
        nb *= s
    args = (c._buf.raw, cv.offset, cv.strides[-2], cv.strides[-1],
            a._buf.raw, av.offset, av.strides[-2], av.strides[-1],
            b._buf.raw, bv.offset, bv.strides[-2], bv.strides[-1],
            M, N, K, *bshape, *c_bst, *a_bst, *b_bst)
    if device.local_mem_is_global:
        # CPU OpenCL: local tiles live in ordinary RAM and their barriers cost more than they
        # save (POCL-FACTS: ~4-5 GFLOP/s); a register block per work-item streams from memory
        rm, rn = MATMUL_BLOCK
        k = codegen.matmul_kernel(device, dt, dt, dt, acc_t, len(bshape), wide,
                                  ("blocked", rm, rn))
        gx, gy = (N + rn - 1) // rn, (M + rm - 1) // rm
        k((gx, gy, nb), None, *args)
        return c
    ts = codegen.matmul_tile(device, acc_bytes)
    k = None
    while k is None:
        k = codegen.matmul_kernel(device, dt, dt, dt, acc_t, len(bshape), wide, ("local", ts))
        if k is None:
            ts //= 2
    g0 = (N + ts - 1) // ts * ts
    g1 = (M + ts - 1) // ts * ts
    k((g0, g1, nb), (ts, ts, 1), *args)
    return c


def _matmul_backward(ctx, g):
    a, b = ctx.saved_tensors
    return (g @ b.mT if _need(ctx, 0) else None, a.mT @ g if _need(ctx, 1) else None)


def matmul_nd(a, b):
    """The >=2-D matmul primitive with its gradient."""
    c = matmul2(a, b)
    if autograd.needs_grad(a, b):
        ctx = autograd.Context([a.requires_grad, b.requires_grad])
        ctx.save_for_backward(a, b)
        autograd.record("MmBackward0" if a.ndim == 2 and b.ndim == 2 else "BmmBackward0",
                        _matmul_backward, ctx, (a, b), [c])
    return c


# ---- movement ops: a new View over the same buffer, no kernel -----------------------------------
def view_op(x, view: View, name: str, backward):
    T = _tensor()
    out = T._make(x._buf, view, x.dtype)
    out._base = x._base if x._base is not None else x
    if backward is not None and autograd.needs_grad(x):
        ctx = autograd.Context([True])
        autograd.record(name, backward, ctx, (x,), [out])
    return out


def scatter_view(g, shape, view_fn):
    """zeros(shape) with `view_fn(view)` of it set to g: the gradient of a non-overlapping view."""
    T = _tensor()
    z = T._zeros(shape, g.dtype, g.device)
    target = T._make(z._buf, view_fn(z._view), z.dtype)
    copy_into(target, g.detach())
    if autograd.needs_grad(g):
        ctx = autograd.Context([True])
        autograd.record("ViewScatterBackward0",
                        lambda c, gg: (view_op(gg, view_fn(gg._view), "AsStridedBackward0", None)
                                       if gg.is_contiguous() else
                                       _strided_of(gg.contiguous(), view_fn),), ctx, (g,), [z])
    return z


def _strided_of(t, view_fn):
    T = _tensor()
    return T._make(t._buf, view_fn(t._view), t.dtype)


# ---- random numbers: Philox on the device --------------------------------------------------------
def random_fill(out, kind: str, seed: int, offset: int, a=0.0, b=1.0):
    """Fill `out` with draws of `kind` ('uniform' in [a, b), 'normal' (mean a, std b),
    'randint' in [a, b)) from counter (seed, offset + element index)."""
    dt = out.dtype
    seed &= (1 << 64) - 1
    pre = ("philox.cl", "philox_f64.cl") if dt.ctype == "double" else ("philox.cl",)
    if kind == "randint":
        expr = ("(clg_t)((long)x2 + (long)(clg_random_ulong(clg_random_words(x0, x1, clg_gid))"
                " % (ulong)((long)x3 - (long)x2)))")
        compute = "double" if dt.ctype == "double" else ("long" if not dt.is_floating else "float")
    else:
        suffix = "d" if dt.ctype == "double" else "f"
        base = "uniform" if kind == "uniform" else "normal"
        draw = f"clg_{base}_{suffix}(clg_random_words(x0, x1, clg_gid))"
        expr = f"x2 + (x3 - x2) * {draw}" if kind == "uniform" else f"x2 + x3 * {draw}"
        compute = "double" if dt.ctype == "double" else "float"
    conv = (lambda v: int(v)) if compute == "long" else float
    # seed and counter are 64-bit unsigned arguments, the bounds arrive in the compute type
    launch_ew_raw(f"rand_{kind}_{dt.short}", expr, out, compute, pre,
                  [("ulong", seed), ("ulong", offset), (compute, conv(a)), (compute, conv(b))])
    return out


def launch_ew_raw(name, expr, out, compute, preamble, scalars):
    """An elementwise kernel with only scalar inputs of explicit C types (fills, RNG, iota)."""
    shape = out.shape
    n = out._view.numel
    if n == 0:
        return out
    cshape, (cst,) = coalesce(shape, out._view.strides)
    spec = tuple((None, t) for t, _ in scalars)
    src_expr = _render_expr(expr, compute)
    k = codegen.elementwise_kernel(out.device, name, src_expr, out.dtype, spec, len(cshape),
                                   _wide([out._view]), compute, tuple(preamble))
    codegen.launch_elementwise(k, n, out._buf.raw, out._view.offset, cst,
                               [v for _, v in scalars], cshape)
    out._buf.version += 1
    return out


# ==== elementwise records (helper: math) ====
# (records and functions of this group go below this line)
_MF = ("math_float.cl",)      # helpers in a floating compute type
_MI = ("math_int.cl",)        # helpers in an integer compute type
_LN2 = 0.6931471805599453
_LN10 = 2.302585092994046
_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2PI = 0.3989422804014327
_TWO_OVER_SQRT_PI = 1.1283791670955126


def _is_t(x) -> bool:
    return isinstance(x, _tensor())


def _masked(g, cond):
    """g where cond holds, else 0 (where, not a product, so an infinite g stays out of 0*inf)."""
    return g.where(cond, 0)


def _zero_grads(ctx, g):
    # piecewise-constant ops (floor, rounding division, sign...): zero gradient, as in PyTorch
    return tuple(g * 0 if need else None for need in ctx.needs_input_grad)


def _unary(name, expr, grad=None, save="x", dtype="float", int_expr=None, preamble=()):
    """A one-input record whose gradient is g * grad(ctx) (grad uses ctx.arg(0) / ctx.out())."""
    bw = None if grad is None else (lambda ctx, g: (g * grad(ctx),))
    return Op(name, expr, bw, dtype=dtype, save=save, int_expr=int_expr, preamble=preamble)


# -- arithmetic --
ADD_ALPHA = Op("add", "x0 + x1 * x2",
               lambda ctx, g: (g, g * ctx.arg(2) if _need(ctx, 1) else None, None))
SUB_ALPHA = Op("sub", "x0 - x1 * x2",
               lambda ctx, g: (g, g * -ctx.arg(2) if _need(ctx, 1) else None, None))
# integer division guards: x / 0 would trap the process on x86 (PoCL runs C semantics), and
# MIN / -1 overflows the same instruction; 0 is numpy's answer for a zero divisor. `~x1 == 0`
# tests x1 == -1 without a constant comparison that is always false (a warning) for uint8.
_IDIV_GUARD = "x1 == 0 ? (clg_t)0 : ~x1 == 0 ? (clg_t)(-x0) : "
DIV_TRUNC = Op("div_trunc", "trunc(x0 / x1)", _zero_grads,
               int_expr=_IDIV_GUARD + "(clg_t)(x0 / x1)")
DIV_FLOOR_F = Op("div_floor", "clg_floordiv(x0, x1)", _zero_grads, preamble=_MF)
DIV_FLOOR_I = Op("div_floor", "0", _zero_grads, int_expr=_IDIV_GUARD +
                 "(clg_t)(x0 / x1 - ((x0 % x1 != 0) && ((x0 < 0) != (x1 < 0))))")
_IMOD_GUARD = "(x1 == 0 || ~x1 == 0) ? (clg_t)0 : "
def _floor_quotient(a, b):
    return a.div(b, rounding_mode="floor") if _is_t(a) else (a / b).floor()


REMAINDER_F = Op("remainder", "clg_remainder(x0, x1)",
                 _binary_grads(lambda c, g: g,
                               lambda c, g: -g * _floor_quotient(c.arg(0), c.arg(1))),
                 save="x", preamble=_MF)
REMAINDER_I = Op("remainder", "0", None, int_expr=_IMOD_GUARD +
                 "(clg_t)(x0 % x1 + ((x0 % x1 != 0) && ((x0 % x1 < 0) != (x1 < 0))) * x1)")
FMOD = Op("fmod", "fmod(x0, x1)",
          _binary_grads(lambda c, g: g,
                        lambda c, g: -g * c.arg(0).div(c.arg(1), rounding_mode="trunc")),
          save="x", int_expr=_IMOD_GUARD + "(clg_t)(x0 % x1)")


def _pow_grads(ctx, g):
    x, e = ctx.arg(0), ctx.arg(1)
    gx = ge = None
    if _need(ctx, 0):
        if _is_t(e):
            gx = _masked(g * e * x.pow(e - 1), e != 0)
        else:
            gx = g * 0 if e == 0 else g * e * x.pow(e - 1)
    if _need(ctx, 1):
        out = ctx.out()
        if _is_t(x):
            ge = _masked(g * out * x.log(), ((x == 0) & (e >= 0)).logical_not())
        elif x == 0:
            ge = _masked(g * out * float("-inf"), e < 0)
        else:
            import math
            ge = g * out * math.log(x) if x > 0 else g * out * float("nan")
    return gx, ge


POW = Op("pow", "pow(x0, x1)", _pow_grads, save="xo")
POW_I = Op("pow", "0", None, int_expr="clg_ipow(x0, x1)", preamble=_MI)
RECIPROCAL = _unary("reciprocal", "F(1.0) / x0", lambda c: -(c.out() * c.out()), save="o")
FLOOR = Op("floor", "floor(x0)", _zero_grads, int_expr="x0")
CEIL = Op("ceil", "ceil(x0)", _zero_grads, int_expr="x0")
# rint rounds half to even, as PyTorch's round does
ROUND = Op("round", "rint(x0)", _zero_grads, int_expr="x0")
ROUND_DEC = Op("round", "clg_round_dec(x0, x1, (int)x2)", _zero_grads, int_expr="x0",
               preamble=_MF)
TRUNC = Op("trunc", "trunc(x0)", _zero_grads, int_expr="x0")
FRAC = Op("frac", "x0 - trunc(x0)", lambda ctx, g: (g,), int_expr="(clg_t)0")


def _clamp_grads(ctx, g):
    x, lo, hi = ctx.arg(0), ctx.arg(1), ctx.arg(2)
    gx = glo = ghi = None
    if _need(ctx, 0):
        gx = _masked(g, (x >= lo) & (x <= hi))
    if _need(ctx, 1):
        glo = _masked(g, (x < lo) & (lo < hi))
    if _need(ctx, 2):
        ghi = _masked(g, (x > hi) | (hi < lo))
    return gx, glo, ghi


CLAMP = Op("clamp", "clg_minn(clg_maxn(x0, x1), x2)", _clamp_grads, save="x",
           int_expr="min(max(x0, x1), x2)", preamble=_MF)
CLAMP_I = Op("clamp", "0", _clamp_grads, int_expr="min(max(x0, x1), x2)")
CLAMP_MIN = Op("clamp_min", "clg_maxn(x0, x1)",
               _binary_grads(lambda c, g: _masked(g, c.arg(0) >= c.arg(1)),
                             lambda c, g: _masked(g, c.arg(0) < c.arg(1))),
               save="x", int_expr="max(x0, x1)", preamble=_MF)
CLAMP_MAX = Op("clamp_max", "clg_minn(x0, x1)",
               _binary_grads(lambda c, g: _masked(g, c.arg(0) <= c.arg(1)),
                             lambda c, g: _masked(g, c.arg(0) > c.arg(1))),
               save="x", int_expr="min(x0, x1)", preamble=_MF)


def _lerp_grads(ctx, g):
    a, b, w = ctx.arg(0), ctx.arg(1), ctx.arg(2)
    return (g * (1 - w) if _need(ctx, 0) else None,
            g * w if _need(ctx, 1) else None,
            g * (b - a) if _need(ctx, 2) else None)


# two formulas, as PyTorch, so that weight 1 gives exactly `end`
LERP = Op("lerp", "fabs(x2) < F(0.5) ? x0 + x2 * (x1 - x0) : x1 - (x1 - x0) * (F(1.0) - x2)",
          _lerp_grads, save="x")
ADDCMUL = Op("addcmul", "x0 + x3 * x1 * x2",
             lambda ctx, g: (g if _need(ctx, 0) else None,
                             g * ctx.arg(3) * ctx.arg(2) if _need(ctx, 1) else None,
                             g * ctx.arg(3) * ctx.arg(1) if _need(ctx, 2) else None, None),
             save="x")
ADDCDIV = Op("addcdiv", "x0 + x3 * x1 / x2",
             lambda ctx, g: (g if _need(ctx, 0) else None,
                             g * ctx.arg(3) / ctx.arg(2) if _need(ctx, 1) else None,
                             -g * ctx.arg(3) * ctx.arg(1) / (ctx.arg(2) * ctx.arg(2))
                             if _need(ctx, 2) else None, None),
             save="x")
CLAMP_MIN_I = Op("clamp_min", "0", int_expr="max(x0, x1)")
CLAMP_MAX_I = Op("clamp_max", "0", int_expr="min(x0, x1)")


def ew2(fop: Op, iop: Op, *args, out=None):
    """`ew` of `fop` when the op computes in a floating type, else of its integer twin `iop`
    (the twins differ in their helper preamble, which only compiles for one kind of type)."""
    return ew(fop if result_type(*args).is_floating else iop, *args, out=out)


# -- math --
EXP2 = _unary("exp2", "exp2(x0)", lambda c: c.out() * _LN2, save="o")
EXPM1 = _unary("expm1", "expm1(x0)", lambda c: c.out() + 1, save="o")
LOG2 = Op("log2", "log2(x0)", lambda c, g: (g / (c.arg(0) * _LN2),), dtype="float", save="x")
LOG10 = Op("log10", "log10(x0)", lambda c, g: (g / (c.arg(0) * _LN10),), dtype="float",
           save="x")
LOG1P = Op("log1p", "log1p(x0)", lambda c, g: (g / (c.arg(0) + 1),), dtype="float", save="x")
RSQRT = _unary("rsqrt", "rsqrt(x0)", lambda c: c.out().pow(3) * -0.5, save="o")
TAN = _unary("tan", "tan(x0)", lambda c: c.out() * c.out() + 1, save="o")
ASIN = _unary("asin", "asin(x0)", lambda c: (1 - c.arg(0) * c.arg(0)).rsqrt())
ACOS = _unary("acos", "acos(x0)", lambda c: -(1 - c.arg(0) * c.arg(0)).rsqrt())
ATAN = Op("atan", "atan(x0)", lambda c, g: (g / (c.arg(0) * c.arg(0) + 1),), dtype="float",
          save="x")
SINH = _unary("sinh", "sinh(x0)", lambda c: c.arg(0).cosh())
COSH = _unary("cosh", "cosh(x0)", lambda c: c.arg(0).sinh())
ASINH = _unary("asinh", "asinh(x0)", lambda c: (c.arg(0) * c.arg(0) + 1).rsqrt())
ACOSH = _unary("acosh", "acosh(x0)", lambda c: ((c.arg(0) - 1) * (c.arg(0) + 1)).rsqrt())
ATANH = Op("atanh", "atanh(x0)", lambda c, g: (g / (1 - c.arg(0) * c.arg(0)),), dtype="float",
           save="x")
ERF = _unary("erf", "erf(x0)", lambda c: (-(c.arg(0) * c.arg(0))).exp() * _TWO_OVER_SQRT_PI)
ERFC = _unary("erfc", "erfc(x0)",
              lambda c: (-(c.arg(0) * c.arg(0))).exp() * -_TWO_OVER_SQRT_PI)


def _atan2_grads(ctx, g):
    y, x = ctx.arg(0), ctx.arg(1)
    r2 = x * x + y * y
    return (g * x / r2 if _need(ctx, 0) else None, -g * y / r2 if _need(ctx, 1) else None)


ATAN2 = Op("atan2", "atan2(x0, x1)", _atan2_grads, dtype="float", save="x")
LOGIT = Op("logit", "log(x0 / (F(1.0) - x0))",
           lambda c, g: (g / (c.arg(0) * (1 - c.arg(0))),), dtype="float", save="x")
# with eps the input is clamped to [eps, 1 - eps]; the gradient is 0 outside, as in PyTorch
LOGIT_EPS = Op("logit", "log(clg_minn(clg_maxn(x0, x1), F(1.0) - x1) / "
               "(F(1.0) - clg_minn(clg_maxn(x0, x1), F(1.0) - x1)))",
               lambda c, g: (_masked(g / (c.arg(0) * (1 - c.arg(0))),
                                     (c.arg(0) >= c.arg(1)) & (c.arg(0) <= 1 - c.arg(1))), None),
               dtype="float", save="x", preamble=_MF)
SOFTPLUS = Op("softplus", "clg_softplus(x0, x1, x2)",
              lambda c, g: (g.where(c.arg(0) * c.arg(1) > c.arg(2),
                                    g * (c.arg(0) * c.arg(1)).sigmoid()), None, None),
              dtype="float", save="x", preamble=_MF)
# hardtanh passes NaN through (both comparisons are false); its gradient is 0 on the bounds
HARDTANH = Op("hardtanh", "x0 < x1 ? x1 : (x0 > x2 ? x2 : x0)",
              lambda c, g: (_masked(g, (c.arg(0) > c.arg(1)) & (c.arg(0) < c.arg(2))), None,
                            None), save="x")
LEAKY_RELU = Op("leaky_relu", "x0 > (clg_t)0 ? x0 : x0 * x1",
                lambda c, g: (g.where(c.arg(0) > 0, g * c.arg(1)), None), save="x")


def _elu_grads(ctx, g):
    x, alpha, scale, iscale = ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3)
    # x = 0 takes the exponential branch, as in PyTorch
    pos = g if scale == 1 else g * scale
    return (pos.where(x > 0, g * (x * iscale).exp() * (alpha * scale * iscale)), None, None, None)


# elu(x) = scale * (x if x > 0 else alpha * (exp(x * input_scale) - 1)): elu, selu and celu
ELU = Op("elu", "x0 > F(0.0) ? x0 * x2 : expm1(x0 * x3) * x1 * x2", _elu_grads, dtype="float",
         save="x")


# Fused gradients of the hot activations: g * f'(x) (or of the saved output) in one kernel. Their
# own backward is the same op for g and Tensor ops with f'' for x, so double backward works.
def _fused_bwd(name, expr, d2, preamble=()):
    def backward(ctx, gg):
        g, x = ctx.arg(0), ctx.arg(1)
        return (ew(op, gg, x) if _need(ctx, 0) else None,
                gg * g * d2(x) if _need(ctx, 1) and d2 is not None else None)
    op = Op(name, expr, backward, save="x", preamble=preamble)
    return op


def _silu_d2(x):
    s = x.sigmoid()
    return s * (1 - s) * (x * (1 - 2 * s) + 2)


RELU_BWD = _fused_bwd("threshold_backward", "x1 > (clg_t)0 ? x0 : (clg_t)0", None)
SIGMOID_BWD = _fused_bwd("sigmoid_backward", "x0 * x1 * (F(1.0) - x1)", lambda o: 1 - 2 * o)
TANH_BWD = _fused_bwd("tanh_backward", "x0 * (F(1.0) - x1 * x1)", lambda o: o * -2)
GELU_BWD = _fused_bwd("gelu_backward", "x0 * clg_gelu_grad(x1)",
                      lambda x: (x * x * -0.5).exp() * _INV_SQRT_2PI * (2 - x * x), _MF)
SILU_BWD = _fused_bwd("silu_backward", "x0 * clg_silu_grad(x1)", _silu_d2, _MF)


def _gelu_tanh_grads(ctx, g):
    x = ctx.arg(0)
    x2 = x * x
    t = ((x + x2 * x * 0.044715) * _SQRT_2_OVER_PI).tanh()
    d = (t + 1) * 0.5 + x * (1 - t * t) * (x2 * (3 * 0.044715) + 1) * (0.5 * _SQRT_2_OVER_PI)
    return (g * d,)


GELU = Op("gelu", "F(0.5) * x0 * (F(1.0) + erf(x0 * F(0.7071067811865476)))",
          lambda ctx, g: (ew(GELU_BWD, g, ctx.arg(0)),), dtype="float", save="x")
GELU_TANH = Op("gelu", "F(0.5) * x0 * (F(1.0) + clg_tanh(F(0.7978845608028654) * "
               "(x0 + F(0.044715) * x0 * x0 * x0)))", _gelu_tanh_grads, dtype="float", save="x",
               preamble=_MF)




def _mish_grads(ctx, g):
    x = ctx.arg(0)
    t = ew(SOFTPLUS, x, 1.0, 20.0).tanh()
    return (g * (t + x * x.sigmoid() * (1 - t * t)),)


SILU = Op("silu", "x0 / (F(1.0) + exp(-x0))",
          lambda ctx, g: (ew(SILU_BWD, g, ctx.arg(0)),), dtype="float", save="x")
MISH = Op("mish", "x0 * clg_tanh(clg_softplus(x0, F(1.0), F(20.0)))", _mish_grads,
          dtype="float", save="x", preamble=_MF)
HARDSIGMOID = Op("hardsigmoid",
                 "x0 <= F(-3.0) ? F(0.0) : (x0 >= F(3.0) ? F(1.0) : x0 / F(6.0) + F(0.5))",
                 lambda c, g: (_masked(g, (c.arg(0) > -3) & (c.arg(0) < 3)) / 6,),
                 dtype="float", save="x")
HARDSWISH = Op("hardswish",
               "x0 <= F(-3.0) ? F(0.0) : (x0 >= F(3.0) ? x0 : x0 * (x0 + F(3.0)) / F(6.0))",
               lambda c, g: (_masked(g.where(c.arg(0) > 3, g * (c.arg(0) / 3 + 0.5)),
                                     c.arg(0) >= -3),), dtype="float", save="x")
SOFTSIGN = Op("softsign", "x0 / (F(1.0) + fabs(x0))",
              lambda c, g: (g / (c.arg(0).abs() + 1).square(),), dtype="float", save="x")
LOGSIGMOID = Op("logsigmoid", "clg_logsigmoid(x0)", lambda c, g: (g * (-c.arg(0)).sigmoid(),),
                dtype="float", save="x", preamble=_MF)

# -- compare and logic --
ISNAN = Op("isnan", "isnan(x0)", dtype="bool", int_expr="0")
ISINF = Op("isinf", "isinf(x0)", dtype="bool", int_expr="0")
ISPOSINF = Op("isposinf", "isinf(x0) && x0 > (clg_t)0", dtype="bool", int_expr="0")
ISNEGINF = Op("isneginf", "isinf(x0) && x0 < (clg_t)0", dtype="bool", int_expr="0")
# |a - b| <= atol + |rtol * b|, equal values (infinities too) always close, NaN == NaN on request
ISCLOSE = Op("isclose", "x0 == x1 || (x4 != (clg_t)0 && isnan(x0) && isnan(x1)) || "
             "(isfinite(x0 - x1) && fabs(x0 - x1) <= x3 + fabs(x2 * x1))", dtype="bool")
LOGICAL_AND = Op("logical_and", "x0 != (clg_t)0 && x1 != (clg_t)0", dtype="bool")
LOGICAL_OR = Op("logical_or", "x0 != (clg_t)0 || x1 != (clg_t)0", dtype="bool")
LOGICAL_XOR = Op("logical_xor", "(x0 != (clg_t)0) != (x1 != (clg_t)0)", dtype="bool")
BITWISE_AND = Op("bitwise_and", "0", int_expr="x0 & x1")
BITWISE_OR = Op("bitwise_or", "0", int_expr="x0 | x1")
BITWISE_XOR = Op("bitwise_xor", "0", int_expr="x0 ^ x1")
BITWISE_NOT = Op("bitwise_not", "0", int_expr="~x0")
# shifts by a negative amount or by the width or more give PyTorch's 0 (or -1), not C's UB
_BITS = "(clg_t)(sizeof(clg_t) * 8)"
LSHIFT = Op("bitwise_left_shift", "0",
            int_expr=f"(x1 < 0 || x1 >= {_BITS}) ? (clg_t)0 : (clg_t)(x0 << x1)")
RSHIFT = Op("bitwise_right_shift", "0",
            int_expr=f"(x1 < 0 || x1 >= {_BITS}) ? (clg_t)(x0 < 0 ? -1 : 0) : (clg_t)(x0 >> x1)")
#
#


# ==== reductions, scans, softmax (helper: reduce/linalg) ====
# (records and functions of this group go below this line)
#
#
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
    T = _tensor()
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


def softmax(x, dim: int, log: bool = False, dtype: DType | None = None):
    """softmax / log_softmax along `dim` as one fused, max-shifted kernel, with its gradient."""
    if dtype is not None and dtype is not x.dtype:
        x = x.to(dtype)
    if not x.dtype.is_floating:
        raise RuntimeError(f"\"{'log_' if log else ''}softmax_lastdim_kernel_impl\" not "
                           f"implemented for '{torch_name(x.dtype)}'")
    d = normalize_dim(dim, x.ndim)
    out = softmax_fwd(x, d, log, x.dtype)
    if autograd.needs_grad(x):
        ctx = autograd.Context([True])
        ctx.save_for_backward(out)
        ctx.dim = d
        autograd.record("LogSoftmaxBackward0" if log else "SoftmaxBackward0",
                        _log_softmax_backward if log else _softmax_backward, ctx, (x,), [out])
    return out


def scan(kind: str, x, dim: int, out_dtype: DType, reverse: bool = False):
    """Inclusive cumulative sum/product of x along dim (reversed: from the end); no autograd."""
    T = _tensor()
    out = T._empty(x.shape, out_dtype, x.device)
    if out.numel() == 0:
        return out
    shape, o_st, i_st, o_rst, i_rst, n = _row_layout(x, out, dim)
    k = codegen.scan_kernel(x.device, kind, x.dtype, out_dtype, len(shape),
                            _wide([x._view, out._view]))
    codegen.launch_scan(k, out._buf.raw, out._view.offset, o_st, o_rst, x._buf.raw,
                        x._view.offset, i_st, i_rst, shape, n, reverse)
    return out


def cumsum(x, dim: int, dtype: DType | None = None, reverse: bool = False):
    """cumsum with its gradient (the reversed cumsum of the incoming gradient)."""
    if dtype is not None:
        x = x.to(dtype)
    out_dt = x.dtype if x.dtype.is_floating else int64
    d = normalize_dim(dim, x.ndim)
    out = scan("sum", x, d, out_dt, reverse)
    if autograd.needs_grad(x):
        ctx = autograd.Context([True])
        autograd.record("CumsumBackward0", lambda c, g: (cumsum(g, d, reverse=not reverse),),
                        ctx, (x,), [out])
    return out


def _cumprod_backward(ctx, g):
    x, y = ctx.saved_tensors
    d = ctx.dim
    # Before the first zero of a row: sum_{j>=i} g_j y_j / x_i. At the first zero z: the
    # products skip x_z, i.e. the cumprod with x_z replaced by 1, summed over j >= z. After it
    # every product holds x_z = 0, so the gradient is 0 (PyTorch's zero-aware formula).
    zero = x == 0
    nz = cumsum(zero, d)
    before = nz == 0
    first = zero * (nz == 1)
    safe = x.where(before, 1)
    lead = cumsum(g * y, d, reverse=True) / safe
    patched = cumprod(x.where(first.logical_not(), 1), d)
    at_first = (g * patched).where(nz >= 1, 0).sum(d, keepdim=True)
    return (lead.where(before, at_first.where(first, 0)),)


def cumprod(x, dim: int, dtype: DType | None = None):
    if dtype is not None:
        x = x.to(dtype)
    out_dt = x.dtype if x.dtype.is_floating else int64
    d = normalize_dim(dim, x.ndim)
    out = scan("prod", x, d, out_dt)
    if autograd.needs_grad(x):
        ctx = autograd.Context([True])
        ctx.save_for_backward(x, out)
        ctx.dim = d
        autograd.record("CumprodBackward0", _cumprod_backward, ctx, (x,), [out])
    return out




# |x|^p for the p-norms: its own record so the gradient is p sign(x) |x|^(p-1), finite at 0
ABSPOW = Op("abspow", "pow(fabs(x0), x1)",
            lambda ctx, g: (g * ctx.arg(1) * ctx.arg(0).sign() *
                            ew(ABSPOW, ctx.arg(0), ctx.arg(1) - 1),), dtype="float", save="x")


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
    scale = (g / ew(ABSPOW, out.where(nz, 1), p - 1)).where(nz, 0)
    return (x.sign() * ew(ABSPOW, x, p - 1) * scale,)


def pnorm(x, p: float, dims: tuple, keepdim: bool):
    """sum(|x|^p)^(1/p) over dims (float x), with a gradient that is 0 where the norm is 0."""
    with autograd.no_grad():
        if p == 2:
            out = (x * x).sum(dims, keepdim).sqrt()
        else:
            out = ew(ABSPOW, ew(ABSPOW, x, p).sum(dims, keepdim), 1.0 / p)
    if autograd.needs_grad(x):
        ctx = autograd.Context([True])
        ctx.save_for_backward(x, out)
        ctx.p, ctx.dims, ctx.keepdim = p, dims, keepdim
        autograd.record("NormBackward1", _pnorm_backward, ctx, (x,), [out])
    return out


# ==== linear algebra (helper: reduce/linalg) ====
# (records and functions of this group go below this line)
#
#


# ==== shape, gather/scatter, sort, indexing (helper: shape/index) ====
# (records and functions of this group go below this line)
#
#
# where with the condition compared explicitly: OpenCL C rejects a float as `?:` condition, and
# the condition arrives in the compute type
MASKED_SELECT = Op("masked_where", "(x0 != (clg_t)0) ? x1 : x2")


def masked_where(cond, a, b, name="MaskedFillBackward0"):
    """cond ? a : b (cond bool, a tensor or scalar, b tensor) in b's dtype. Only the condition
    is saved, so the in-place variants leave nothing stale behind for the backward."""
    T = _tensor()
    out = ew(MASKED_SELECT, cond, a, b)
    if out.dtype is not b.dtype:
        out = cast(out, b.dtype)
    args = (a, b) if isinstance(a, T) else (b,)
    if autograd.needs_grad(*args):
        ctx = autograd.Context([t.requires_grad for t in args])
        ctx.save_for_backward(cond)

        def backward(c, g):
            (m,) = c.saved_tensors
            grads = tuple(g * m if i == 0 and len(args) == 2 else g * m.logical_not()
                          for i in range(len(args)))
            return tuple(gr if c.needs_input_grad[i] else None for i, gr in enumerate(grads))
        autograd.record(name, backward, ctx, args, [out])
    return out


def _flag_buffer(device):
    # zeroed by a kernel rather than a blocking write: only the read after the launch waits
    from .dtypes import int32
    return _tensor()._zeros((4,), int32, device)._buf


_scratch_flags: dict = {}


def _scratch_flag(device):
    buf = _scratch_flags.get(device)
    if buf is None:
        buf = _scratch_flags[device] = _flag_buffer(device)
    return buf


def _read_flag(buf):
    import numpy as np
    host = buf.read(np.empty(4, np.int32))
    if not host[0]:
        return None
    return int(host[1]), int(host[2]) & 0xffffffff | int(host[3]) << 32


def _index_launch(src, out, offset, base_strides, index, check):
    """Shared by index_gather/index_offsets. index: list of (tensor expanded to out's shape,
    size of the indexed dim, its stride, name of the dim for messages)."""
    shape = out.shape
    n = out.numel()
    if n == 0:
        return out
    iv = [t._view for t, *_ in index]
    ostr = View.contiguous(shape).strides
    cshape, cst = coalesce(shape, ostr, tuple(base_strides), *(v.strides for v in iv))
    rank = len(cshape)
    device = out.device
    src_view = [View(shape, tuple(base_strides), offset)] if src is not None else []
    wide = _wide([out._view, *iv, *src_view]) or any(abs(st) * sz >= codegen.INT32_LIMIT
                                                     for _, sz, st, _ in index)
    k = codegen.gather_kernel(device, src.dtype if src is not None else None, out.dtype,
                              len(index), tuple(t.dtype for t, *_ in index), rank, wide)
    args = [out._buf.raw]
    if src is not None:
        args.append(src._buf.raw)
    args += [offset, *cst[1]]
    for i, (t, size, stride, _) in enumerate(index):
        args += [t._buf.raw, iv[i].offset, *cst[2 + i], size, stride]
    # unchecked launches share one scratch flag per device: nobody reads it
    flag = _flag_buffer(device) if check is not None else _scratch_flag(device)
    args += [n, *cshape, flag.raw]
    k.launch_1d(n, *args)
    out._buf.version += 1
    if check is not None:
        bad = _read_flag(flag)
        if bad is not None:
            t, size, stride, dim = index[bad[0]]
            check(bad[1], dim, size)
    return out


def index_gather(src, view: View, index, check=None):
    """out[p] = src[view.offset + p . view.strides + sum_k index_k[p] * stride_k] over
    view.shape (the direct dims in `view`, stride 0 where a dim only comes from an index).
    `check(value, dim, size)` raises for an out-of-range index (read back once per op)."""
    T = _tensor()
    out = T._empty(view.shape, src.dtype, src.device)
    return _index_launch(src, out, view.offset, view.strides, index, check)


def index_offsets(view: View, index, device, check=None):
    """The element offsets index_gather would read, as an int64 tensor of view.shape."""
    T = _tensor()
    out = T._empty(view.shape, int64, device)
    return _index_launch(None, out, view.offset, view.strides, index, check)


def sort_rows(x, descending: bool):
    """Stable sort along the last dim of `x` (any view): (values, positions) as new tensors of
    shape x.shape[:-1] + (P,) where P is the row length rounded up to a power of two; the first
    x.shape[-1] columns hold the result. NaN sorts as the greatest value."""
    T = _tensor()
    L = x.shape[-1] if x.ndim else 1
    P = 1 << max(0, (L - 1).bit_length())
    lead = tuple(x.shape[:-1])
    work_dt = float32 if x.dtype.ctype == "half" else x.dtype
    vals = T._empty(lead + (P,), work_dt, x.device)
    pos = T._empty(lead + (P,), int64, x.device)
    rows = vals.numel() // P if P else 0
    if rows == 0 or L == 0:
        return vals, pos
    copy_into(T._make(vals._buf, vals._view.slice(len(lead), 0, L, 1), work_dt),
              x if x.ndim else x.reshape(1))
    launch_ew_raw("iota_mod_i64", "x0 == 0 ? (clg_t)0 : (clg_t)(clg_gid % x0)", pos, "long", (),
                  [("long", P)])
    k = codegen.sort_step_kernel(x.device, work_dt)
    total = rows * P
    size = 2
    while size <= P:
        j = size // 2
        while j >= 1:
            k.launch_1d(total, vals._buf.raw, pos._buf.raw, P, L, size, j, int(descending),
                        total)
            j //= 2
        size *= 2
    return vals, pos


def nonzero_positions(mask):
    """Row-major positions (int64, 1-D) of the nonzero elements of `mask` (any dtype/view):
    a block-wise count, scan and write; the count is the one value read back."""
    import numpy as np
    T = _tensor()
    n = mask.numel()
    flat = T._empty((n,), bool_, mask.device)
    if n == 0:
        return T._empty((0,), int64, mask.device)
    launch_ew("nonzero_b8", "x0 != (clg_t)0", flat, [mask.reshape(n) if mask.ndim != 1 else mask],
              mask.dtype.compute)
    nblocks = min(n, 4096)
    block = -(-n // nblocks)
    nblocks = -(-n // block)
    count_k, scan_k, write_k = codegen.compact_kernels(mask.device)
    counts = T._empty((nblocks,), int64, mask.device)
    starts = T._empty((nblocks + 1,), int64, mask.device)
    count_k.launch_1d(nblocks, flat._buf.raw, n, block, counts._buf.raw)
    scan_k((1,), (1,), counts._buf.raw, nblocks, starts._buf.raw)
    total = int(starts._buf.read(np.empty(1, np.int64), nblocks * 8)[0])
    out = T._empty((total,), int64, mask.device)
    if total:
        write_k.launch_1d(nblocks, flat._buf.raw, n, block, starts._buf.raw, out._buf.raw)
    return out


def scatter_sorted(dst, offsets, values, mode: str):
    """dst's buffer at each element offset (int64, any shape) combined with the value at the
    same position (`values`: dst's dtype, same shape) by `mode` ('set': the last duplicate
    wins; 'add'; 'multiply'); duplicates fold in order, deterministically."""
    n = offsets.numel()
    if n == 0:
        return dst
    # both come back as 1-D buffers whose first n elements are the sorted run
    keys, perm = sort_rows(offsets.reshape(n), False)
    vals = values if values.is_contiguous() and values._view.offset == 0 else \
        values.detach().clone()
    k = codegen.scatter_kernel(dst.device, dst.dtype, mode)
    k.launch_1d(n, dst._buf.raw, keys._buf.raw, perm._buf.raw, vals._buf.raw, n)
    dst._buf.version += 1
    return dst




# ==== nn kernels: losses, norms, embedding, dropout (helper: nn) ====
# (records and functions of this group go below this line)
#
#
def _no_double(name):
    def backward(ctx, g):
        raise NotImplementedError(f"double backward through {name} is not supported "
                                  "(its gradient is a fused kernel)")
    return backward


def _fused_guard(name):
    if autograd.is_grad_enabled():
        raise NotImplementedError(f"double backward (create_graph=True) through {name} is not "
                                  "supported: its gradient is a fused kernel")


def _activation(name, expr, dexpr):
    """An activation record whose gradient is one fused kernel over (g, x, *params):
    `dexpr` computes d out / d x times g with g as x0, x as x1, the parameters as x2, ..."""
    grad_op = Op(name + "_backward", dexpr, _no_double(name), dtype="float")

    def backward(ctx, g):
        params = ctx._args[1:]
        return (ew(grad_op, g, ctx.arg(0), *params),) + (None,) * len(params)
    return Op(name, expr, backward, dtype="float", save="x")


NN_HARDTANH = _activation("hardtanh", "x0 < x1 ? x1 : (x0 > x2 ? x2 : x0)",
                          "(x1 > x2 && x1 < x3) ? x0 : (clg_t)0")
NN_LEAKY_RELU = _activation("leaky_relu", "x0 > (clg_t)0 ? x0 : x0 * x1",
                            "x1 > (clg_t)0 ? x0 : x0 * x2")
NN_ELU = _activation("elu", "x0 > (clg_t)0 ? x0 : x1 * expm1(x0)",
                     "x1 > (clg_t)0 ? x0 : x0 * x2 * exp(x1)")
# selu = scale * elu(x, alpha): x1 = alpha, x2 = scale
NN_SELU = _activation("selu", "x2 * (x0 > (clg_t)0 ? x0 : x1 * expm1(x0))",
                      "x0 * x3 * (x1 > (clg_t)0 ? (clg_t)1 : x2 * exp(x1))")
NN_CELU = _activation("celu", "x0 > (clg_t)0 ? x0 : x1 * expm1(x0 / x1)",
                      "x1 > (clg_t)0 ? x0 : x0 * exp(x1 / x2)")
NN_GELU = _activation("gelu", "F(0.5) * x0 * (F(1.0) + erf(x0 * F(0.70710678118654752)))",
                      "x0 * (F(0.5) * (F(1.0) + erf(x1 * F(0.70710678118654752))) + "
                      "x1 * exp(F(-0.5) * x1 * x1) * F(0.39894228040143268))")
NN_GELU_TANH = _activation(
    "gelu_tanh",
    "F(0.5) * x0 * (F(1.0) + tanh(F(0.79788456080286536) * (x0 + F(0.044715) * x0 * x0 * x0)))",
    "x0 * (F(0.5) * (F(1.0) + tanh(F(0.79788456080286536) * (x1 + F(0.044715) * x1 * x1 * x1)))"
    " + F(0.5) * x1 * (F(1.0) - pown(tanh(F(0.79788456080286536) * (x1 + F(0.044715) * x1 * x1"
    " * x1)), 2)) * F(0.79788456080286536) * (F(1.0) + F(0.134145) * x1 * x1))")
NN_SILU = _activation("silu", "x0 / (F(1.0) + exp(-x0))",
                      "x0 * (F(1.0) + x1 * (F(1.0) - F(1.0) / (F(1.0) + exp(-x1)))) / "
                      "(F(1.0) + exp(-x1))")
# softplus(x) = log1p(exp(-|x|)) + max(x, 0) never overflows
NN_MISH = _activation(
    "mish", "x0 * tanh(log1p(exp(-fabs(x0))) + fmax(x0, (clg_t)0))",
    "x0 * (tanh(log1p(exp(-fabs(x1))) + fmax(x1, (clg_t)0)) + x1 / (F(1.0) + exp(-x1)) * "
    "(F(1.0) - pown(tanh(log1p(exp(-fabs(x1))) + fmax(x1, (clg_t)0)), 2)))")
NN_HARDSIGMOID = _activation(
    "hardsigmoid", "x0 <= F(-3.0) ? (clg_t)0 : (x0 >= F(3.0) ? (clg_t)1 : x0 / F(6.0) + F(0.5))",
    "(x1 > F(-3.0) && x1 < F(3.0)) ? x0 / F(6.0) : (clg_t)0")
NN_HARDSWISH = _activation(
    "hardswish", "x0 <= F(-3.0) ? (clg_t)0 : (x0 >= F(3.0) ? x0 : x0 * (x0 + F(3.0)) / F(6.0))",
    "x1 < F(-3.0) ? (clg_t)0 : (x1 <= F(3.0) ? x0 * (x1 / F(3.0) + F(0.5)) : x0)")
NN_SOFTSIGN = _activation("softsign", "x0 / (F(1.0) + fabs(x0))",
                          "x0 / ((F(1.0) + fabs(x1)) * (F(1.0) + fabs(x1)))")
# softplus with beta (x1) and threshold (x2): linear above the threshold, as PyTorch
NN_SOFTPLUS = _activation(
    "softplus", "x0 * x1 > x2 ? x0 : (log1p(exp(-fabs(x0 * x1))) + fmax(x0 * x1, (clg_t)0)) / x1",
    "x1 * x2 > x3 ? x0 : x0 / (F(1.0) + exp(-x1 * x2))")
NN_LOGSIGMOID = _activation("logsigmoid", "fmin(x0, (clg_t)0) - log1p(exp(-fabs(x0)))",
                            "x0 / (F(1.0) + exp(x1))")
NN_THRESHOLD = _activation("threshold", "x0 > x1 ? x0 : x2", "x1 > x2 ? x0 : (clg_t)0")
NN_HARDSHRINK = _activation("hardshrink", "(x0 > x1 || x0 < -x1) ? x0 : (clg_t)0",
                            "(x1 > x2 || x1 < -x2) ? x0 : (clg_t)0")
NN_SOFTSHRINK = _activation("softshrink", "x0 > x1 ? x0 - x1 : (x0 < -x1 ? x0 + x1 : (clg_t)0)",
                            "(x1 > x2 || x1 < -x2) ? x0 : (clg_t)0")


# `where` comparing the condition with zero explicitly: a float-typed condition in a C ternary
# does not compile in OpenCL C (the core WHERE record loads x0 in the compute type)
NN_WHERE = Op("nn_where", "(x0 != (clg_t)0) ? x1 : x2",
              lambda ctx, g: (None,
                              g * ctx.arg(0) if _need(ctx, 1) else None,
                              g * ctx.arg(0).logical_not() if _need(ctx, 2) else None),
              save="x")


def nn_where(cond, a, b):
    """where(cond, a, b) for nn's composites (see NN_WHERE)."""
    return ew(NN_WHERE, cond, a, b)


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
            _bce_backward, dtype="float", save="x")


def dense(t):
    """t itself when contiguous from the start of its buffer (what the fixed-layout nn kernels
    read), else a contiguous copy (recorded by autograd like clone)."""
    return t if t._view.is_contiguous() and t._view.offset == 0 else t.clone()


def _nn_real(x):
    if x.dtype.ctype not in ("float", "double"):
        raise RuntimeError(f"expected a float32 or float64 tensor, got {x.dtype.name}")
    return x.dtype.ctype


def cross_entropy_rows(x, target, weight, ignore_index: int, smoothing: float):
    """Per-row cross entropy of logits x (N, C, S) contiguous against class indices target
    (N*S,) int64. Returns (loss (N*S,), row weight (N*S,)); row weight is 0 for ignored rows and
    is the denominator of the 'mean' reduction."""
    T = _tensor()
    real = _nn_real(x)
    N, C, S = x.shape
    dev = x.device
    loss = T._empty((N * S,), x.dtype, dev)
    wrow = T._empty((N * S,), x.dtype, dev)
    lse = T._empty((N * S,), x.dtype, dev)
    if N * S == 0:
        return loss, wrow
    I = "int"
    k = codegen.nn_kernel(dev, "loss", "clg_ce_forward", real,
                          [None] * 6 + [I, "long", real, I, I, I])
    wbuf = weight if weight is not None else x
    k.launch_1d(N * S, loss._buf.raw, wrow._buf.raw, lse._buf.raw, x._buf.raw, target._buf.raw,
                wbuf._buf.raw, int(weight is not None), int(ignore_index), float(smoothing),
                N, C, S)
    if autograd.needs_grad(x):
        ctx = autograd.Context([True, False, False])
        ctx.save_for_backward(x, lse)
        wsum = weight.detach().sum() if weight is not None else None

        def backward(ctx, g):
            _fused_guard("cross_entropy")
            xs, lse_ = ctx.saved_tensors
            g = dense(g)
            dx = T._empty(xs.shape, xs.dtype, xs.device)
            kb = codegen.nn_kernel(xs.device, "loss", "clg_ce_backward", real,
                                   [None] * 6 + [I, None, "long", real, I, I, I])
            kb.launch_1d(N * C * S, dx._buf.raw, xs._buf.raw, lse_._buf.raw, target._buf.raw,
                         g._buf.raw, wbuf._buf.raw, int(weight is not None),
                         (wsum if wsum is not None else xs)._buf.raw, int(ignore_index),
                         float(smoothing), N, C, S)
            return dx, None, None
        autograd.record("NllLossBackward0", backward, ctx, (x, target, weight), [loss])
    return loss, wrow.detach()


def norm_rows(x, eps: float, weight=None, bias=None, per_row=False):
    """Normalise each row r of a contiguous (A, R, B) tensor over its A*B elements, then apply
    weight/bias indexed per row (per_row) or per b. Returns (y, mean (R,), rstd (R,), var (R,))
    with the biased variance; only y is differentiable."""
    T = _tensor()
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
    args = (x, weight, bias)
    if autograd.needs_grad(*args):
        ctx = autograd.Context([a is not None and a.requires_grad for a in args])
        ctx.save_for_backward(x, mean, rstd, weight)

        def backward(ctx, g):
            _fused_guard("layer_norm/batch_norm")
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
                    xhat = (xs - mu.reshape(1, R, 1)) * rs.reshape(1, R, 1)
                    gw = (g * xhat).sum((0, 1))
                    gb = g.sum((0, 1))
            return (dx if ctx.needs_input_grad[0] else None,
                    gw if ctx.needs_input_grad[1] else None,
                    gb if ctx.needs_input_grad[2] else None)
        autograd.record("NativeLayerNormBackward0" if not per_row else
                        "NativeBatchNormBackward0", backward, ctx, args, [y])
    return y, mean, rstd, var


def dropout_apply(x, p: float, group: int, seed: int, offset: int):
    """x * keep / (1 - p) with keep drawn from Philox counter (seed, offset + i // group);
    x contiguous from offset 0. Its gradient is the same map of the gradient."""
    T = _tensor()
    real = _nn_real(x)
    n = x.numel()
    out = T._empty(x.shape, x.dtype, x.device)
    if n:
        k = codegen.nn_kernel(x.device, "dropout", "clg_dropout", real,
                              [None, None, "ulong", "ulong", "float", real, "long", "long"])
        k.launch_1d(n, out._buf.raw, x._buf.raw, seed & ((1 << 64) - 1), offset, float(p),
                    1.0 / (1.0 - p), int(group), n)
    if autograd.needs_grad(x):
        ctx = autograd.Context([True])
        autograd.record("NativeDropoutBackward0",
                        lambda c, g: (dropout_apply(dense(g), p, group, seed, offset),), ctx,
                        (x,), [out])
    return out


def embedding_lookup(weight, idx, padding_idx: int):
    """Rows of weight (V, D) at int64 indices idx (n,) -> (n, D); the backward sums gradient rows
    per destination row in index order (deterministic, no atomics)."""
    T = _tensor()
    real = _nn_real(weight)
    V, D = weight.shape
    n = idx.numel()
    dev = weight.device
    out = T._empty((n, D), weight.dtype, dev)
    L = "long"
    wv = weight._view
    if n * D:
        k = codegen.nn_kernel(dev, "embedding", "clg_embedding_forward", real,
                              [None, None, L, L, L, None, L, L, L])
        k.launch_1d(n * D, out._buf.raw, weight._buf.raw, wv.offset, wv.strides[0],
                    wv.strides[1], idx._buf.raw, n, D, V)
    if autograd.needs_grad(weight):
        ctx = autograd.Context([True, False])

        def backward(ctx, g):
            _fused_guard("embedding")
            g = dense(g)
            dw = T._empty((V, D), g.dtype, g.device)
            if V * D:
                kb = codegen.nn_kernel(g.device, "embedding", "clg_embedding_backward", real,
                                       [None, None, None, L, L, L, L])
                kb.launch_1d(V, dw._buf.raw, g._buf.raw, idx._buf.raw, n, D, V,
                             int(padding_idx))
            return dw, None
        autograd.record("EmbeddingBackward0", backward, ctx, (weight, idx), [out])
    return out




# ==== convolution and pooling (helper: conv) ====
# (records and functions of this group go below this line)

# Window kernels (kernels_cl/conv.cl, pool.cl, upsample.cl) run on dense (B, H, W) planes; 1-D
# callers pass H = 1. Each kernel pair below is a linear map and its adjoint, recorded so that
# each one's gradient is the other: double backward comes for free.
def _dense(x):
    """x itself when contiguous from offset 0, else a dense copy (no autograd)."""
    if x._view.is_contiguous() and x._view.offset == 0:
        return x
    return copy_into(_tensor()._empty(x.shape, x.dtype, x.device), x)


def _window_launch(family, base, out, n, *args):
    T = _tensor()
    dt = out.dtype if out.dtype.is_floating else next(
        a.dtype for a in args if isinstance(a, T) and a.dtype.is_floating)
    if dt.ctype not in ("float", "double"):
        raise NotImplementedError(f"{base}: only float32 and float64 tensors are supported, "
                                  f"got {dt.name}")
    for a in (out, *args):
        if isinstance(a, T) and a._view.numel >= codegen.INT32_LIMIT:
            raise RuntimeError(f"{base}: tensors of 2**31 or more elements are not supported")
    k = codegen.window_kernel(out.device, family, base, dt)
    if n:
        k.launch_1d(n, out._buf.raw, *(a._buf.raw if isinstance(a, T) else a for a in args), n)
    out._buf.version += 1
    return out


def linear_pair(x, fwd, adj, name):
    """y = fwd(x) for a linear map `fwd` whose adjoint is `adj` (both Tensor -> Tensor, no
    autograd); the record's backward is linear_pair(g, adj, fwd), so every order differentiates."""
    y = fwd(x)
    if autograd.needs_grad(x):
        ctx = autograd.Context([True])
        autograd.record(name, lambda c, g: (linear_pair(g, adj, fwd, name),), ctx, (x,), [y])
    return y


def im2col(x, g):
    """(B, C, H, W) -> (B, C*KH*KW, OH*OW) for g = (C, H, W, KH, KW, OH, OW, SH, SW, PH, PW, DH,
    DW); zero padding is implicit (taps outside the input read 0)."""
    C, H, W, KH, KW, OH, OW = g[:7]
    B = x.shape[0]
    out = _tensor()._empty((B, C * KH * KW, OH * OW), x.dtype, x.device)
    st = x._view.strides
    return _window_launch("conv", "im2col", out, out.numel(), x, x._view.offset, *st, *g)


def col2im(cols, g):
    """The adjoint of im2col: (B, C*KH*KW, OH*OW) -> (B, C, H, W), summing overlapping taps."""
    C, H, W = g[:3]
    cols = _dense(cols)
    out = _tensor()._empty((cols.shape[0], C, H, W), cols.dtype, cols.device)
    return _window_launch("conv", "col2im", out, out.numel(), cols, *g)


PAD_MODES = {"zeros": 0, "constant": 0, "reflect": 1, "replicate": 2, "circular": 3}


def pad_planes(x, pads, mode):
    """(B, H, W) -> (B, H + PT + PB, W + PL + PR) with `mode` ('zeros', 'reflect', 'replicate',
    'circular'); pads = (PL, PR, PT, PB), F.pad's order."""
    pl, pr, pt, pb = pads
    B, H, W = x.shape
    m = PAD_MODES[mode]
    shape_y = (B, H + pt + pb, W + pl + pr)

    def fwd(t):
        y = _tensor()._empty(shape_y, t.dtype, t.device)
        return _window_launch("conv", "pad", y, y.numel(), _dense(t), H, W, shape_y[1],
                              shape_y[2], pt, pl, m)

    def adj(t):
        y = _tensor()._empty((B, H, W), t.dtype, t.device)
        return _window_launch("conv", "pad_grad", y, y.numel(), _dense(t), H, W, shape_y[1],
                              shape_y[2], pt, pl, m)

    return linear_pair(x, fwd, adj, f"{mode.capitalize()}PadBackward0")


def pool_geometry(H, W, OH, OW, k, s, p, d, adaptive):
    return (H, W, OH, OW, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], int(adaptive))


def max_pool_planes(x, geom):
    """Max pooling of (B, H, W) planes -> (values (B, OH, OW), int64 plane indices)."""
    T = _tensor()
    from .dtypes import int64 as _i64
    H, W, OH, OW = geom[:4]
    xd = _dense(x)
    B = x.shape[0]
    y = T._empty((B, OH, OW), x.dtype, x.device)
    idx = T._empty((B, OH, OW), _i64, x.device)
    _window_launch("pool", "max_pool", y, y.numel(), idx, xd, *geom)
    if autograd.needs_grad(x):
        ctx = autograd.Context([True])
        shape = x.shape
        autograd.record("MaxPool2DWithIndicesBackward0",
                        lambda c, g: (max_pool_scatter(g, idx, geom, shape),), ctx, (x,), [y])
    return y, idx


def max_pool_scatter(g, idx, geom, shape):
    """Gradient of max pooling: each input sums the output gradients whose argmax it is."""
    def fwd(t):
        out = _tensor()._empty(shape, t.dtype, t.device)
        return _window_launch("pool", "max_pool_grad", out, out.numel(), _dense(t), idx, *geom)

    def adj(t):
        return gather_planes(t, idx, geom[0] * geom[1])

    return linear_pair(g, fwd, adj, "MaxPoolScatterBackward0")


def gather_planes(x, idx, plane):
    """out[b, j] = x[b, idx[b, j]] per plane of `plane` elements, shaped like idx (no autograd)."""
    out = _tensor()._empty(idx.shape, x.dtype, x.device)
    L = idx.numel() // max(idx.shape[0], 1)
    return _window_launch("pool", "unpool_grad", out, out.numel(), _dense(x), _dense(idx), L,
                          plane)


def unpool_planes(x, idx, OH, OW):
    """max_unpool: zeros (B, OH, OW) with x[b, j] placed at plane index idx[b, j]."""
    B = x.shape[0]
    L = x.numel() // max(B, 1)
    idd = _dense(idx)

    def fwd(t):
        y = copy_into(_tensor()._empty((B, OH, OW), t.dtype, t.device), 0)
        return _window_launch("pool", "unpool", y, t.numel(), _dense(t), idd, L, OH * OW)

    def adj(t):
        return gather_planes(t, idd, OH * OW).reshape(x.shape)

    return linear_pair(x, fwd, adj, "MaxUnpool2DBackward0")


def avg_pool_planes(x, geom, include_pad, divisor):
    """Average pooling of (B, H, W) planes; geom from pool_geometry (dilation unused)."""
    H, W, OH, OW = geom[:4]
    g = geom[:10] + (geom[12], int(include_pad), int(divisor or 0))
    B = x.shape[0]

    def fwd(t):
        y = _tensor()._empty((B, OH, OW), t.dtype, t.device)
        return _window_launch("pool", "avg_pool", y, y.numel(), _dense(t), *g)

    def adj(t):
        y = _tensor()._empty((B, H, W), t.dtype, t.device)
        return _window_launch("pool", "avg_pool_grad", y, y.numel(), _dense(t), *g)

    return linear_pair(x, fwd, adj, "AvgPool2DBackward0")


def resize_planes(x, OH, OW, mode, scales, align_corners=False):
    """Resize (B, H, W) planes to (B, OH, OW): mode 'nearest' or 'bilinear'; `scales` are the
    per-dim source steps (input/output ratios) the kernels multiply output coordinates by."""
    B, H, W = x.shape
    sh, sw = scales
    extra = (float(sh), float(sw)) if mode == "nearest" else (float(sh), float(sw),
                                                              int(align_corners))
    base = "nearest" if mode == "nearest" else "bilinear"

    def fwd(t):
        y = _tensor()._empty((B, OH, OW), t.dtype, t.device)
        return _window_launch("upsample", base, y, y.numel(), _dense(t), H, W, OH, OW, *extra)

    def adj(t):
        y = _tensor()._empty((B, H, W), t.dtype, t.device)
        return _window_launch("upsample", base + "_grad", y, y.numel(), _dense(t), H, W, OH, OW,
                              *extra)

    name = "UpsampleNearest2DBackward0" if mode == "nearest" else "UpsampleBilinear2DBackward0"
    return linear_pair(x, fwd, adj, name)
#
#


# ==== optimizer updates (helper: optim) ====
# (records and functions of this group go below this line)
#
#
def optim_update(name, update, param, grad, states, scalars, offset: int, n: int):
    """Run a fused optimizer update in place over elements [offset, offset + n) of the flat
    arenas `param`, `grad` and `states` (a tuple of (C name, 1-D tensor)); `scalars` is a tuple
    of (C name, value), passed as kernel arguments so changing a learning rate builds nothing."""
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
    k.launch_1d(int(n), *args)
    param._buf.version += 1
    for _, t in states:
        t._buf.version += 1



# ==== sequence models (helper: seq) ====
# The fused recurrent-cell and attention records live in clgrad/_rnn.py and clgrad/_attention.py
# (kernels: kernels_cl/rnn.cl, kernels_cl/attention.cl via codegen.seq_kernel).
