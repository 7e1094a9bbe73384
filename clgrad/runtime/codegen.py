"""Kernel families: turn an op spec into the snippets its kernels_cl/ template needs, then launch.

Python computes every snippet (argument lists, index arithmetic, loads, stores); the templates
only substitute. Each *_kernel function is @memoize'd by its compact spec, so a launch renders
nothing."""
from __future__ import annotations

import numpy as np

from ..dtypes import DType
from . import faults
from .device import Device
from .errors import UnsupportedDTypeError
from .program import CTYPES as _NP
from .program import Args, kernel, kernels_dir, local_mem, memoize, render
from .program import _memo  # noqa: F401  (gemm.py and tools/render_kernel.py use codegen._memo)
INT32_LIMIT = 2**31 - 1


def check_dtype(device: Device, dt: DType) -> None:
    if dt.ctype == "double" and not device.has_fp64:
        raise UnsupportedDTypeError(
            f"float64 needs the cl_khr_fp64 extension, which {device.name} ({device.spec}) "
            "does not report. Use float32.")


# float16, one source for every device: where the compiler defines cl_khr_fp16 and the device
# is not built with CLG_HALF_AS_FLOAT (Oclgrind), halves compute as `half`; elsewhere they are
# storage (vload_half/vstore_half_rte) computed in float. bfloat16 ("ushort") is a float's high
# half: a shift in, round-to-nearest-even out.
_HALF_DEFS = """#ifndef CLG_HALF_DEFS
#define CLG_HALF_DEFS
#if defined(cl_khr_fp16) && !defined(CLG_HALF_AS_FLOAT)
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
typedef half clg_half_t;
#define CLG_LOAD_HALF(i, p) ((p)[i])
#define CLG_STORE_HALF(v, i, p) ((p)[i] = (half)(v))
#else
typedef float clg_half_t;
#define CLG_LOAD_HALF(i, p) vload_half(i, p)
#define CLG_STORE_HALF(v, i, p) vstore_half_rte((float)(v), i, p)
#endif
#endif"""
_BF16_DEFS = """#ifndef CLG_BF16_DEFS
#define CLG_BF16_DEFS
inline float clg_bf16_load(ushort b) { return as_float(((uint)b) << 16); }
inline ushort clg_bf16_store(float v)
{
    const uint u = as_uint(v);
    return isnan(v) ? (ushort)0x7FC0 : (ushort)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
#endif"""
HALF_COMPUTE = "clg_half_t"      # the compute type of float16 arithmetic (half or float)


def _extensions(*ctypes) -> str:
    parts = []
    if "double" in ctypes:
        parts.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
    if "half" in ctypes or HALF_COMPUTE in ctypes:
        parts.append(_HALF_DEFS)
    if "ushort" in ctypes:
        parts.append(_BF16_DEFS)
    return "\n".join(parts)


def _load(ptr: str, storage: str, off: str, to: str) -> str:
    if storage == "half":
        return f"(({to})CLG_LOAD_HALF({off}, {ptr}))"
    if storage == "ushort":
        return f"(({to})clg_bf16_load({ptr}[{off}]))"
    return f"(({to}){ptr}[{off}])"


def _store(ptr: str, storage: str, off: str, value: str, is_bool: bool) -> str:
    if storage == "half":
        return f"CLG_STORE_HALF({value}, {off}, {ptr});"
    if storage == "ushort":
        return f"{ptr}[{off}] = clg_bf16_store((float)({value}));"
    if is_bool:
        return f"{ptr}[{off}] = (uchar)(({value}) != 0);"
    return f"{ptr}[{off}] = ({storage})({value});"


def _index_lines(rank: int, shape_names, operands, rest="clg_rest", indent="    "):
    """Decompose the linear index `rest` over `shape_names` (innermost last) and add each
    coordinate times each operand's stride to its offset variable."""
    lines = []
    for d in range(rank - 1, 0, -1):
        lines.append(f"{indent}clg_c = {rest} % {shape_names[d]}; {rest} /= {shape_names[d]};")
        for off, st in operands:
            lines.append(f"{indent}{off} += clg_c * {st}{d};")
    for off, st in operands:
        if rank:
            lines.append(f"{indent}{off} += {rest} * {st}0;")
    return "\n".join(lines)


