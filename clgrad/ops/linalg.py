"""Matrix multiplication: the batched kernel launch and its gradient."""
from __future__ import annotations

from ..runtime import gemm
from ..view import broadcast_shapes, coalesce
from .base import _check_devices, _need, _wide, copy_into

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
    gemm.matmul(device, dt, acc_t, gemm.Operand(c._buf.raw, cv.offset, *cv.strides[-2:], c_bst),
                gemm.Operand(a._buf.raw, av.offset, *av.strides[-2:], a_bst),
                gemm.Operand(b._buf.raw, bv.offset, *bv.strides[-2:], b_bst),
                M, N, K, bshape, _wide([av, bv, cv]))
    return c


def _matmul_backward(ctx, g):
    a, b = ctx.saved_tensors
    return (g @ b.mT if _need(ctx, 0) else None, a.mT @ g if _need(ctx, 1) else None)


def matmul_nd(ctx, a, b):
    """The >=2-D matmul primitive, a forward for Tensor._apply."""
    c = matmul2(a, b)
    if ctx is not None:
        ctx.save_for_backward(a, b)
    return c, "MmBackward0" if a.ndim == 2 and b.ndim == 2 else "BmmBackward0", _matmul_backward
