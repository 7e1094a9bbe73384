"""Matrix multiplication: the batched kernel launch and its gradient."""
from __future__ import annotations

from ..dtypes import LOW_FLOATS, float32
from ..runtime import gemm, lazy
from ..view import View, broadcast_shapes, coalesce
from .base import _check_devices, _need, _wide, cast, copy_into, ew
from .elementwise import ADD


def matmul2(a, b, bias=None, out=None):
    """Batched matmul of (..., M, K) @ (..., K, N) with broadcast batch dims; no autograd.
    `bias` (broadcastable to (M, N), or to the whole result) is added in the GEMM's epilogue
    where the kernel family has one and the bias does not vary over the batch, else by one
    elementwise add into the result. `out`: an array of the result's shape, any strides that
    do not overlap, to write into (launched at once) instead of a new contiguous result."""
    T = a._plain
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{a.dtype.name} != {b.dtype.name}")
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, a.shape[-2:]))} and "
            f"{'x'.join(map(str, b.shape[-2:]))})")
    device = _check_devices([a, b])
    if a.dtype in LOW_FLOATS and gemm.uses_cpu_kernels(device, float32):
        # the vector GEMM kernels are float32/float64: 16-bit operands go through float32 copies
        # (float accumulation, one rounding at the end; 3-6x the scalar 16-bit kernel on CPUs)
        up = [cast(t, float32) if t is not None and t.dtype is a.dtype else t for t in (a, b, bias)]
        r = cast(matmul2(*up), a.dtype)
        return r if out is None else copy_into(out, r)
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    family = gemm.family_for(device, a.dtype)
    if family == "cpu" and M * N > 0 and gemm.dot_form_copies_b(
            device, a.dtype, gemm.Operand(None, 0, *a._view.strides[-2:]),
            gemm.Operand(None, 0, *b._view.strides[-2:]), M, N, K):
        b = copy_into(T._empty(b.shape, b.dtype, device), b)
    if out is None and lazy.enabled and family == "cpu" and K > 0 and M * N > 0 and (
            bias is None or _bias_operand(bias, batch, M, N, device, a.dtype) is not None):
        return _pending_product(T, a, b, bias, batch, M, K, N, device)
    if out is not None and (tuple(out.shape) != batch + (M, N) or out.dtype is not a.dtype):
        raise RuntimeError(f"matmul out= must be {a.dtype.name} of shape {list(batch + (M, N))},"
                           f" got {out.dtype.name} of shape {list(out.shape)}")
    c = T._empty(batch + (M, N), a.dtype, device) if out is None else out
    if c.numel() == 0:
        return c
    if K == 0:
        copy_into(c, 0)
        return c if bias is None else ew(ADD, c, bias, out=c)
    av = a._view.expand(batch + (M, K))
    bv = b._view.expand(batch + (K, N))
    cv = c._view
    bshape, (c_bst, a_bst, b_bst) = coalesce(batch, cv.strides[:-2], av.strides[:-2],
                                              bv.strides[:-2]) if batch else ((1,), ((0,),) * 3)
    dt = a.dtype
    acc_t = dt.compute if dt.is_floating else "long"
    bias_op, wide = None, _wide([av, bv, cv])
    if bias is not None:
        bias_op = _bias_operand(bias, batch, M, N, device, dt)
        if bias_op is not None and gemm.family_for(device, dt) == "cpu":
            wide = wide or _wide([bias._view])
        else:
            bias_op = None
    gemm.matmul(device, dt, acc_t, gemm.Operand(c._buf.raw, cv.offset, *cv.strides[-2:], c_bst),
                gemm.Operand(a._buf.raw, av.offset, *av.strides[-2:], a_bst),
                gemm.Operand(b._buf.raw, bv.offset, *bv.strides[-2:], b_bst),
                M, N, K, bshape, wide, bias=bias_op)
    if bias is not None and bias_op is None:
        ew(ADD, c, bias, out=c)
    return c


class _GemmPlan:
    """A product whose launch waits (fusion, docs/architecture.md): clgrad/array.py launches
    it when its result is needed, with a ReLU in its epilogue when the only use of the product
    was a ReLU. The fields a pending node reads, and `produce(out_raw, relu)`."""

    __slots__ = ("node", "nbytes", "call")

    def takes(self, name: str, other) -> bool:
        """Whether the epilogue can compute the elementwise op `name` of the product (and
        `other`, a launched (buffer, view, dtype), as its second input)."""
        if name == "relu":
            return True
        bias, bshape = self.call[-1], self.call[-3]
        return (name == "threshold_backward" and bias is None and all(s == 1 for s in bshape)
                and other[2] is self.node[2])

    def dense(self) -> bool:
        """Whether the product fills its buffer from the start in row-major order."""
        cv = self.call[3]
        return cv.offset == 0 and cv.is_contiguous()

    def produce(self, out_raw, args, name=None, other=None, out_off=0):
        """Launch into out_raw (from element `out_off` on), with the epilogue computing `name`
        ('relu', or 'threshold_backward' with the ReLU output `other` as its mask) when
        given."""
        device, dt, acc_t, cv, c_bst, a, b, M, N, K, bshape, wide, bias = self.call
        mask = None
        if name == "threshold_backward":
            mv = other[1].expand(cv.shape)
            mask = gemm.Operand(other[0].raw, mv.offset, *mv.strides[-2:])
            wide = wide or _wide([mv])
        gemm.matmul(device, dt, acc_t, gemm.Operand(out_raw, cv.offset + out_off, *cv.strides[-2:],
                                                 c_bst),
                    a, b, M, N, K, bshape, wide,
                    bias=bias, relu=name == "relu", mask=mask)


