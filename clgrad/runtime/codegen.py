"""Kernel families: turn an op spec into the snippets its kernels_cl/ template needs, then launch.

Python computes every snippet (argument lists, index arithmetic, loads, stores); the templates
only substitute. Built kernels are memoised here by their compact spec, so a launch renders
nothing."""
from __future__ import annotations

import numpy as np

from ..dtypes import DType
from .device import Device
from .errors import UnsupportedDTypeError
from .program import LOCAL, kernel, kernels_dir, local_mem, render

_NP = {"float": np.float32, "double": np.float64, "int": np.int32, "long": np.int64,
       "uchar": np.uint8, "char": np.int8, "short": np.int16, "ulong": np.uint64,
       "uint": np.uint32, "half": np.float32}
_memo: dict = {}
INT32_LIMIT = 2**31 - 1


def check_dtype(device: Device, dt: DType) -> None:
    if dt.ctype == "double" and not device.has_fp64:
        raise UnsupportedDTypeError(
            f"float64 needs the cl_khr_fp64 extension, which {device.name} ({device.spec}) "
            "does not report. Use float32.")


def _extensions(*ctypes) -> str:
    return "#pragma OPENCL EXTENSION cl_khr_fp64 : enable" if "double" in ctypes else ""


def _load(ptr: str, storage: str, off: str, to: str) -> str:
    if storage == "half":
        return f"(({to})vload_half({off}, {ptr}))"
    return f"(({to}){ptr}[{off}])"


def _store(ptr: str, storage: str, off: str, value: str, is_bool: bool) -> str:
    if storage == "half":
        return f"vstore_half_rte((float)({value}), {off}, {ptr});"
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
def elementwise_kernel(device, name, expr, out: DType, inputs, rank, wide, compute, preamble=()):
    """inputs: tuple of (storage DType or None for a scalar argument, C type loaded as).
    `compute` is the C type the expression computes in (`clg_t` inside it); `preamble` names
    kernels_cl/ files of helper functions the expression calls."""
    key = ("ew", device, name, expr, out, inputs, rank, wide, compute, preamble)
    k = _memo.get(key)
    if k is not None:
        return k
    idx = "long" if wide else "int"
    args, dtypes, params, loads, offsets, operands = [], [], [], [], [], []
    args += [f"__global {out.ctype}* clg_out", f"{idx} clg_out_off"]
    args += [f"{idx} clg_out_st{d}" for d in range(rank)]
    dtypes += [None, _NP[idx]] + [_NP[idx]] * rank
    offsets.append(f"    {idx} clg_o_out = clg_out_off;")
    operands.append(("clg_o_out", "clg_out_st"))
    ctypes = [out.ctype]
    for i, (dt, load_t) in enumerate(inputs):
        params.append(f"x{i}")
        ctypes.append(load_t)
        if dt is None:
            args.append(f"{load_t} clg_s{i}")
            dtypes.append(_NP[load_t])
            loads.append(f"    const {load_t} clg_v{i} = clg_s{i};")
        else:
            ctypes.append(dt.ctype)
            args += [f"__global const {dt.ctype}* clg_in{i}", f"{idx} clg_in{i}_off"]
            args += [f"{idx} clg_in{i}_st{d}" for d in range(rank)]
            dtypes += [None, _NP[idx]] + [_NP[idx]] * rank
            offsets.append(f"    {idx} clg_o{i} = clg_in{i}_off;")
            operands.append((f"clg_o{i}", f"clg_in{i}_st"))
            loads.append(f"    const {load_t} clg_v{i} = "
                         f"{_load(f'clg_in{i}', dt.ctype, f'clg_o{i}', load_t)};")
    args.append(f"{idx} clg_n")
    args += [f"{idx} clg_shape{d}" for d in range(rank)]
    dtypes += [_NP[idx]] * (rank + 1)
    call = f"CLG_OP({', '.join(f'clg_v{i}' for i in range(len(inputs)))})"
    ctypes.append(compute)
    src = render("elementwise", extensions=_extensions(*ctypes), compute=compute,
                 preamble=_preamble(preamble),
                 params=", ".join(params) or "clg_unused", expr=expr,
                 name=name, args=", ".join(args), idx=idx, offsets="\n".join(offsets),
                 index=_index_lines(rank, [f"clg_shape{d}" for d in range(rank)], operands),
                 loads="\n".join(loads),
                 store="    " + _store("clg_out", out.ctype, "clg_o_out",
                                       call if inputs else "CLG_OP(0)", out.name == "bool"))
    k = _memo[key] = kernel(device, src, name, dtypes)
    return k


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


