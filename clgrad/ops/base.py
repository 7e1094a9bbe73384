"""The op record and the elementwise launcher: `Op`, `ew` (run a record forward; tensor/apply.py
records its gradient), casts, copies, fills and device random numbers."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable

from ..array import FUSIBLE, Array
from ..dtypes import DType, bool_, float16, get_default_dtype, result_type, torch_name
from ..runtime import Buffer, check_dtype, codegen, lazy
from ..view import View, broadcast_shapes, coalesce

@dataclass(frozen=True, eq=False)     # identity: the fast path keys plans on the record
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
    suffix = "f" if compute in ("float", codegen.HALF_COMPUTE) else ""
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


class _Launch:
    """One elementwise launch with everything derivable from the views worked out: the Kernel,
    its argument list with the constants (offsets, strides, sizes) in place, and where each
    call's buffers and scalars go. Running one is a list copy and an enqueue."""

    __slots__ = ("kernel", "gsize", "lsize", "args", "slots")

    def __init__(self, kernel, n, args, slots):
        self.kernel = kernel
        self.gsize, self.lsize = kernel.sizes_1d(n)
        self.args = args
        self.slots = slots            # (argument position, input index, is a tensor)

    def run(self, out_raw, inputs):
        args = self.args.copy()
        args[0] = out_raw
        for pos, i, is_t in self.slots:
            a = inputs[i]
            args[pos] = a._buf.raw if is_t else a
        self.kernel(self.gsize, self.lsize, *args)

    def run_leaves(self, out_raw, inputs):
        """run() for a pending node's arguments (clgrad/array.py): a tensor is a (buffer, view,
        dtype) tuple or a stored node (its `buf`)."""
        args = self.args.copy()
        args[0] = out_raw
        for pos, i, is_t in self.slots:
            a = inputs[i]
            args[pos] = (a[0].raw if type(a) is tuple else a.buf.raw) if is_t else a
        self.kernel(self.gsize, self.lsize, *args)


_launches: dict = {}
# plans are small, but views with ever-new offsets (a loop over x[i]) would grow them forever
PLAN_LIMIT = 8192


def _keep(store: dict, key, value):
    if len(store) >= PLAN_LIMIT:
        store.clear()
    store[key] = value
    return value


def _plan_launch(name, expr, device, out_dtype, out_view, metas, compute, preamble):
    """The _Launch writing `expr` into out_view; metas per input: its (dtype, view) for a
    tensor (broadcast to the output's shape), None for a scalar argument. None when the output
    is empty."""
    shape = out_view.shape
    n = out_view.numel
    if n == 0:
        return None
    views = [m[1].expand(shape) if m is not None and m[1].shape != shape else
             (m[1] if m is not None else None) for m in metas]
    tviews = [v for v in views if v is not None]
    cshape, cstrides = coalesce(shape, out_view.strides, *(v.strides for v in tviews))
    rank = len(cshape)
    # one contiguous run for all: the flat kernel (unit strides, no index arithmetic)
    flat = None
    if rank == 1 and (n == 1 or (cstrides[0][0] == 1 and
                                 all(st[0] in (0, 1) for st in cstrides[1:]))):
        flat = []
    spec, args, slots, vi = [], [None, out_view.offset], [], 0
    if flat is None:
        args += cstrides[0]
    for i, m in enumerate(metas):
        if m is not None:
            spec.append((m[0], compute))
            slots.append((len(args), i, True))
            args += [None, views[i].offset]
            st = cstrides[1 + vi]
            if flat is None:
                args += st
            else:
                flat.append(n > 1 and st[0] == 1)
            vi += 1
        else:
            spec.append((None, compute))
            slots.append((len(args), i, False))
            args.append(None)
            if flat is not None:
                flat.append(False)
    args.append(n)
    if flat is None:
        args += cshape
    k = codegen.elementwise_kernel(device, name, _render_expr(expr, compute), out_dtype,
                                   tuple(spec), rank, _wide([out_view, *tviews]), compute,
                                   tuple(preamble), None if flat is None else tuple(flat))
    return _Launch(k, n, args, tuple(slots))


