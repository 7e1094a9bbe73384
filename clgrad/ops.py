"""The op table: one record per primitive op (kernel snippet, dtype rule, gradient) and the
dispatchers that launch each kernel family on strided, broadcast tensors."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from . import autograd
from .dtypes import DType, bool_, float32, float64, get_default_dtype, int64, result_type
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


def _arg(ctx, i):
    return ctx.arg(i)


NEG = Op("neg", "-x0", lambda ctx, g: (-g,))
EXP = Op("exp", "exp(x0)", lambda ctx, g: (g * ctx.out(),), dtype="float", save="o")
LOG = Op("log", "log(x0)", lambda ctx, g: (g / ctx.arg(0),), dtype="float", save="x")
SQRT = Op("sqrt", "sqrt(x0)", lambda ctx, g: (g / (ctx.out() * 2),), dtype="float", save="o")
SIN = Op("sin", "sin(x0)", lambda ctx, g: (g * ctx.arg(0).cos(),), dtype="float", save="x")
COS = Op("cos", "cos(x0)", lambda ctx, g: (-g * ctx.arg(0).sin(),), dtype="float", save="x")
TANH = Op("tanh", "tanh(x0)", lambda ctx, g: (g * (1 - ctx.out() * ctx.out()),), dtype="float",
          save="o")
SIGMOID = Op("sigmoid", "F(1.0) / (F(1.0) + exp(-x0))",
             lambda ctx, g: (g * ctx.out() * (1 - ctx.out()),), dtype="float", save="o")
# relu keeps NaN (x < 0 is false for NaN); its gradient at 0 is 0, as in PyTorch
RELU = Op("relu", "x0 < (clg_t)0 ? (clg_t)0 : x0",
          lambda ctx, g: (g * (ctx.out() > 0),), save="o")
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
WHERE = Op("where", "(x0 != (clg_t)0) ? x1 : x2",
           lambda ctx, g: (None,
                           g * ctx.arg(0) if _need(ctx, 1) else None,
                           g * ctx.arg(0).logical_not() if _need(ctx, 2) else None),
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
        saved = self.saved_tensors
        v = self._args[i]
        return saved[self._slot[i]] if v is None else v

    def out(self):
        return self.saved_tensors[-1]


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


def torch_name(d: DType) -> str:
    return {"float16": "Half", "float32": "Float", "float64": "Double", "int64": "Long",
            "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
            "bool": "Bool"}[d.name]


def _scalar(v, dt: DType):
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
    launch_ew(f"cast_{x.dtype.short}_{dtype.short}", "x0", out, [x], dtype.compute)
    if autograd.needs_grad(x) and dtype.is_floating:
        src = x.dtype
        _record("to_copy", lambda ctx, g: (g.to(src),), "", (x,), out)
    return out


def copy_into(dst, src):
    """dst[...] = src with broadcasting and conversion (no autograd; callers record it)."""
    launch_ew(f"copy_{dst.dtype.short}_{src.dtype.short}" if isinstance(src, _tensor())
              else f"fill_{dst.dtype.short}", "x0", dst, [src if isinstance(src, _tensor())
                                                          else _scalar(src, dst.dtype)],
              dst.dtype.compute)
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
    ts = codegen.matmul_tile(device, acc_bytes)
    wide = _wide([av, bv, cv])
    k = None
    while k is None:
        k = codegen.matmul_kernel(device, dt, dt, dt, acc_t, len(bshape), wide, ts)
        if k is None:
            ts //= 2
    nb = 1
    for s in bshape:
        nb *= s
    g0 = (N + ts - 1) // ts * ts
    g1 = (M + ts - 1) // ts * ts
    k((g0, g1, nb), (ts, ts, 1),
      c._buf.raw, cv.offset, cv.strides[-2], cv.strides[-1],
      a._buf.raw, av.offset, av.strides[-2], av.strides[-1],
      b._buf.raw, bv.offset, bv.strides[-2], bv.strides[-1],
      M, N, K, *bshape, *c_bst, *a_bst, *b_bst)
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


# ==== nn kernels: losses, norms, embedding, dropout (helper: nn) ====
# (records and functions of this group go below this line)
#
#


# ==== convolution and pooling (helper: conv) ====
# (records and functions of this group go below this line)
#
#


# ==== optimizer updates (helper: optim) ====
# (records and functions of this group go below this line)
#
#
