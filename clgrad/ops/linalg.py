"""Matrix multiplication: the batched kernel launch and its recorded gradient."""
from __future__ import annotations

from .. import autograd
from ..runtime import codegen
from ..view import broadcast_shapes, coalesce
from .base import _check_devices, _need, _wide, copy_into

MATMUL_BLOCK = (8, 8)     # rows x columns of C per work-item on CPU devices (measured best)


def matmul2(a, b):
    """Batched matmul of (..., M, K) @ (..., K, N) with broadcast batch dims; no autograd."""
    T = a._plain
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