def _preamble(files) -> str:
    return "\n".join((kernels_dir() / f).read_text() for f in files)


# ---- elementwise ------------------------------------------------------------------------------
@memoize
def elementwise_kernel(device, name, expr, out: DType, inputs, rank, wide, compute, preamble=(),
                       flat=None):
    """inputs: tuple of (storage DType or None for a scalar argument, C type loaded as).
    `compute` is the C type the expression computes in (`clg_t` inside it); `preamble` names
    kernels_cl/ files of helper functions the expression calls.

    `flat`: None for the strided kernel (shape and strides as arguments), or, when the output
    and every operand walk memory in one contiguous run, one flag per input (True: element i
    at offset + i; False: broadcast, always offset). The flat kernel has no index arithmetic
    and unit-stride loads the compiler can vectorize; its arguments are only buffers, offsets,
    scalars and n."""
    idx = "long" if wide else "int"
    params, loads, offsets, operands = [], [], [], []
    args = Args().buffer(out.ctype, "clg_out").scalar(idx, "clg_out_off")
    if flat is None:
        args.scalar(idx, *(f"clg_out_st{d}" for d in range(rank)))
    offsets.append(f"    {idx} clg_o_out = clg_out_off;")
    operands.append(("clg_o_out", "clg_out_st"))
    unit = ["clg_o_out"]
    ctypes = [out.ctype]
    for i, (dt, load_t) in enumerate(inputs):
        params.append(f"x{i}")
        ctypes.append(load_t)
        if dt is None:
            # a half compute type still takes its scalars as float (the host packs no halves)
            args.scalar("float" if load_t == HALF_COMPUTE else load_t, f"clg_s{i}")
            loads.append(f"    const {load_t} clg_v{i} = ({load_t})clg_s{i};")
        else:
            ctypes.append(dt.ctype)
            args.buffer(dt.ctype, f"clg_in{i}", const=True).scalar(idx, f"clg_in{i}_off")
            if flat is None:
                args.scalar(idx, *(f"clg_in{i}_st{d}" for d in range(rank)))
            elif flat[i]:
                unit.append(f"clg_o{i}")
            offsets.append(f"    {idx} clg_o{i} = clg_in{i}_off;")
            operands.append((f"clg_o{i}", f"clg_in{i}_st"))
            loads.append(f"    const {load_t} clg_v{i} = "
                         f"{_load(f'clg_in{i}', dt.ctype, f'clg_o{i}', load_t)};")
    if flat is None:
        args.scalar(idx, "clg_n", *(f"clg_shape{d}" for d in range(rank)))
        index = _index_lines(rank, [f"clg_shape{d}" for d in range(rank)], operands)
    else:
        name += "_flat"
        args.scalar(idx, "clg_n")
        index = "\n".join(f"    {o} += clg_gid;" for o in unit)
    call = f"CLG_OP({', '.join(f'clg_v{i}' for i in range(len(inputs)))})"
    ctypes.append(compute)
    src = render("elementwise", extensions=_extensions(*ctypes), compute=compute,
                 preamble=_preamble(preamble),
                 params=", ".join(params) or "clg_unused", expr=expr,
                 name=name, args=args, idx=idx, offsets="\n".join(offsets),
                 index=index,
                 loads="\n".join(loads),
                 store="    " + _store("clg_out", out.ctype, "clg_o_out",
                                       call if inputs else "CLG_OP(0)", out.name == "bool"))
    return kernel(device, src, name, args)


def launch_elementwise(k, n, out_raw, out_off, out_strides, operands, shape):
    """operands: per input either (raw buffer, offset, strides) or a scalar value."""
    args = [out_raw, out_off, *out_strides]
    for op in operands:
        if isinstance(op, tuple):
            args += [op[0], op[1], *op[2]]
        else:
            args.append(op)
    args.append(n)
    args += list(shape)
    k.launch_1d(n, *args)


