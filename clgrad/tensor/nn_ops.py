"""The fused nn kernels as Tensor-level calls, for nn/ to be written against: each runs through
`Tensor._apply`, so it is recorded (with PyTorch's grad_fn name) when an input requires grad."""
from __future__ import annotations

from .. import ops
from ..runtime import faults
from ..runtime.errors import DeviceIndexError
from .shape import stack

_NLL_TARGET = faults.site("nll_loss", DeviceIndexError, "Target {value} is out of bounds.")

# the longest value row the fused attention kernel keeps in private memory
MAX_FUSED_DV = ops.MAX_FUSED_DV
# attention's Tensor-level pieces: the additive mask, q k^T * scale + bias, masked softmax
additive_mask = ops.additive_mask
scores = ops.scores
probs = ops.probs
# (H, W, OH, OW, kernel, stride, padding, dilation, adaptive) packed as the pooling kernels read it
pool_geometry = ops.pool_geometry


def dense(t):
    """t itself when contiguous from the start of its buffer (what the fixed-layout nn kernels
    read), else a contiguous copy."""
    return ops.dense(t)


def binary_cross_entropy(input, target):
    """Elementwise -(t log x + (1 - t) log(1 - x)), each log clamped at -100."""
    return input._apply(ops.NN_BCE, input, target)


def cross_entropy_rows(rows, target, weight, ignore_index: int, smoothing: float):
    """(N, C, S) log-softmax + NLL in one kernel: (loss (N*S,), weight of each row)."""
    return rows._apply(ops.cross_entropy_rows, rows, target, weight, ignore_index, smoothing)


def cross_entropy_reduced(rows, target, weight, ignore_index: int, smoothing: float, mean: bool):
    """The same loss reduced to one value ('mean' or 'sum') by one kernel, for at most
    CE_REDUCED_MAX elements."""
    return rows._apply(ops.cross_entropy_reduced, rows, target, weight, ignore_index, smoothing,
                       mean)


CE_REDUCED_MAX = ops.CE_REDUCED_MAX


def check_class_targets(target, n_classes: int, ignore_index: int) -> None:
    """Class indices outside [0, n_classes) other than ignore_index make the next sync raise
    PyTorch's 'Target t is out of bounds.' (a check kernel, no host read)."""
    if target.dtype.is_floating or target.dtype.name == "bool":
        return
    ops.check_range(target.detach(), n_classes, ignore_index, _NLL_TARGET)


def norm_rows(rows, weight, bias, eps: float, per_row=False):
    """Normalise each row of (G, R, D) rows: (y, mean, rstd, var)."""
    return rows._apply(ops.norm_rows, rows, weight, bias, eps, per_row=per_row)


def dropout_apply(x, p: float, group: int, seed: int, offset: int):
    """x with elements dropped by Philox draws (seed, offset), the rest scaled by 1 / (1 - p)."""
    return x._apply(ops.dropout_apply, x, p, group, seed, offset)


def max_pool_planes(planes, geom):
    """Max pooling of (B, H, W) planes: (values, flat argmax per window)."""
    return planes._apply(ops.max_pool_planes, planes, geom)


def avg_pool_planes(planes, geom, include_pad, divisor):
    return planes._apply(ops.avg_pool_planes, planes, geom, include_pad, divisor)


def unpool_planes(planes, indices, OH: int, OW: int):
    return planes._apply(ops.unpool_planes, planes, indices, OH, OW)


def resize_planes(planes, OH: int, OW: int, mode, scales, align_corners=False):
    return planes._apply(ops.resize_planes, planes, OH, OW, mode, scales, align_corners)


def sdpa_fused(q, k, v, bias, scale: float, is_causal: bool):
    """softmax(q k^T * scale + bias) @ v in one streaming kernel."""
    return q._apply(ops.sdpa_fused, q, k, v, bias, scale, is_causal)


def sdpa_packed(qkv, bias, heads: int, batch_major: bool, scale: float, is_causal: bool):
    """Self-attention on a packed (.., .., 3E) projection into a (.., .., E) result of the same
    token order (ops.sdpa_packed)."""
    return qkv._apply(ops.sdpa_packed, qkv, bias, heads, batch_major, scale, is_causal)


