"""Collectives over the world or a group from new_group. A tensor travels device -> host -> MPI -> host -> device:
with a CPU-side MPI that is the data path (each leg counts as a transfer in runtime.stats()).
Reductions other than MPI's own (AVG) and every dtype change happen on the device."""
from __future__ import annotations

import numpy as np

from .. import autograd
from .. import dtypes as dt
from ..tensor import Tensor
from ..tensor.storage import from_host
from .process_group import ReduceOp, _get, _group_rank, _skip

__all__ = ["Work", "all_gather", "all_gather_into_tensor", "all_gather_object", "all_reduce",
           "barrier", "broadcast", "broadcast_object_list", "gather", "reduce", "scatter"]

# dtypes MPI reduces as they are; others travel as the wider type named here (cast on device)
_WIRE = {dt.float32: None, dt.float64: None, dt.int8: None, dt.int16: None, dt.int32: None,
         dt.int64: None, dt.uint8: None}


class Work:
    """A started collective (async_op=True): wait() finishes it and writes the result back."""

    def __init__(self, request, finish):
        self._req = request
        self._finish = finish
        self._done = False

    def wait(self, timeout=None) -> bool:
        if not self._done:
            self._req.Wait()
            self._complete()
        return True

    def is_completed(self) -> bool:
        if not self._done and self._req.Test():
            self._complete()
        return self._done

    def _complete(self):
        self._done = True
        self._finish()


def _wire_dtype(d):
    if d in _WIRE:
        return d
    if d.is_floating:
        return dt.float32
    return dt.int32          # bool and the narrow unsigned types reduce exactly as int32


def _send_buffer(t: Tensor) -> np.ndarray:
    """A contiguous host copy of t, in a dtype MPI can reduce (converted on the device)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a clgrad Tensor, got {type(t).__name__}")
    x = t.detach()
    wire = _wire_dtype(x.dtype)
    if wire is not x.dtype:
        x = x.to(wire)
    return np.ascontiguousarray(x.numpy())


def _write(t: Tensor, host: np.ndarray, scale=None) -> None:
    """t[...] = host (uploaded as it is, divided by `scale` and cast on the device)."""
    src = from_host(host, None, t.device)
    if scale is not None:
        src = src / scale
    with autograd.no_grad():
        t.copy_(src.reshape(t.shape))


def _mpi_op(w, op):
    if not isinstance(op, ReduceOp):
        raise ValueError(f"unknown reduce op {op!r}; use clgrad.distributed.ReduceOp")
    return {ReduceOp.SUM: w.MPI.SUM, ReduceOp.AVG: w.MPI.SUM, ReduceOp.PRODUCT: w.MPI.PROD,
            ReduceOp.MIN: w.MPI.MIN, ReduceOp.MAX: w.MPI.MAX}[op]


def _check_avg(t, op):
    if op is ReduceOp.AVG and not t.dtype.is_floating:
        raise ValueError(f"ReduceOp.AVG needs a floating tensor, got {t.dtype}")


def _run(request, finish, async_op):
    work = Work(request, finish)
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Combine `tensor` over the ranks of `group` (default: all) with `op`, in place on each.

    Example:
        >>> t = clgrad.ones(3) * (dist.get_rank() + 1)
        >>> dist.all_reduce(t)            # every rank: [3., 3., 3.] with two ranks
    """
    if _skip(group, "all_reduce"):
        return None
    w = _get(group)
    _check_avg(tensor, op)
    buf = _send_buffer(tensor)
    req = w.comm.Iallreduce(w.MPI.IN_PLACE, buf, op=_mpi_op(w, op))
    scale = w.size if op is ReduceOp.AVG else None
    return _run(req, lambda: _write(tensor, buf, scale), async_op)


def reduce(tensor, dst=None, op=ReduceOp.SUM, group=None, async_op=False, group_dst=None):
    """Combine `tensor` over the ranks into global rank `dst`'s tensor (default 0; or the
    group's rank `group_dst`); the others keep theirs."""
    if _skip(group, "reduce"):
        return None
    w = _get(group)
    dst = _group_rank(w, dst, group_dst, "dst")
    _check_avg(tensor, op)
    buf = _send_buffer(tensor)
    if w.rank == dst:
        req = w.comm.Ireduce(w.MPI.IN_PLACE, buf, op=_mpi_op(w, op), root=dst)
    else:
        req = w.comm.Ireduce(buf, None, op=_mpi_op(w, op), root=dst)
    scale = w.size if op is ReduceOp.AVG else None
    if w.rank != dst:
        return _run(req, lambda: None, async_op)
    return _run(req, lambda: _write(tensor, buf, scale), async_op)


