"""The op record and the elementwise launcher: `Op`, `ew` (run a record forward; tensor/apply.py
records its gradient), casts, copies, fills and device random numbers."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable

from ..array import Array
from ..dtypes import DType, bool_, get_default_dtype, result_type, torch_name
from ..runtime import codegen
from ..view import broadcast_shapes, coalesce

@dataclass(frozen=True)
class Op:
    """An elementwise primitive: a C expression over x0, x1, ... in the compute type `clg_t`.

    `F(c)` in an expression is a floating constant in the compute precision. `int_expr` replaces
    `expr` when the op computes in an integer type. `dtype`: 'same' keeps the promoted input type,
    'float' promotes integers to the default float, 'bool' outputs bool. `save`: which values the
    backward needs, from 'x' (the inputs) and 'o' (the output). `preamble` files are included
    when the compute type is floating, `int_preamble` when it is an integer. `grad_name` is the
    op whose grad_fn a variant reports (add with alpha is PyTorch's AddBackward0). `ref` is the
    numpy reference and `sample` the sample arguments in order, a (low, high) range for each
    tensor and a number for each scalar (tests/test_op_table.py runs them all)."""

    name: str
    expr: str
    backward: Callable | None = None
    dtype: str = "same"
    save: str = ""
    int_expr: str | None = None
    preamble: tuple = ()
    int_preamble: tuple = ()
    grad_name: str = ""
    ref: Callable | None = field(default=None, compare=False)
    sample: tuple = ()


def _need(ctx, i):
    return ctx.needs_input_grad[i]


def _binary_grads(fa, fb):
    def backward(ctx, g):
        return (fa(ctx, g) if _need(ctx, 0) else None,
                fb(ctx, g) if _need(ctx, 1) else None)
    return backward


_CONST = re.compile(r"F\(([^()]*)\)")


@functools.lru_cache(maxsize=None)
def _render_expr(expr: str, compute: str) -> str:
    # a pure function of two short strings, asked on every elementwise launch: render once
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
    shape = out.shape
    n = out._view.numel
    if n == 0:
        return out
    tens = [a for a in inputs if isinstance(a, Array)]
    views = [a._view.expand(shape) if a.shape != shape else a._view for a in tens]
    cshape, cstrides = coalesce(shape, out._view.strides, *(v.strides for v in views))
    rank = len(cshape)
    spec, operands, vi = [], [], 0
    for a in inputs:
        if isinstance(a, Array):
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


def ew(op: Op, *args, out=None):
    """Run an elementwise table op forward into a new tensor (or `out`); no autograd."""
    tens = [a for a in args if isinstance(a, Array)]
    device = _check_devices(tens)
    common, out_dtype = _compute_type(op, args)
    shape = broadcast_shapes(*(t.shape for t in tens))
    if out is None:
        out = tens[0]._plain._empty(shape, out_dtype, device)
    else:
        if out.shape != shape:
            raise RuntimeError(f"output with shape {list(out.shape)} doesn't match the "
                               f"broadcast shape {list(shape)}")
        if out_dtype.category > out.dtype.category:
            raise RuntimeError(f"result type {torch_name(out_dtype)} can't be cast to the "
                               f"desired output type {torch_name(out.dtype)}")
    integer = op.int_expr is not None and not common.is_floating
    expr = op.int_expr if integer else op.expr
    compute = common.compute
    label = f"{op.name}_{out.dtype.short}" + "".join(
        "_" + t.dtype.short for t in tens if t.dtype is not out.dtype)
    # scalars reach the kernel converted to the compute type
    conv = [a if isinstance(a, Array) else _scalar(a, common) for a in args]
    launch_ew(f"ew_{label}", expr, out, conv, compute,
              op.int_preamble if integer else op.preamble)
    return out


def _scalar(v, dt: DType):
    if dt is bool_:
        return int(bool(v))
    if dt.is_floating:
        return float(v)
    return int(v)


def cast(x, dtype: DType, out=None):
    """Convert to `dtype` on the device (C conversion: float -> int truncates, like PyTorch);
    no autograd."""
    T = x._plain
    if out is None:
        out = T._empty(x.shape, dtype, x.device)
    # to bool the test is `!= 0` in the source type (0.5 -> True), not after truncation
    compute = x.dtype.compute if dtype is bool_ else dtype.compute
    launch_ew(f"cast_{x.dtype.short}_{dtype.short}", "x0", out, [x], compute)
    return out


def copy_into(dst, src):
    """dst[...] = src with broadcasting and conversion (no autograd; callers record it)."""
    is_t = isinstance(src, Array)
    compute = src.dtype.compute if is_t and dst.dtype is bool_ else dst.dtype.compute
    launch_ew(f"copy_{dst.dtype.short}_{src.dtype.short}" if is_t
              else f"fill_{dst.dtype.short}", "x0", dst, [src if is_t
                                                          else _scalar(src, dst.dtype)],
              compute)
    return dst


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