def lstm_cell(gi, gh, c):
    """One LSTM step on (B, 4H) pre-activations: (h, c)."""
    return gi._apply(ops.lstm_cell, gi, gh, c)


def gru_cell(gi, gh, h):
    """One GRU step on (B, 3H) pre-activations: h."""
    return gi._apply(ops.gru_cell, gi, gh, h)


def rnn_cell(gi, gh, relu: bool):
    """One Elman step on (B, H) pre-activations: tanh or relu of their sum."""
    return gi._apply(ops.rnn_cell, gi, gh, relu)


def time_steps(x):
    """The T views x[0], ..., x[T-1] of x (T, ...) as one autograd node whose backward stacks
    their gradients: slicing each step separately would give every step a full-size zero
    gradient to accumulate, O(T^2) work over a sequence."""
    if not x.shape[0]:
        return []
    return list(x._apply(_unbind_steps, x))


def _unbind_steps(ctx, x):
    steps = tuple(x.detach()[t] for t in range(x.shape[0]))
    return steps, "UnbindBackward0", lambda c, *gs: (stack(gs, 0),)


# ---- convolution, linear and embedding -----------------------------------------------------------
# the padding modes pad_planes knows, by name
PAD_MODES = tuple(ops.PAD_MODES)


def im2col(x, geom):
    """(B, C, H, W) -> (B, C*KH*KW, OH*OW) columns for geom = (C, H, W, KH, KW, OH, OW, SH, SW,
    PH, PW, DH, DW), zero padding implicit; recorded as Im2ColBackward0 (backward: col2im)."""
    return x._apply(ops.linear_pair, x, lambda t: ops.im2col(t, geom),
                    lambda t: ops.col2im(t, geom), "Im2ColBackward0")


def im2col_k(x, geom):
    """im2col laid out (C*KH*KW, B, OH*OW), so a weight gradient's GEMM folds the batch into
    its k; recorded as Im2ColBackward0."""
    return x._apply(ops.linear_pair, x, lambda t: ops.im2col(t, geom, batch_inner=True),
                    lambda t: ops.col2im(t.permute(1, 0, 2), geom), "Im2ColBackward0")


def col2im(cols, geom):
    """The adjoint of im2col, (B, C*KH*KW, OH*OW) -> (B, C, H, W) summing overlapping taps;
    recorded as Col2ImBackward0 (backward: im2col)."""
    return cols._apply(ops.linear_pair, cols, lambda t: ops.col2im(t, geom),
                       lambda t: ops.im2col(t, geom), "Col2ImBackward0")


def im2col_raw(x, geom, batch_inner=False):
    """im2col (batch_inner: laid out (C*KH*KW, B, OH*OW)) without autograd: a forward's columns
    kept for the weight gradient."""
    return ops.im2col(x, geom, batch_inner=batch_inner)


def matmul_bias(a, b, bias=None):
    """a @ b (batched, broadcast) with `bias` added in the GEMM's epilogue; not recorded."""
    return ops.matmul2(a, b, bias=bias)


def add_into(y, b):
    """y += b (b broadcast to y) in place; not recorded."""
    return ops.ew(ops.ADD, y, b, out=y)


def addmm(bias, a, b):
    """bias + a @ b for 2-D a, b, the bias added in the GEMM's epilogue (AddmmBackward0)."""
    return a._apply(ops.addmm_nd, bias, a, b)


def embedding_lookup(weight, idx, padding_idx: int):
    """Rows of weight (V, D) at int64 indices idx (n,) -> (n, D) (EmbeddingBackward0); the row
    padding_idx (-1: none) gets no gradient."""
    return weight._apply(ops.embedding_lookup, weight, idx, padding_idx)


def pad_planes(planes, pads, mode):
    """(B, H, W) planes padded by pads = (left, right, top, bottom) with `mode` (PAD_MODES)."""
    return planes._apply(ops.pad_planes, planes, pads, mode)
