"""Autocast's op lists: which table ops run in the low dtype and which in float32, and the
dtype each input is cast to (tensor/apply.py casts them, on the tape)."""
from __future__ import annotations

from .. import ops
from ..dtypes import LOW_FLOATS, float32, float64

LOW, FP32 = "low", "fp32"

# PyTorch's lists (its CUDA lists, since an OpenCL device is an accelerator): the products in
# the low dtype; softmax, norms, losses and the reductions and pointwise functions that lose
# range or precision in 16 bits in float32. Everything else runs in its inputs' dtype, and
# elementwise promotion already gives mixed inputs the widest one. Floor-6 entries made of
# several ops (F.linear, F.conv2d, the losses, the norms) carry the same marks as decorators.
POLICY = {
    ops.matmul_nd: LOW, ops.addmm_nd: LOW, ops.sdpa_fused: LOW,
    ops.softmax: FP32, ops.cross_entropy_rows: FP32, ops.cross_entropy_reduced: FP32,
    ops.norm_rows: FP32, ops.NN_BCE: FP32,
    ops.EXP: FP32, ops.LOG: FP32, ops.POW: FP32, ops.cumsum: FP32, ops.cumprod: FP32,
    ops.pnorm: FP32,
    # the fused recurrent cells are float32/float64 kernels: their gates come in as float32
    ops.lstm_cell: FP32, ops.gru_cell: FP32, ops.rnn_cell: FP32,
}
_WIDE = (float32, float64)


def wanted(t, mode, kind):
    """The dtype tensor `t` is cast to under `kind` in the region `mode` (low dtype, device
    filter), or None to leave it."""
    dt = t.dtype
    if not dt.is_floating:
        return None
    flt = mode[1]
    if flt is not None and t.device.is_cpu != flt:
        return None
    if kind == LOW:
        return mode[0] if dt is not mode[0] and (dt in _WIDE or dt in LOW_FLOATS) else None
    return float32 if dt in LOW_FLOATS else None