# ---- reductions --------------------------------------------------------------------------------
def reduce_kernel(device, name, spec, in_dt: DType, out: DType, out_rank, red_rank, wide):
    """spec: dict of C snippets: acc_t, init, map(x, r), combine(a, b), final(a), load_t, and
    defs (type and helper definitions placed before them)."""
    key = ("red", device, name, tuple(sorted(spec.items())), in_dt, out, out_rank, red_rank, wide)
    k = _memo.get(key)
    if k is not None:
        return k
    idx = "long" if wide else "int"
    I = _NP[idx]
    args = [f"__global {out.ctype}* clg_out", f"{idx} clg_out_off"]
    args += [f"{idx} clg_out_st{d}" for d in range(out_rank)]
    args += [f"__global const {in_dt.ctype}* clg_in", f"{idx} clg_in_off"]
    args += [f"{idx} clg_keep_st{d}" for d in range(out_rank)]
    args += [f"{idx} clg_red_st{d}" for d in range(red_rank)]
    args += [f"{idx} clg_nout"] + [f"{idx} clg_oshape{d}" for d in range(out_rank)]
    args += [f"{idx} clg_nred"] + [f"{idx} clg_rshape{d}" for d in range(red_rank)]
    dtypes = [None, I] + [I] * out_rank + [None, I] + [I] * (out_rank + red_rank)
    dtypes += [I] * (out_rank + 1) + [I] * (red_rank + 1) + [LOCAL]
    load_t = spec["load_t"]
    ctypes = (in_dt.ctype, out.ctype, load_t, spec["acc_t"])
    src = render(
        "reduce", extensions=_extensions(*ctypes), preamble=spec.get("defs", ""),
        acc_t=spec["acc_t"], init=spec["init"], map=spec["map"], combine=spec["combine"],
        final=spec["final"], name=name, args=", ".join(args), idx=idx,
        out_offsets=f"    {idx} clg_o_out = clg_out_off;\n    {idx} clg_o_in = clg_in_off;",
        out_index=_index_lines(out_rank, [f"clg_oshape{d}" for d in range(out_rank)],
                               [("clg_o_out", "clg_out_st"), ("clg_o_in", "clg_keep_st")]),
        red_offsets=f"            {idx} clg_oi = clg_o_in;",
        red_index=_index_lines(red_rank, [f"clg_rshape{d}" for d in range(red_rank)],
                               [("clg_oi", "clg_red_st")], rest="clg_rr", indent="            "),
        load=_load("clg_in", in_dt.ctype, "clg_oi", load_t),
        store="            " + _store("clg_out", out.ctype, "clg_o_out", "CLG_FINAL(clg_acc)",
                                      out.name == "bool"))
    k = _memo[key] = kernel(device, src, name, dtypes)
    return k


