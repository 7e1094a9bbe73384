"""Floor 3, the op table: one record per op over device buffers, grouped by kernel family.

base (the Op record, the elementwise launcher, casts, fills, random), elementwise, reduce,
linalg (matmul), movement (views), index, nn_fused (activations, losses, norms, dropout,
embedding, optimizer updates), window (conv, pool, pad, resize), attention (the streaming
scaled-dot-product kernel), rnn (fused LSTM, GRU and Elman cell steps), compat (searchsorted,
multinomial draws, cummax/cummin, logcumsumexp), svd (one-sided Jacobi SVD and its gradient;
imported as clgrad.ops.svd by tensor/decomp.py)."""
from .base import (Op, _check_devices, launch_ew, ew, cast, copy_into, launch_ew_raw,
                   random_fill, torch_name)
from .elementwise import (NEG, EXP, LOG, SQRT, SIN, COS, TANH, SIGMOID, RELU, ABS, SIGN, COPY, ADD,
                          SUB, MUL, DIV, MAXIMUM, MINIMUM, EQ, NE, LT, LE, GT, GE, WHERE, ISFINITE,
                          LOGICAL_NOT, ADD_ALPHA, SUB_ALPHA, DIV_TRUNC, DIV_FLOOR, REMAINDER, FMOD,
                          POW, RECIPROCAL, FLOOR, CEIL, ROUND, ROUND_DEC, TRUNC, FRAC, CLAMP,
                          CLAMP_MIN, CLAMP_MAX, LERP, ADDCMUL, ADDCDIV, EXP2, EXPM1, LOG2, LOG10,
                          LOG1P, RSQRT, TAN, ASIN, ACOS, ATAN, SINH, COSH, ASINH, ACOSH, ATANH,
                          ERF, ERFC, ATAN2, LOGIT, LOGIT_EPS, SOFTPLUS, HARDTANH, THRESHOLD,
                          HARDSHRINK, SOFTSHRINK, LEAKY_RELU, ELU, RELU_BWD, SIGMOID_BWD, TANH_BWD,
                          GELU_BWD, SILU_BWD, GELU, GELU_TANH, SILU, MISH, HARDSIGMOID, HARDSWISH,
                          SOFTSIGN, LOGSIGMOID, ISNAN, ISINF, ISPOSINF, ISNEGINF, ISCLOSE,
                          LOGICAL_AND, LOGICAL_OR, LOGICAL_XOR, BITWISE_AND, BITWISE_OR,
                          BITWISE_XOR, BITWISE_NOT, LSHIFT, RSHIFT)
from .reduce import (reduce_spec, reduce, softmax_fwd, softmax, scan, cumsum, cumprod, ABSPOW,
                     pnorm)
from .linalg import addmm_nd, matmul2, matmul_nd
from .movement import (view_op, scatter_view)
from .index import (masked_where, index_gather, index_offsets, sort_rows, nonzero_positions,
                    scatter_sorted, check_nonzero, check_range)
from .nn_fused import (_fused_guard, NN_BCE, dense, cross_entropy_rows, norm_rows, dropout_apply,
                       embedding_lookup, optim_update, cross_entropy_reduced, CE_REDUCED_MAX)
from .window import (linear_pair, im2col, col2im, PAD_MODES, pad_planes, pool_geometry,
                     max_pool_planes, max_pool_scatter, gather_planes, unpool_planes,
                     avg_pool_planes, resize_planes)
from .attention import (MAX_FUSED_DV, additive_mask, causal_bias, scores, probs, sdpa_fused,
                        sdpa_packed)
from .rnn import (lstm_cell, gru_cell, rnn_cell)
from .amp import unscale_check, update_scale
from .compat import (COPYSIGN, LOGADDEXP, LOGADDEXP2, cum_extreme, logcumsumexp,
                     multinomial_draw, searchsorted_rows)

from . import compat as _compat, elementwise as _elementwise, nn_fused as _nn_fused

# the op table: every Op record by its name (tools/render_kernel.py and tests/test_op_table.py)
TABLE = {r.name: r for r in _elementwise.RECORDS + _nn_fused.RECORDS + _compat.RECORDS}