def _launch_for(name, expr, out, inputs, compute, preamble):
    device = out._buf.device
    ov = out._view
    # views enter the key as their fields: tuples of ints hash in C, a dataclass in Python
    key = [name, expr, device.index, out.dtype, ov.shape, ov.strides, ov.offset, compute,
           preamble]
    for a in inputs:
        if isinstance(a, Array):
            v = a._view
            key += (a._buf.device.index, a.dtype, v.shape, v.strides, v.offset)
        else:
            key.append(None)
    key = tuple(key)
    plan = _launches.get(key)
    if plan is None and key not in _launches:
        for a in inputs:
            if isinstance(a, Array) and a._buf.device != device:
                _check_devices([out, a])
        metas = tuple((a.dtype, a._view) if isinstance(a, Array) else None for a in inputs)
        plan = _keep(_launches, key, _plan_launch(name, expr, device, out.dtype, ov, metas,
                                                  compute, preamble))
    return plan


def launch_ew(name, expr, out, inputs, compute: str, preamble=()):
    """Run `expr` elementwise into the tensor `out` (any view). inputs: tensors (broadcast to
    out's shape) or scalars passed as kernel arguments of the compute type `compute`."""
    plan = _launch_for(name, expr, out, inputs, compute, tuple(preamble))
    if plan is not None:
        plan.run(out._buf.raw, inputs)
        out._buf.version += 1
    return out


def _compute_type(op: Op, args) -> tuple[DType, DType]:
    """(compute dtype, output dtype) of an elementwise op under PyTorch's promotion."""
    common = result_type(*args)
    if op.dtype == "float" and not common.is_floating:
        common = get_default_dtype()
    out = bool_ if op.dtype == "bool" else common
    return common, out


class _EwPlan:
    """What `ew` derived for one (op, argument dtypes, views, scalar types, device): the output's
    dtype and view, how each scalar is converted, and the launch. `fuse` = (name, expression,
    compute type, preamble files) when the result may stay pending (clgrad/array.py), and then
    the unfused launch is built only if a chain of one is launched (`launch_for_run`)."""

    __slots__ = ("out_dtype", "out_view", "nbytes", "device", "convs", "launch", "first",
                 "fuse", "spec", "node")

    def launch_for_run(self):
        launch = self.launch
        if launch is None:
            launch = self.launch = _plan_launch(*self.spec)
        return launch


_ew_plans: dict = {}



def _ew_key(op, args, out):
    key = [op, get_default_dtype()]
    for a in args:
        if isinstance(a, Array):
            v = a._view
            lz = a._lazy
            key += (a._buf.device.index if lz is None else lz.device.index, a.dtype, v.shape,
                    v.strides, v.offset)
        else:
            key.append(type(a))
    if out is not None:
        v = out._view
        key += (out._buf.device.index, out.dtype, v.shape, v.strides, v.offset)
    return tuple(key)


def ew(op: Op, *args, out=None):
    """Run an elementwise table op forward into a new tensor (or `out`); no autograd. A repeated
    (op, dtypes, views, scalar types, device) is one dictionary lookup, an allocation and an
    enqueue: the first call derives and keeps everything else."""
    key = _ew_key(op, args, out)
    plan = _ew_plans.get(key)
    if plan is None:
        plan = _keep(_ew_plans, key, _ew_plan(op, args, out))
    convs = plan.convs
    if convs:
        args = [c(a) if c is not None else a for c, a in zip(convs, args)]
    if out is None:
        if plan.fuse is not None and lazy.enabled:
            return args[plan.first]._plain._pending(plan, args)
        out = args[plan.first]._plain._make(Buffer(plan.device, plan.nbytes), plan.out_view,
                                            plan.out_dtype)
    launch = plan.launch
    if launch is None and plan.fuse is not None:
        launch = plan.launch_for_run()
    if launch is not None:
        launch.run(out._buf.raw, args)
        out._buf.version += 1
    return out