def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    """Every rank's `tensor` becomes global rank `src`'s (default 0; or the group's rank
    `group_src`)."""
    if _skip(group, "broadcast"):
        return None
    w = _get(group)
    src = _group_rank(w, src, group_src, "src")
    buf = _send_buffer(tensor)
    req = w.comm.Ibcast(buf, root=src)
    if w.rank == src:
        return _run(req, lambda: None, async_op)
    return _run(req, lambda: _write(tensor, buf), async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[r] = group rank r's `tensor`, on every rank (all of one shape)."""
    if _skip(group, "all_gather"):
        return None
    w = _get(group)
    if len(tensor_list) != w.size:
        raise ValueError(f"all_gather needs a list of {w.size} tensors (the world size), got "
                         f"{len(tensor_list)}")
    for t in tensor_list:
        if tuple(t.shape) != tuple(tensor.shape):
            raise ValueError(f"all_gather: every tensor must have the input's shape "
                             f"{tuple(tensor.shape)}, got {tuple(t.shape)}")
    buf = _send_buffer(tensor)
    out = np.empty((w.size,) + buf.shape, buf.dtype)
    req = w.comm.Iallgather(buf, out)

    def finish():
        for r, t in enumerate(tensor_list):
            _write(t, out[r])
    return _run(req, finish, async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Ranks' inputs concatenated along dim 0 (or stacked: output shape (world, *input))."""
    if _skip(group, "all_gather_into_tensor"):
        return None
    w = _get(group)
    if output_tensor.numel() != w.size * input_tensor.numel():
        raise ValueError(f"output tensor must hold world_size ({w.size}) times the input's "
                         f"{input_tensor.numel()} elements, got {output_tensor.numel()}")
    buf = _send_buffer(input_tensor)
    out = np.empty((w.size,) + buf.shape, buf.dtype)
    req = w.comm.Iallgather(buf, out)
    return _run(req, lambda: _write(output_tensor, out), async_op)


def gather(tensor, gather_list=None, dst=None, group=None, async_op=False, group_dst=None):
    """gather_list[r] = group rank r's `tensor`, on global rank `dst` only (default 0)."""
    if _skip(group, "gather"):
        return None
    w = _get(group)
    dst = _group_rank(w, dst, group_dst, "dst")
    buf = _send_buffer(tensor)
    if w.rank != dst:
        return _run(w.comm.Igather(buf, None, root=dst), lambda: None, async_op)
    if gather_list is None or len(gather_list) != w.size:
        raise ValueError(f"gather: the destination needs a gather_list of {w.size} tensors")
    out = np.empty((w.size,) + buf.shape, buf.dtype)

    def finish():
        for r, t in enumerate(gather_list):
            _write(t, out[r])
    return _run(w.comm.Igather(buf, out, root=dst), finish, async_op)


def scatter(tensor, scatter_list=None, src=None, group=None, async_op=False, group_src=None):
    """Group rank r's `tensor` becomes global rank `src`'s scatter_list[r] (default src 0)."""
    if _skip(group, "scatter"):
        return None
    w = _get(group)
    src = _group_rank(w, src, group_src, "src")
    recv = _send_buffer(tensor)
    send = None
    if w.rank == src:
        if scatter_list is None or len(scatter_list) != w.size:
            raise ValueError(f"scatter: the source needs a scatter_list of {w.size} tensors")
        send = np.stack([_send_buffer(t).astype(recv.dtype, copy=False) for t in scatter_list])
    req = w.comm.Iscatter(send, recv, root=src)
    return _run(req, lambda: _write(tensor, recv), async_op)


def barrier(group=None, async_op=False, device_ids=None, timeout=None):
    """Wait until every rank (of `group`) has reached this call."""
    if _skip(group, "barrier"):
        return None
    w = _get(group)
    return _run(w.comm.Ibarrier(), lambda: None, async_op)


def broadcast_object_list(object_list, src=None, group=None, device=None, group_src=None):
    """object_list[:] = global rank `src`'s list (any picklable objects; default src 0)."""
    if _skip(group, "broadcast_object_list"):
        return None
    w = _get(group)
    src = _group_rank(w, src, group_src, "src")
    got = w.comm.bcast(list(object_list) if w.rank == src else None, root=src)
    object_list[:] = got


def all_gather_object(object_list, obj, group=None):
    """object_list[r] = group rank r's `obj` (picklable), on every rank."""
    if _skip(group, "all_gather_object"):
        return None
    w = _get(group)
    object_list[:] = w.comm.allgather(obj)