def launch_reduce(k, acc_bytes, out_raw, out_off, out_strides, in_raw, in_off, keep_strides,
                  red_strides, out_shape, red_shape):
    n_out = int(np.prod(out_shape, dtype=np.int64)) if out_shape else 1
    n_red = int(np.prod(red_shape, dtype=np.int64)) if red_shape else 1
    if n_out == 0:
        return
    dev = k.device
    limit = max(1, min(k.max_group, dev.max_work_group_size))
    local_cap = max(1, dev.local_mem_size // max(acc_bytes, 1))
    limit = min(limit, local_cap)
    # lanes per output: many when rows are long and outputs few, one when outputs are many
    lanes = 1
    per_group_target = 256 if not dev.is_cpu else 64
    while lanes * 2 <= min(limit, per_group_target) and lanes * 2 <= n_red and \
            n_out * lanes < 4096 * max(dev.compute_units, 1):
        lanes *= 2
    if n_red < 64:
        lanes = 1
    rows = max(1, min(limit // lanes, 64 if lanes == 1 else 1))
    rows = min(rows, 1 << (n_out - 1).bit_length())
    g1 = (n_out + rows - 1) // rows * rows
    k((lanes, g1), (lanes, rows),
      out_raw, out_off, *out_strides, in_raw, in_off, *keep_strides, *red_strides,
      n_out, *out_shape, n_red, *red_shape, local_mem(acc_bytes * lanes * rows))


# ---- matmul ------------------------------------------------------------------------------------
def matmul_kernel(device, a_dt: DType, b_dt: DType, c_dt: DType, acc_t, batch_rank, wide, ts):
    key = ("mm", device, a_dt, b_dt, c_dt, acc_t, batch_rank, wide, ts)
    k = _memo.get(key)
    if k is not None:
        return k
    idx = "long" if wide else "int"
    I = _NP[idx]
    batch_args = "".join(f", {idx} clg_bshape{d}" for d in range(batch_rank))
    for m in ("c", "a", "b"):
        batch_args += "".join(f", {idx} {m}_bst{d}" for d in range(batch_rank))
    ops = [("c_off", "c_bst"), ("a_off", "a_bst"), ("b_off", "b_bst")]
    name = f"matmul_{c_dt.short}_b{batch_rank}_t{ts}"
    src = render("matmul", extensions=_extensions(a_dt.ctype, b_dt.ctype, c_dt.ctype, acc_t),
                 ts=ts, acc_t=acc_t, name=name, c_t=c_dt.ctype, a_t=a_dt.ctype, b_t=b_dt.ctype,
                 idx=idx, batch_args=batch_args,
                 batch_index=_index_lines(batch_rank,
                                          [f"clg_bshape{d}" for d in range(batch_rank)], ops),
                 load_a=_load("A", a_dt.ctype, "a_off + row * a_rs + (t + lx) * a_cs", acc_t),
                 load_b=_load("B", b_dt.ctype, "b_off + (t + ly) * b_rs + col * b_cs", acc_t),
                 store="        " + _store("C", c_dt.ctype, "c_off + row * c_rs + col * c_cs",
                                          "acc", c_dt.name == "bool"))
    dtypes = [None, I, I, I] * 3 + [I] * 3 + [I] * (4 * batch_rank)
    k = kernel(device, src, name, dtypes)
    if k.max_group < ts * ts:
        return None
    _memo[key] = k
    return k


def matmul_tile(device: Device, acc_bytes: int) -> int:
    """The largest square tile whose work-group and two local tiles fit the device."""
    ts = 16
    while ts > 1 and (ts * ts > device.max_work_group_size or
                      2 * ts * (ts + 1) * acc_bytes > device.local_mem_size):
        ts //= 2
    return ts


# ==== reductions, scans, softmax (helper: reduce/linalg) ====
# (records and functions of this group go below this line)
#
#
def _row_args(idx, rank):
    """Arguments of a row-wise kernel: output and input with per-row strides and row shape."""
    args = ["__global clg_out_t* clg_out", f"{idx} clg_out_off"]
    args += [f"{idx} clg_out_st{d}" for d in range(rank)] + [f"{idx} clg_out_rst"]
    args += ["__global const clg_in_t* clg_in", f"{idx} clg_in_off"]
    args += [f"{idx} clg_in_st{d}" for d in range(rank)] + [f"{idx} clg_in_rst"]
    args += [f"{idx} clg_nrows"] + [f"{idx} clg_rshape{d}" for d in range(rank)] + [f"{idx} clg_n"]
    I = _NP[idx]
    dtypes = [None, I] + [I] * (rank + 1) + [None, I] + [I] * (rank + 1) + [I] * (rank + 2)
    return args, dtypes


def _row_kernel(family, device, name, in_dt: DType, out: DType, acc_t, rank, wide, **extra):
    idx = "long" if wide else "int"
    args, dtypes = _row_args(idx, rank)
    args = [a.replace("clg_out_t", out.ctype).replace("clg_in_t", in_dt.ctype) for a in args]
    if family == "scan":
        args.append("int clg_rev")
        dtypes.append(np.int32)
    else:
        dtypes.append(LOCAL)
    value = extra.pop("value")
    src = render(family, extensions=_extensions(in_dt.ctype, out.ctype, acc_t), acc_t=acc_t,
                 name=name, args=", ".join(args), idx=idx,
                 row_index=_index_lines(rank, [f"clg_rshape{d}" for d in range(rank)],
                                        [("clg_o_out", "clg_out_st"), ("clg_o_in", "clg_in_st")]),
                 load=_load("clg_in", in_dt.ctype, "clg_o_in + clg_r * clg_in_rst", acc_t),
                 store="            " + _store("clg_out", out.ctype,
                                               "clg_o_out + clg_r * clg_out_rst", value,
                                               out.name == "bool"),
                 **extra)
    return kernel(device, src, name, dtypes)


def softmax_kernel(device, log: bool, in_dt: DType, out: DType, rank, wide):
    """Fused, max-shifted softmax (or log-softmax) along one strided dim of each row."""
    acc_t = "double" if "double" in (in_dt.ctype, out.ctype) else "float"
    key = ("softmax", device, log, in_dt, out, rank, wide)
    k = _memo.get(key)
    if k is None:
        name = f"{'log_' if log else ''}softmax_{in_dt.short}_{out.short}_r{rank}"
        expr = "x - m - log(s)" if log else "exp(x - m) / s"
        k = _memo[key] = _row_kernel("softmax", device, name, in_dt, out, acc_t, rank, wide,
                                     out_expr=expr, value="CLG_OUT(clg_x, clg_m, clg_s)")
    return k


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
    rows = max(1, min(limit // lanes, 64 if lanes == 1 else 1))
    rows = min(rows, 1 << (n_rows - 1).bit_length())
    g1 = (n_rows + rows - 1) // rows * rows
    k((lanes, g1), (lanes, rows), out_raw, out_off, *out_st, out_rst, in_raw, in_off, *in_st,
      in_rst, n_rows, *row_shape, n, local_mem(acc_bytes * lanes * rows))


def scan_kernel(device, kind: str, in_dt: DType, out: DType, rank, wide):
    """Inclusive cumulative sum or product along one strided dim, one work-item per row."""
    acc_t = out.compute
    key = ("scan", device, kind, in_dt, out, rank, wide)
    k = _memo.get(key)
    if k is None:
        name = f"cum{kind}_{in_dt.short}_{out.short}_r{rank}"
        k = _memo[key] = _row_kernel("scan", device, name, in_dt, out, acc_t, rank, wide,
                                     combine="a + b" if kind == "sum" else "a * b",
                                     init="(clg_t)0" if kind == "sum" else "(clg_t)1",
                                     value="clg_acc")
    return k


def launch_scan(k, out_raw, out_off, out_st, out_rst, in_raw, in_off, in_st, in_rst, row_shape,
                n, reverse):
    n_rows = int(np.prod(row_shape, dtype=np.int64)) if row_shape else 1
    if n_rows == 0 or n == 0:
        return
    k.launch_1d(n_rows, out_raw, out_off, *out_st, out_rst, in_raw, in_off, *in_st, in_rst,
                n_rows, *row_shape, n, int(bool(reverse)))


# ==== shape, gather/scatter, sort, indexing (helper: shape/index) ====
# (records and functions of this group go below this line)
#
#


# ==== nn kernels (helper: nn) ====
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

