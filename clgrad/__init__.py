"""clgrad: PyTorch's API over OpenCL buffers, on any vendor's device."""
from .version import __version__
from . import autograd
from .autograd import enable_grad, inference_mode, no_grad, set_grad_enabled, is_grad_enabled
from .dtypes import (DType as dtype, bool_ as bool, bfloat16, double, float, float16, float32,
                     float64, half, int, int8, int16, int32, int64, long, short, uint8,
                     get_default_dtype, set_default_dtype, result_type, promote as promote_types)
from .runtime import (CLGradError, Device, DeviceNotFoundError, KernelBuildError, NoOpenCLError,
                      OutOfMemoryError, UnsupportedDTypeError, empty_cache, set_default_device)
from .runtime import get_device as device, devices as device_list, memory as _memory
from .runtime import default_device as get_default_device
from .tensor import Size, Tensor
from .tensor.random import (Generator, default_generator, get_rng_state, initial_seed, manual_seed,
                            seed, set_rng_state)
from .tensor.creation import (arange, as_tensor, empty, empty_like, eye, from_numpy, full,
                              full_like, linspace, ones, ones_like, rand, rand_like, randint,
                              randint_like, randn, randn_like, randperm, tensor, zeros, zeros_like)
from .tensor.pointwise import where
from . import runtime
from .jit import jit
from .autograd.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from . import amp