def _ew_plan(op: Op, args, out):
    tens = [a for a in args if isinstance(a, Array)]
    device = _check_devices(tens if out is None else [*tens, out])
    common, out_dtype = _compute_type(op, args)
    shape = broadcast_shapes(*(t.shape for t in tens))
    if out is None:
        check_dtype(device, out_dtype)
        out_view = View.contiguous(shape)
    else:
        if out.shape != shape:
            raise RuntimeError(f"output with shape {list(out.shape)} doesn't match the "
                               f"broadcast shape {list(shape)}")
        if out_dtype.category > out.dtype.category:
            raise RuntimeError(f"result type {torch_name(out_dtype)} can't be cast to the "
                               f"desired output type {torch_name(out.dtype)}")
        out_view, out_dtype = out._view, out.dtype
    integer = op.int_expr is not None and not common.is_floating
    expr = op.int_expr if integer else op.expr
    label = f"{op.name}_{out_dtype.short}" + "".join(
        "_" + t.dtype.short for t in tens if t.dtype is not out_dtype)
    # scalars reach the kernel converted to the compute type
    conv = _converter(common)
    plan = _EwPlan()
    plan.out_dtype, plan.out_view, plan.device = out_dtype, out_view, device
    # the output is made by the first tensor argument's plain class
    plan.first = next((i for i, a in enumerate(args) if isinstance(a, Array)), None)
    plan.nbytes = out_view.numel * out_dtype.itemsize
    plan.convs = None if len(tens) == len(args) else tuple(
        None if isinstance(a, Array) else conv for a in args)
    metas = tuple((a.dtype, a._view) if isinstance(a, Array) else None for a in args)
    compute = common.compute
    if common is float16 and not op.preamble:
        # half arithmetic where the device has cl_khr_fp16 (float elsewhere); ops with helper
        # functions (tanh, erf, softplus, ...) keep computing in float
        compute = codegen.HALF_COMPUTE
    preamble = tuple(op.int_preamble if integer else op.preamble)
    plan.spec = (f"ew_{label}", expr, device, out_dtype, out_view, metas, compute, preamble)
    plan.fuse = None
    plan.launch = None
    if (out is None and plan.first is not None and out_view.numel > 0
            and out_dtype.name in FUSIBLE and all(t.dtype.name in FUSIBLE for t in tens)
            and not _wide([out_view, *(t._view for t in tens)])):
        plan.fuse = (op.name, _render_expr(expr, compute), compute, preamble)
        plan.node = (device, out_view, out_dtype, compute)     # what a pending node copies
    else:
        plan.launch = _plan_launch(*plan.spec)
    return plan


def _converter(dt: DType):
    if dt is bool_:
        return lambda v: int(bool(v))
    return float if dt.is_floating else int


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
        out = T._empty(x._view.shape, dtype, x.device)
    # to bool the test is `!= 0` in the source type (0.5 -> True), not after truncation
    compute = x.dtype.compute if dtype is bool_ else dtype.compute
    launch_ew(_copy_name("cast", dtype, x.dtype), "x0", out, [x], compute)
    return out


@functools.lru_cache(maxsize=None)
def _copy_name(kind, dst: DType, src: DType | None) -> str:
    # kernel names of casts, copies and fills, formatted once per pair of dtypes
    if kind == "cast":
        return f"cast_{src.short}_{dst.short}"
    return f"copy_{dst.short}_{src.short}" if src is not None else f"fill_{dst.short}"


class _StorePlan:
    """A pending write of `x0` into an existing tensor (clgrad/array.py: Array._write_pending):
    the fields a pending node reads, and the unfused launch for a chain of one."""

    __slots__ = ("fuse", "out_view", "out_dtype", "device", "node")

    def __init__(self, name, compute, dst):
        self.fuse = (name, "x0", compute, ())
        self.out_view, self.out_dtype, self.device = dst._view, dst.dtype, dst._buf.device
        self.node = (self.device, self.out_view, self.out_dtype, compute)

    def store(self, dst, args):
        name, expr, compute, preamble = self.fuse
        plan = _launch_for(name, expr, dst, args, compute, preamble)
        if plan is not None:
            plan.run(dst._buf.raw, args)


def copy_into(dst, src):
    """dst[...] = src with broadcasting and conversion (no autograd; callers record it). With
    fusion on, the write may stay pending: dst's version counts it at once, and its data
    arrive before anything else reads or writes that memory."""
    is_t = isinstance(src, Array)
    compute = src.dtype.compute if is_t and dst.dtype is bool_ else dst.dtype.compute
    name = _copy_name("copy", dst.dtype, src.dtype if is_t else None)
    val = src if is_t else _scalar(src, dst.dtype)
    if lazy.enabled and dst._lazy is None and _can_defer(dst, src if is_t else None):
        return dst._write_pending(_StorePlan(name, compute, dst), (val,))
    launch_ew(name, "x0", dst, [val], compute)
    return dst


def _can_defer(dst, src) -> bool:
    v = dst._view
    if v.numel == 0 or dst.dtype.name not in FUSIBLE or _wide([v]):
        return False
    if src is not None:
        if src.dtype.name not in FUSIBLE or src.device != dst._buf.device:
            return False
        sv = src._view
        if sv.shape != v.shape:
            sv = sv.expand(v.shape)          # raises the broadcast error now, as eager would
        if _wide([sv]):
            return False
    return True


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
