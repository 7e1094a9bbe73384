"""Index kernels: masked select, gather through index tensors, sort, nonzero, scatter."""
from __future__ import annotations

import numpy as np

from ..array import Array
from ..dtypes import LOW_FLOATS, bool_, float32, int32, int64
from ..runtime import codegen, faults
from ..view import View, coalesce
from .base import _check_devices, _wide, cast, copy_into, ew, launch_ew, launch_ew_raw
from .elementwise import WHERE

def masked_where(ctx, cond, a, b, name="MaskedFillBackward0"):
    """cond ? a : b (cond bool, a tensor or scalar, b tensor) in b's dtype, a forward for
    Tensor._apply. Only the condition is saved, so the in-place variants leave nothing stale
    behind for the backward."""
    out = ew(WHERE, cond, a, b)
    if out.dtype is not b.dtype:
        out = cast(out, b.dtype)
    if ctx is not None:
        ctx.save_for_backward(cond)
    return out, name, _masked_backward


def _masked_backward(ctx, g):
    (m,) = ctx.saved_tensors
    need = ctx.needs_input_grad
    return (None, g * m if need[1] else None, g * m.logical_not() if need[2] else None)


def _index_launch(src, out, offset, base_strides, index, check, wrap):
    """Shared by index_gather/index_offsets. index: list of (tensor expanded to out's shape,
    size of the indexed dim, its stride, the dim for messages). `check` is a fault site code
    (runtime/faults.py) or None for trusted indices (a bad one is still clamped, never read).
    `wrap`: negative indices count from the end (x[i], take) or are out of range (gather,
    index_select, as in PyTorch)."""
    _check_devices([src if src is not None else out, *(t for t, *_ in index)])
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
    for i, (t, size, stride, dim) in enumerate(index):
        args += [t._buf.raw, iv[i].offset, *cst[2 + i], size, stride, int(dim)]
    flag = faults.flag(device) if check else faults.flag_buffer(device)
    args += [n, *cshape, flag, check or 0, int(wrap)]
    k.launch_1d(n, *args)
    out._buf.version += 1
    return out


def _contiguous_run(x):
    return x if x._view.is_contiguous() else copy_into(x._plain._empty(x.shape, x.dtype,
                                                                       x.device), x)


def check_nonzero(x, code: int) -> None:
    """Report a zero element of integer tensor `x` (any view) to the device's error flag at
    fault site `code`: one launch, no host read (the next sync raises)."""
    n = x.numel()
    if n == 0:
        return
    c = _contiguous_run(x)
    k = codegen.fault_check_kernel(x.device, x.dtype, "nonzero")
    k.launch_1d(n, c._buf.raw, c._view.offset, n, faults.flag(x.device), code)


def check_range(x, limit: int, ignore: int, code: int) -> None:
    """Report an element of integer tensor `x` outside [0, limit) other than `ignore`."""
    n = x.numel()
    if n == 0:
        return
    c = _contiguous_run(x)
    k = codegen.fault_check_kernel(x.device, x.dtype, "range")
    k.launch_1d(n, c._buf.raw, c._view.offset, n, int(limit), int(ignore),
                faults.flag(x.device), code)


def index_gather(src, view: View, index, check=None, wrap=True):
    """out[p] = src[view.offset + p . view.strides + sum_k index_k[p] * stride_k] over
    view.shape (the direct dims in `view`, stride 0 where a dim only comes from an index).
    `check`: the fault site an out-of-range index reports to (raised at the next sync)."""
    T = src._plain
    out = T._empty(view.shape, src.dtype, src.device)
    return _index_launch(src, out, view.offset, view.strides, index, check, wrap)


def index_offsets(view: View, index, device, check=None, wrap=True):
    """The element offsets index_gather would read, as an int64 tensor of view.shape."""
    T = index[0][0]._plain       # index: (tensor, ...) entries; outputs match their type
    out = T._empty(view.shape, int64, device)
    return _index_launch(None, out, view.offset, view.strides, index, check, wrap)


def sort_rows(x, descending: bool):
    """Stable sort along the last dim of `x` (any view): (values, positions) as new tensors of
    shape x.shape[:-1] + (P,) where P is the row length rounded up to a power of two; the first
    x.shape[-1] columns hold the result. NaN sorts as the greatest value."""
    T = x._plain
    L = x.shape[-1] if x.ndim else 1
    P = 1 << max(0, (L - 1).bit_length())
    lead = tuple(x.shape[:-1])
    work_dt = float32 if x.dtype in LOW_FLOATS else x.dtype
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
    T = mask._plain
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


def scatter_sorted(dst, offsets, values, mode: str, include_self: bool = True):
    """dst's buffer at each element offset (int64, any shape) combined with the value at the
    same position (`values`: dst's dtype, same shape) by `mode` ('set': the last duplicate
    wins; 'add'; 'multiply'; 'amax'; 'amin'), starting from dst's value unless not
    `include_self`; duplicates fold in order, deterministically."""
    n = offsets.numel()
    if n == 0:
        return dst
    # both come back as 1-D buffers whose first n elements are the sorted run
    keys, perm = sort_rows(offsets.reshape(n), False)
    vals = values if values.is_contiguous() and values._view.offset == 0 else \
        values.detach().clone()
    k = codegen.scatter_kernel(dst.device, dst.dtype, mode, bool(include_self))
    k.launch_1d(n, dst._buf.raw, keys._buf.raw, perm._buf.raw, vals._buf.raw, n)
    dst._buf.version += 1
    return dst