# ---- work-groups of row kernels (reductions, softmax) ---------------------------------------
def _group_2d(k, lanes, limit, target, n_out):
    """(lanes, rows) of a lanes x rows work-group (reduce, softmax): `lanes` work-items share
    an output, `rows` outputs per group. Fitted to the shape, except where the device compiles
    per local size (PoCL): there a kernel gets one of two groups, all lanes or one lane, so a
    model builds at most two work-group functions per kernel instead of one per shape (the
    kernels stride over their reduced elements and guard their outputs, so any group works)."""
    if k.one_local:
        full = 1 << (max(1, min(limit, target)).bit_length() - 1)
        lanes = full if lanes > 1 and lanes * 4 >= full else 1
        return lanes, max(1, min(limit // lanes, 64 if lanes == 1 else 1))
    rows = max(1, min(limit // lanes, 64 if lanes == 1 else 1))
    return lanes, min(rows, 1 << (n_out - 1).bit_length())


# ---- matmul ------------------------------------------------------------------------------------
@memoize
def matmul_kernel(device, a_dt: DType, b_dt: DType, c_dt: DType, acc_t, batch_rank, wide, tile):
    """The batched matmul kernel. `tile` is ('local', TS) for square local-memory tiles (GPUs) or
    ('blocked', RM, RN) for a register block per work-item (CPU devices). None if the built
    kernel cannot run the work-group the tile needs."""
    idx = "long" if wide else "int"
    I = _NP[idx]
    batch_args = "".join(f", {idx} clg_bshape{d}" for d in range(batch_rank))
    for m in ("c", "a", "b"):
        batch_args += "".join(f", {idx} {m}_bst{d}" for d in range(batch_rank))
    ops = [("c_off", "c_bst"), ("a_off", "a_bst"), ("b_off", "b_bst")]
    common = dict(extensions=_extensions(a_dt.ctype, b_dt.ctype, c_dt.ctype, acc_t),
                  acc_t=acc_t, c_t=c_dt.ctype, a_t=a_dt.ctype, b_t=b_dt.ctype, idx=idx,
                  batch_args=batch_args,
                  batch_index=_index_lines(batch_rank,
                                           [f"clg_bshape{d}" for d in range(batch_rank)], ops))
    if tile[0] == "local":
        ts = tile[1]
        name = f"matmul_{c_dt.short}_b{batch_rank}_t{ts}"
        src = render("matmul", ts=ts, name=name, **common,
                     load_a=_load("A", a_dt.ctype, "a_off + row * a_rs + (t + lx) * a_cs", acc_t),
                     load_b=_load("B", b_dt.ctype, "b_off + (t + ly) * b_rs + col * b_cs", acc_t),
                     store="        " + _store("C", c_dt.ctype, "c_off + row * c_rs + col * c_cs",
                                              "acc", c_dt.name == "bool"))
        need = ts * ts
    else:
        rm, rn = tile[1], tile[2]
        name = f"matmul_{c_dt.short}_b{batch_rank}_r{rm}x{rn}"
        src = render("matmul_blocked", rm=rm, rn=rn, name=name, **common,
                     load_a=_load("A", a_dt.ctype, "(o)", acc_t),
                     load_b=_load("B", b_dt.ctype, "(o)", acc_t),
                     store="            " + _store(
                         "C", c_dt.ctype, "c_off + (row0 + i) * c_rs + (col0 + j) * c_cs",
                         "acc_ij", c_dt.name == "bool"))
        need = 1
    dtypes = [None, I, I, I] * 3 + [I] * 3 + [I] * (4 * batch_rank)
    k = kernel(device, src, name, dtypes)
    return None if k.max_group < need else k


def matmul_tile(device: Device, acc_bytes: int) -> int:
    """The largest square local-memory tile whose work-group and two tiles fit the device."""
    ts = 16
    while ts > 1 and (ts * ts > device.max_work_group_size or
                      2 * ts * (ts + 1) * acc_bytes > device.local_mem_size):
        ts //= 2
    return ts


# ---- reductions, scans, softmax ------------------------------------------------------------------
def _row_kernel(family, device, name, in_dt: DType, out: DType, acc_t, rank, wide, **extra):
    """A row-wise kernel: output and input with per-row strides and the row shape."""
    idx = "long" if wide else "int"
    args = Args().buffer(out.ctype, "clg_out").scalar(idx, "clg_out_off")
    args.scalar(idx, *(f"clg_out_st{d}" for d in range(rank)), "clg_out_rst")
    args.buffer(in_dt.ctype, "clg_in", const=True).scalar(idx, "clg_in_off")
    args.scalar(idx, *(f"clg_in_st{d}" for d in range(rank)), "clg_in_rst")
    args.scalar(idx, "clg_nrows", *(f"clg_rshape{d}" for d in range(rank)), "clg_n")
    if family == "scan":
        args.scalar("int", "clg_rev")
    else:
        args.local("clg_t", "clg_scratch")
    value = extra.pop("value")
    src = render(family, extensions=_extensions(in_dt.ctype, out.ctype, acc_t), acc_t=acc_t,
                 name=name, args=args, idx=idx,
                 row_index=_index_lines(rank, [f"clg_rshape{d}" for d in range(rank)],
                                        [("clg_o_out", "clg_out_st"), ("clg_o_in", "clg_in_st")]),
                 load=_load("clg_in", in_dt.ctype, "clg_o_in + clg_r * clg_in_rst", acc_t),
                 store="            " + _store("clg_out", out.ctype,
                                               "clg_o_out + clg_r * clg_out_rst", value,
                                               out.name == "bool"),
                 **extra)
    return kernel(device, src, name, args)


@memoize
def softmax_kernel(device, log: bool, in_dt: DType, out: DType, rank, wide):
    """Fused, max-shifted softmax (or log-softmax) along one strided dim of each row."""
    acc_t = "double" if "double" in (in_dt.ctype, out.ctype) else "float"
    name = f"{'log_' if log else ''}softmax_{in_dt.short}_{out.short}_r{rank}"
    expr = "x - m - log(s)" if log else "exp(x - m) / s"
    return _row_kernel("softmax", device, name, in_dt, out, acc_t, rank, wide,
                       out_expr=expr, value="CLG_OUT(clg_x, clg_m, clg_s)")


def launch_softmax(k, acc_bytes, out_raw, out_off, out_st, out_rst, in_raw, in_off, in_st,
                   in_rst, row_shape, n):
    n_rows = int(np.prod(row_shape, dtype=np.int64)) if row_shape else 1
    if n_rows == 0 or n == 0:
        return
    dev = k.device
    limit = max(1, min(k.max_group, dev.max_work_group_size,
                       dev.local_mem_size // max(acc_bytes, 1)))
    # a work-group shares a long row when rows are few; short rows get one work-item each
    lanes = 1
    target = 256 if not dev.is_cpu else 64
    while lanes * 2 <= min(limit, target) and lanes * 8 <= n and \
            n_rows * lanes < 512 * max(dev.compute_units, 1):
        lanes *= 2
    lanes, rows = _group_2d(k, lanes, limit, target, n_rows)
    g1 = (n_rows + rows - 1) // rows * rows
    k((lanes, g1), (lanes, rows), out_raw, out_off, *out_st, out_rst, in_raw, in_off, *in_st,
      in_rst, n_rows, *row_shape, n, local_mem(acc_bytes * lanes * rows))


@memoize
def scan_kernel(device, kind: str, in_dt: DType, out: DType, rank, wide):
    """Inclusive cumulative sum or product along one strided dim, one work-item per row."""
    name = f"cum{kind}_{in_dt.short}_{out.short}_r{rank}"
    return _row_kernel("scan", device, name, in_dt, out, out.compute, rank, wide,
                       combine="a + b" if kind == "sum" else "a * b",
                       init="(clg_t)0" if kind == "sum" else "(clg_t)1", value="clg_acc")


def launch_scan(k, out_raw, out_off, out_st, out_rst, in_raw, in_off, in_st, in_rst, row_shape,
                n, reverse):
    n_rows = int(np.prod(row_shape, dtype=np.int64)) if row_shape else 1
    if n_rows == 0 or n == 0:
        return
    k.launch_1d(n_rows, out_raw, out_off, *out_st, out_rst, in_raw, in_off, *in_st, in_rst,
                n_rows, *row_shape, n, int(bool(reverse)))


# ---- shape, gather/scatter, sort, indexing -------------------------------------------------------
@memoize
def gather_kernel(device, src: DType | None, out: DType, n_index, idx_dts, rank, wide):
    """Gather (src given: load the source at the computed offset) or offsets (src None: store
    the offset as a long). idx_dts: storage dtypes of the index tensors."""
    idx = "long" if wide else "int"
    args = Args().buffer(out.ctype, "clg_out")
    if src is not None:
        args.buffer(src.ctype, "clg_src", const=True)
    args.scalar(idx, "clg_src_off", *(f"clg_base_st{d}" for d in range(rank)))
    offsets = [f"    {idx} clg_o = clg_src_off;"]
    operands = [("clg_o", "clg_base_st")]
    lookups = []
    for i, dt in enumerate(idx_dts):
        args.buffer(dt.ctype, f"clg_ix{i}", const=True).scalar(idx, f"clg_ix{i}_off")
        args.scalar(idx, *(f"clg_ix{i}_st{d}" for d in range(rank)))
        args.scalar("long", f"clg_size{i}").scalar(idx, f"clg_dst{i}").scalar("int", f"clg_dim{i}")
        offsets.append(f"    {idx} clg_q{i} = clg_ix{i}_off;")
        operands.append((f"clg_q{i}", f"clg_ix{i}_st"))
        lookups.append(
            f"    long clg_i{i} = (long)clg_ix{i}[clg_q{i}];\n"
            f"    if (clg_i{i} < 0 && clg_wrap) clg_i{i} += clg_size{i};\n"
            f"    if (clg_i{i} < 0 || clg_i{i} >= clg_size{i}) {{\n"
            f"        CLG_FAULT(clg_err, clg_code, clg_dim{i}, clg_ix{i}[clg_q{i}], clg_size{i});\n"
            f"        clg_i{i} = 0; clg_ok = 0;\n"
            f"    }}\n"
            f"    clg_o += ({idx})clg_i{i} * clg_dst{i};")
    args.scalar(idx, "clg_n", *(f"clg_shape{d}" for d in range(rank)))
    args.buffer("int", "clg_err").scalar("int", "clg_code", "clg_wrap")
    if src is None:
        store = "    clg_out[clg_gid] = clg_ok ? (long)clg_o : -1L;"
    else:
        load = _load("clg_src", src.ctype, "clg_o", out.compute)
        store = "    " + _store("clg_out", out.ctype, "clg_gid",
                                f"clg_ok ? {load} : ({out.compute})0", out.name == "bool")
    name = f"gather_{'off' if src is None else src.short}_k{n_index}_r{rank}"
    src_text = render("gather", extensions=_extensions(out.ctype, src.ctype if src else "") +
                      faults.C_MACRO,
                      name=name, args=args, idx=idx, offsets="\n".join(offsets),
                      index=_index_lines(rank, [f"clg_shape{d}" for d in range(rank)], operands),
                      lookups="\n".join(lookups), store=store)
    return kernel(device, src_text, name, args)


@memoize
def fault_check_kernel(device, dt: DType, check: str):
    """A kernel of fault.cl over a contiguous run of `dt` values: check 'nonzero' or 'range'."""
    layout = {"nonzero": [None, np.int64, np.int64, None, np.int32],
              "range": [None, np.int64, np.int64, np.int64, np.int64, None, np.int32]}[check]
    src = render("fault", extensions="", fault=faults.C_MACRO, ctype=dt.ctype, suffix=dt.short)
    return kernel(device, src, f"clg_check_{check}_{dt.short}", layout)


@memoize
def scatter_kernel(device, dst: DType, mode: str, include_self: bool = True):
    """Fold sorted runs of values into dst: mode 'set' (last wins), 'add', 'multiply', 'amax',
    'amin' (NaN wins); without `include_self` the run starts from its first value instead of
    dst's (scatter_reduce's include_self=False)."""
    compute = dst.compute
    load_dst = _load("clg_dst", dst.ctype, "clg_key", "clg_t")
    load_val = _load("clg_vals", dst.ctype, "clg_perm[clg_j]", "clg_t")
    nan = " || isnan(a)" if dst.is_floating else ""
    combine = {"set": "b", "add": "a + b", "multiply": "a * b",
               "amax": f"(a > b{nan}) ? a : b", "amin": f"(a < b{nan}) ? a : b"}[mode]
    init = "(clg_t)0" if mode == "set" else load_dst
    start = "clg_q" if mode == "set" else "clg_lo"
    if not include_self and mode != "set":
        init = _load("clg_vals", dst.ctype, "clg_perm[clg_lo]", "clg_t")
        start = "clg_lo + 1"
    name = f"scatter_{mode}{'' if include_self else '_noself'}_{dst.short}"
    src = render("scatter", extensions=_extensions(dst.ctype), compute=compute, combine=combine,
                 name=name, dst_t=dst.ctype, val_t=dst.ctype, init=init, start=start,
                 load_val=load_val,
                 store="    " + _store("clg_dst", dst.ctype, "clg_key", "clg_acc",
                                       dst.name == "bool"))
    return kernel(device, src, name, [None, None, None, None, np.int64])


@memoize
def compact_kernels(device):
    """The three kernels of kernels_cl/compact.cl (count, scan, write), built as one program."""
    src = render("compact")
    L = np.int64
    return (kernel(device, src, "compact_count", [None, L, L, None]),
                       kernel(device, src, "compact_scan", [None, L, None]),
                       kernel(device, src, "compact_write", [None, L, L, None, None]))


@memoize
def sort_step_kernel(device, dt: DType):
    """One bitonic compare-exchange step over values of dtype `dt` (not half) and positions."""
    def gt(a, b):
        # NaN is greater than every number (PyTorch's order)
        return f"{a} > {b} || (isnan({a}) && !isnan({b}))" if dt.is_floating else f"{a} > {b}"
    name = f"sort_step_{dt.short}"
    src = render("sort", extensions=_extensions(dt.ctype), val_t=dt.ctype, a_gt=gt("va", "vb"),
                 b_gt=gt("vb", "va"), name=name)
    return kernel(device, src, name, [None, None, np.int64, np.int64, np.int64, np.int64,
                                      np.int32, np.int64])


# ---- nn kernels ----------------------------------------------------------------------------------
@memoize(key=lambda device, family, kname, real, arg_dtypes: (device, family, kname, real))
def nn_kernel(device, family: str, kname: str, real: str, arg_dtypes):
    """A kernel of nn's fixed-layout families (loss, norm, embedding, dropout .cl): the
    template is rendered once per real type; sizes and flags are arguments."""
    suffix = {"float": "f32", "double": "f64"}[real]
    src = render(family, extensions=_extensions(real), real=real, suffix=suffix,
                 philox=_preamble(("philox.cl",)), fault=faults.C_MACRO)
    return kernel(device, src, f"{kname}_{suffix}",
                  [_NP[a] if isinstance(a, str) else a for a in arg_dtypes])


# ---- convolution and pooling ---------------------------------------------------------------------

# argument layouts of the window families' entry points: b a buffer, i an int, f a float,
# t the element type; Kernel checks each against the built kernel's argument count
_WINDOW_ARGS = {
    "pad": "bb" + "i" * 8, "pad_grad": "bb" + "i" * 8,
    "max_pool": "bbb" + "i" * 14, "max_pool_grad": "bbb" + "i" * 14,
    "max_pool_tiled": "bbbiiiiffi", "max_pool_grad_tiled": "bbbiiiiffi",
    "avg_pool": "bb" + "i" * 14, "avg_pool_grad": "bb" + "i" * 14,
    "unpool": "bbbiii", "unpool_grad": "bbbiii",
    "nearest": "bbiiiiffii", "nearest_grad": "bbiiiiffii",
    "bilinear": "bbiiiittii", "bilinear_grad": "bbiiiittii",
}

# the identity of max for the integer types the pool kernels build for
_INT_LOWEST = {"long": "LONG_MIN", "int": "INT_MIN", "short": "SHRT_MIN", "char": "CHAR_MIN",
               "uchar": "((uchar)0)"}


@memoize
def window_kernel(device, family: str, base: str, dt: DType):
    """Kernel `base` of the window families (conv.cl, pool.cl, upsample.cl, nearest.cl) for
    dtype `dt` (float; integer for pool.cl and nearest.cl); each family is one program per
    dtype, its sizes all arrive as arguments."""
    sfx = dt.short
    lowest, isnan = ("(-INFINITY)", "isnan(v)") if dt.is_floating else (_INT_LOWEST[dt.ctype], "0")
    src = render(family, extensions=_extensions(dt.ctype), t=dt.ctype, sfx=sfx, lowest=lowest,
                 isnan=isnan)
    name = f"{base}_{sfx}"
    types = {"b": None, "i": np.int32, "f": np.float32, "t": _NP[dt.ctype]}
    return kernel(device, src, name, [types[c] for c in _WINDOW_ARGS[base]])


# ---- optimizer updates ---------------------------------------------------------------------------
@memoize
def optim_kernel(device, name, dt: DType, states, scalars, update, wide):
    """A fused in-place update over flat arenas: `clg_p` (the parameters, read and written),
    `clg_g` (gradients, read), one buffer per name in `states` (read and written) and scalar
    arguments `scalars` in the compute type. `update` is C statements over p, g, the state names
    and the scalar names."""
    idx = "long" if wide else "int"
    ct = dt.compute
    args = Args().buffer(dt.ctype, "clg_p").buffer(dt.ctype, "clg_g", const=True)
    for s in states:
        args.buffer(dt.ctype, f"clg_s_{s}")
    args.scalar(ct, *scalars).scalar(idx, "clg_off", "clg_n")
    loads = [f"    clg_t p = {_load('clg_p', dt.ctype, 'clg_i', 'clg_t')};",
             f"    const clg_t g = {_load('clg_g', dt.ctype, 'clg_i', 'clg_t')};"]
    loads += [f"    clg_t {s} = {_load(f'clg_s_{s}', dt.ctype, 'clg_i', 'clg_t')};"
              for s in states]
    stores = ["    " + _store("clg_p", dt.ctype, "clg_i", "p", False)]
    stores += ["    " + _store(f"clg_s_{s}", dt.ctype, "clg_i", s, False) for s in states]
    body = "\n".join("    " + line for line in update.strip().splitlines())
    src = render("optim", extensions=_extensions(dt.ctype, ct), compute=ct,
                 helpers=_preamble(("math_float.cl",)),
                 name=name, args=args, idx=idx, loads="\n".join(loads),
                 update=body, stores="\n".join(stores))
    return kernel(device, src, name, args)


# ---- sequence models -----------------------------------------------------------------------------
@memoize(key=lambda device, family, kname, real, arg_dtypes, **subst:
         (device, family, kname, real, tuple(sorted(subst.items()))))
def seq_kernel(device, family: str, kname: str, real: str, arg_dtypes, **subst):
    """A kernel of rnn.cl or attention.cl: rendered once per real type (and per `subst`, e.g.
    attention's private accumulator length); sizes and flags are arguments."""
    suffix = {"float": "f32", "double": "f64"}[real]
    src = render(family, extensions=_extensions(real), real=real, suffix=suffix, **subst)
    return kernel(device, src, f"{kname}_{suffix}",
                  [_NP[a] if isinstance(a, str) else a for a in arg_dtypes])


# ---- mixed precision -----------------------------------------------------------------------------
@memoize
def amp_kernels(device, dt: DType):
    """GradScaler's kernels for gradients of dtype `dt` (kernels_cl/amp.cl): (unscale-and-check,
    scale update)."""
    acc = "double" if dt.ctype == "double" else "float"
    name = f"amp_unscale_{dt.short}"
    src = render("amp", extensions=_extensions(dt.ctype, acc), name=name, g_t=dt.ctype,
                 acc_t=acc, load=_load("clg_g", dt.ctype, "clg_i", acc),
                 store="    " + _store("clg_g", dt.ctype, "clg_i", "clg_v * clg_inv", False))
    L = np.int64
    return (kernel(device, src, name, [None, L, L, None, None]),
            kernel(device, src, "amp_update_scale", [None, None, None, np.float32, np.float32,
                                                     np.int32]))