class memory_format:
    """PyTorch's memory-format tags, accepted where PyTorch takes `memory_format=` (empty_like,
    clone, contiguous, to): a clgrad tensor's layout is its strides, so they change nothing."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"clgrad.{self.name}"


preserve_format, contiguous_format, channels_last, channels_last_3d = (
    memory_format(n) for n in ("preserve_format", "contiguous_format", "channels_last",
                               "channels_last_3d"))


def memory_stats(device=None) -> dict:
    """Bytes allocated by live tensors, reserved by the pool, and the peak since reset."""
    return _memory.memory_stats(runtime.get_device(device))


def synchronize(device=None) -> None:
    runtime.get_device(device).synchronize()


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(x) -> int:
    return x.numel()


# Functions that are Tensor methods with the tensor first: plain aliases, so `grep` finds them.
add, sub, subtract, mul, multiply, div, divide, true_divide = (
    Tensor.add, Tensor.sub, Tensor.sub, Tensor.mul, Tensor.mul, Tensor.div, Tensor.div,
    Tensor.div)
neg, negative, maximum, minimum = Tensor.neg, Tensor.neg, Tensor.maximum, Tensor.minimum
eq, ne, lt, le, gt, ge = Tensor.eq, Tensor.ne, Tensor.lt, Tensor.le, Tensor.gt, Tensor.ge
less, less_equal, greater, greater_equal, not_equal = (Tensor.lt, Tensor.le, Tensor.gt,
                                                       Tensor.ge, Tensor.ne)
logical_not, isfinite = Tensor.logical_not, Tensor.isfinite
exp, log, sqrt, sin, cos, tanh, sigmoid, relu, abs, absolute, sign, square = (
    Tensor.exp, Tensor.log, Tensor.sqrt, Tensor.sin, Tensor.cos, Tensor.tanh, Tensor.sigmoid,
    Tensor.relu, Tensor.abs, Tensor.abs, Tensor.sign, Tensor.square)
sum, mean, prod, amax, amin, max, min, argmax, argmin, all, any, nansum = (
    Tensor.sum, Tensor.mean, Tensor.prod, Tensor.amax, Tensor.amin, Tensor.max, Tensor.min,
    Tensor.argmax, Tensor.argmin, Tensor.all, Tensor.any, Tensor.nansum)
matmul, mm, bmm, mv, dot, inner = (Tensor.matmul, Tensor.mm, Tensor.bmm, Tensor.mv, Tensor.dot,
                                   Tensor.inner)
reshape, permute, transpose, swapaxes, t, squeeze, unsqueeze, flatten, unflatten = (
    Tensor.reshape, Tensor.permute, Tensor.transpose, Tensor.transpose, Tensor.t, Tensor.squeeze,
    Tensor.unsqueeze, Tensor.flatten, Tensor.unflatten)
narrow, select, unbind, clone, broadcast_to, detach = (Tensor.narrow, Tensor.select,
                                                       Tensor.unbind, Tensor.clone,
                                                       Tensor.expand, Tensor.detach)


# ---- math
from .tensor.activation import celu, celu_, logit, relu_, selu, selu_
from .tensor.pointwise import (allclose, bitwise_left_shift, bitwise_right_shift, equal, isclose,
                               pow, remainder)
rsub, floor_divide, true_divide, float_power, positive = (
    Tensor.rsub, Tensor.floor_divide, Tensor.true_divide, Tensor.float_power, Tensor.positive)
reciprocal, sgn, fmod, floor, ceil, round, trunc, fix, frac = (
    Tensor.reciprocal, Tensor.sgn, Tensor.fmod, Tensor.floor, Tensor.ceil, Tensor.round,
    Tensor.trunc, Tensor.trunc, Tensor.frac)
clamp, clip, clamp_min, clamp_max, lerp, addcmul, addcdiv = (
    Tensor.clamp, Tensor.clamp, Tensor.clamp_min, Tensor.clamp_max, Tensor.lerp, Tensor.addcmul,
    Tensor.addcdiv)
exp2, expm1, log2, log10, log1p, rsqrt, tan = (Tensor.exp2, Tensor.expm1, Tensor.log2,
                                               Tensor.log10, Tensor.log1p, Tensor.rsqrt,
                                               Tensor.tan)
asin, acos, atan, atan2, arcsin, arccos, arctan, arctan2 = (
    Tensor.asin, Tensor.acos, Tensor.atan, Tensor.atan2, Tensor.asin, Tensor.acos, Tensor.atan,
    Tensor.atan2)
sinh, cosh, asinh, acosh, atanh, arcsinh, arccosh, arctanh = (
    Tensor.sinh, Tensor.cosh, Tensor.asinh, Tensor.acosh, Tensor.atanh, Tensor.asinh,
    Tensor.acosh, Tensor.atanh)
erf, erfc = Tensor.erf, Tensor.erfc
isnan, isinf, isposinf, isneginf = Tensor.isnan, Tensor.isinf, Tensor.isposinf, Tensor.isneginf
logical_and, logical_or, logical_xor = Tensor.logical_and, Tensor.logical_or, Tensor.logical_xor
bitwise_and, bitwise_or, bitwise_xor, bitwise_not = (Tensor.bitwise_and, Tensor.bitwise_or,
                                                     Tensor.bitwise_xor, Tensor.bitwise_not)
abs_, neg_, exp_, log_, sqrt_, sigmoid_, tanh_, floor_, ceil_, round_, trunc_, clamp_, clip_ = (
    Tensor.abs_, Tensor.neg_, Tensor.exp_, Tensor.log_, Tensor.sqrt_, Tensor.sigmoid_,
    Tensor.tanh_, Tensor.floor_, Tensor.ceil_, Tensor.round_, Tensor.trunc_, Tensor.clamp_,
    Tensor.clamp_)


# ---- reductions
from .tensor.reduce import log_softmax, softmax
from . import linalg
var, std, var_mean, std_mean, logsumexp, cumsum, cumprod, count_nonzero, norm, nanmean = (
    Tensor.var, Tensor.std, Tensor.var_mean, Tensor.std_mean, Tensor.logsumexp, Tensor.cumsum,
    Tensor.cumprod, Tensor.count_nonzero, Tensor.norm, Tensor.nanmean)


# ---- linear algebra
from .tensor.linalg import einsum, tensordot
from .tensor.decomp import svd_old as svd
outer, ger, addmm, addmv, addr, baddbmm, addbmm = (Tensor.outer, Tensor.ger, Tensor.addmm,
                                                   Tensor.addmv, Tensor.addr, Tensor.baddbmm,
                                                   Tensor.addbmm)


# ---- shape and indexing
from .tensor.shape import (cat, dstack, hstack, nonzero, one_hot, pad, repeat_interleave, stack,
                           vstack)
concat = concatenate = cat
split, chunk, tensor_split, flip, fliplr, flipud, roll, repeat, tile = (
    Tensor.split, Tensor.chunk, Tensor.tensor_split, Tensor.flip, Tensor.fliplr, Tensor.flipud,
    Tensor.roll, Tensor.repeat, Tensor.tile)
gather, scatter, scatter_add, take, take_along_dim, index_select = (
    Tensor.gather, Tensor.scatter, Tensor.scatter_add, Tensor.take, Tensor.take_along_dim,
    Tensor.index_select)
index_add, index_copy, index_fill, index_put = (Tensor.index_add, Tensor.index_copy,
                                                Tensor.index_fill, Tensor.index_put)
masked_fill, masked_select, masked_scatter, argwhere = (Tensor.masked_fill, Tensor.masked_select,
                                                        Tensor.masked_scatter, Tensor.argwhere)
tril, triu, diag, diagonal, diag_embed = (Tensor.tril, Tensor.triu, Tensor.diag, Tensor.diagonal,
                                          Tensor.diag_embed)
sort, argsort, msort, topk, kthvalue = (Tensor.sort, Tensor.argsort, Tensor.msort, Tensor.topk,
                                        Tensor.kthvalue)
from .tensor.compat import bucketize, searchsorted
logaddexp, logaddexp2, copysign = Tensor.logaddexp, Tensor.logaddexp2, Tensor.copysign
multinomial, scatter_reduce, index_reduce, cummax, cummin, logcumsumexp, movedim, moveaxis = (
    Tensor.multinomial, Tensor.scatter_reduce, Tensor.index_reduce, Tensor.cummax, Tensor.cummin,
    Tensor.logcumsumexp, Tensor.movedim, Tensor.movedim)


# ---- out=: the functional forms PyTorch gives an `out` keyword write into it (tensor/out.py)
from .tensor.out import with_out  # noqa: E402
(add, sub, subtract, mul, multiply, div, divide, true_divide, neg, negative, maximum, minimum, eq,
 ne, lt, le, gt, ge, exp, log, sqrt, sin, cos, tanh, sigmoid, abs, absolute, sign, square, pow,
 remainder, fmod, floor, ceil, round, trunc, frac, reciprocal, rsqrt, clamp, clip, lerp, addcmul,
 addcdiv, exp2, expm1, log2, log10, log1p, atan2, logical_not, logical_and, logical_or,
 logical_xor, sum, mean, prod, amax, amin, nansum, logsumexp, cumsum, cumprod, matmul, mm, bmm,
 mv, dot, outer, addmm, baddbmm, cat, concat, concatenate, stack, gather, index_select, take,
 where, cummax, cummin, logcumsumexp, sort, topk, searchsorted, bucketize, logaddexp,
 logaddexp2, copysign) = (
    with_out(f) for f in (
        add, sub, subtract, mul, multiply, div, divide, true_divide, neg, negative, maximum,
        minimum, eq, ne, lt, le, gt, ge, exp, log, sqrt, sin, cos, tanh, sigmoid, abs, absolute,
        sign, square, pow, remainder, fmod, floor, ceil, round, trunc, frac, reciprocal, rsqrt,
        clamp, clip, lerp, addcmul, addcdiv, exp2, expm1, log2, log10, log1p, atan2, logical_not,
        logical_and, logical_or, logical_xor, sum, mean, prod, amax, amin, nansum, logsumexp,
        cumsum, cumprod, matmul, mm, bmm, mv, dot, outer, addmm, baddbmm, cat, concat,
        concatenate, stack, gather, index_select, take, where, cummax, cummin, logcumsumexp,
        sort, topk, searchsorted, bucketize, logaddexp, logaddexp2, copysign))


# ---- nn, serialization
from .serialization import load, save  # noqa: E402
from . import safetensors  # noqa: E402

from . import nn  # noqa: E402


# ---- conv
from .nn.functional import (adaptive_avg_pool1d, adaptive_max_pool1d, avg_pool1d, conv1d, conv2d,
                            conv_transpose1d, conv_transpose2d, max_pool1d, max_pool2d,
                            pixel_shuffle, pixel_unshuffle)
from .nn.functional import (adaptive_avg_pool3d, adaptive_max_pool3d, avg_pool3d, conv3d,
                            conv_transpose3d, max_pool3d)


# ---- optim, utils
from . import optim, utils

# ---- device plumbing PyTorch scripts test for (accelerator, cuda, backends, onnx)
from . import accelerator, backends, cpu, cuda, onnx  # noqa: E402
from . import vision, text  # noqa: E402