def _pending_product(T, a, b, bias, batch, M, K, N, device):
    """matmul2 on the CPU kernels with fusion on: the product as a pending result."""
    dt = a.dtype
    av = a._view.expand(batch + (M, K))
    bv = b._view.expand(batch + (K, N))
    cv = View.contiguous(batch + (M, N))
    bshape, (c_bst, a_bst, b_bst) = coalesce(batch, cv.strides[:-2], av.strides[:-2],
                                              bv.strides[:-2]) if batch else ((1,), ((0,),) * 3)
    wide = _wide([av, bv, cv])
    bias_op = None
    if bias is not None:
        bias_op = _bias_operand(bias, batch, M, N, device, dt)
        wide = wide or _wide([bias._view])
    plan = _GemmPlan()
    plan.node = (device, cv, dt, dt.compute)
    plan.nbytes = cv.numel * dt.itemsize
    plan.call = (device, dt, dt.compute, cv, c_bst,
                 gemm.Operand(a._buf.raw, av.offset, *av.strides[-2:], a_bst),
                 gemm.Operand(b._buf.raw, bv.offset, *bv.strides[-2:], b_bst),
                 M, N, K, bshape, wide, bias_op)
    # the node holds its operands' buffers (they stay allocated until it launches)
    return T._pending(plan, (a, b) if bias is None else (a, b, bias), producer=True)


def _bias_operand(bias, batch, M, N, device, dt):
    """The bias as a GEMM epilogue operand (strides over C's rows and columns), or None when it
    cannot be one (another dtype or device, or different values across the batch)."""
    if bias.device is not device or bias.dtype is not dt:
        return None
    try:
        bv = bias._view.expand(batch + (M, N))
    except (RuntimeError, ValueError):
        raise RuntimeError(f"the bias of shape {list(bias.shape)} does not broadcast to the "
                           f"product's shape {list(batch + (M, N))}") from None
    if any(s != 0 for s in bv.strides[:-2]):
        return None
    return gemm.Operand(bias._buf.raw, bv.offset, *bv.strides[-2:])


def _transposed(t, g) -> bool:
    """t is a transposed contiguous matrix (a weight seen through .t(), as F.linear does) of
    g's batch shape: its last two dims swapped give a contiguous view (read off the strides)."""
    v = t._view
    nd = len(v.shape)
    if nd != g.ndim or nd < 2 or v.shape[-2] < 2 or v.shape[-1] < 2 or v.strides[-2] != 1:
        return False
    return v.permute((*range(nd - 2), nd - 1, nd - 2)).is_contiguous()


def _grad_a(a, b, g):
    # PyTorch's rule (mm_mat1_backward): the gradient comes out in its input's layout, so a
    # transposed input's gradient is computed transposed and reaches its base contiguous
    return (b @ g.mT).mT if _transposed(a, g) else g @ b.mT


def _grad_b(a, b, g):
    # mm_mat2_backward: F.linear's weight.t() gets (g^T a)^T, whose .t() is the weight's own
    # contiguous layout; a^T g would reach the .grad slot as a strided copy (~15x the time)
    return (g.mT @ a).mT if _transposed(b, g) else a.mT @ g


def _matmul_backward(ctx, g):
    a, b = ctx.saved_tensors
    return (_grad_a(a, b, g) if _need(ctx, 0) else None,
            _grad_b(a, b, g) if _need(ctx, 1) else None)


_ones: dict = {}


def _ones_row(g, M: int):
    """A (1, M) row of ones on g's device and dtype, from a cached buffer (filled once)."""
    key = (g.device, g.dtype)
    ones = _ones.get(key)
    if ones is None or ones.shape[0] < M:
        n = 1 << max(M - 1, 1).bit_length()
        ones = _ones[key] = copy_into(g._plain._empty((n,), g.dtype, g.device), 1)
    return ones[:M].unsqueeze(0)


def _addmm_backward(ctx, g):
    a, b = ctx.saved_tensors
    gb = None
    if _need(ctx, 0):
        # the bias's gradient is g; autograd sums it back over the dims the bias was broadcast
        # in. A bias per column of a 2-D product is summed here instead, as one GEMM row
        # (ones @ g): on the CPU GEMM kernels neighbouring work-items read neighbouring
        # columns, 3-5x the column reduction on the bench Transformer's (2048, 128..512)
        gb = g
        M, N = g.shape
        if (ctx.bias_shape in ((N,), (1, N)) and M > 1
                and gemm.family_for(g.device, g.dtype) == "cpu"):
            gb = (_ones_row(g, M) @ g).reshape(ctx.bias_shape)
    return (gb, _grad_a(a, b, g) if _need(ctx, 1) else None,
            _grad_b(a, b, g) if _need(ctx, 2) else None)


def addmm_nd(ctx, bias, a, b):
    """bias + a @ b for 2-D a, b (bias broadcast to the product), the bias added in the GEMM's
    epilogue: F.linear's forward for Tensor._apply, PyTorch's AddmmBackward0."""
    if a.dtype is not b.dtype or bias.dtype is not a.dtype:
        raise RuntimeError(f"expected m1, m2 and the bias to have the same dtype, but got: "
                           f"{a.dtype.name}, {b.dtype.name} and {bias.dtype.name}")
    c = matmul2(a, b, bias=bias)
    if ctx is not None:
        ctx.save_for_backward(a, b)
        ctx.bias_shape = tuple(bias.shape)
    return c, "AddmmBackward0", _addmm_backward


def matmul_nd(ctx, a, b):
    """The >=2-D matmul primitive, a forward for Tensor._apply."""
    c = matmul2(a, b)
    if ctx is not None:
        ctx.save_for_backward(a, b)
    return c, "MmBackward0" if a.ndim == 2 and b.ndim == 2 else "BmmBackward0", _matmul_backward
