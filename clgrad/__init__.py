"""clgrad: PyTorch's API over OpenCL buffers, on any vendor's device."""
from .version import __version__
from . import autograd
from .autograd import enable_grad, inference_mode, no_grad, set_grad_enabled, is_grad_enabled
from .dtypes import (DType as dtype, bool_ as bool, double, float, float16, float32, float64, half,
                    int, int8, int16, int32, int64, long, short, uint8, get_default_dtype,
                    set_default_dtype, result_type, promote as promote_types)
from .runtime import (CLGradError, Device, DeviceNotFoundError, KernelBuildError, NoOpenCLError,
                      OutOfMemoryError, UnsupportedDTypeError, empty_cache, set_default_device)
from .runtime import get_device as device, devices as device_list
from .runtime import default_device as get_default_device
from .tensor import Size, Tensor
from .random import (Generator, default_generator, get_rng_state, initial_seed, manual_seed,
                     seed, set_rng_state)
from .creation import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like,
                       linspace, ones, ones_like, rand, rand_like, randint, randint_like, randn,
                       randn_like, randperm, tensor, zeros, zeros_like)
from ._math import where
from . import runtime


def memory_stats(device=None) -> dict:
    """Bytes allocated by live tensors, reserved by the pool, and the peak since reset."""
    from .runtime import memory
    return memory.memory_stats(runtime.get_device(device))


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


# ==== math (helper: math) ====
# (records and functions of this group go below this line)
#
#


# ==== reductions (helper: reduce/linalg) ====
# (records and functions of this group go below this line)
#
#
from ._reduce import log_softmax, softmax
from . import linalg
var, std, var_mean, std_mean, logsumexp, cumsum, cumprod, count_nonzero, norm, nanmean = (
    Tensor.var, Tensor.std, Tensor.var_mean, Tensor.std_mean, Tensor.logsumexp, Tensor.cumsum,
    Tensor.cumprod, Tensor.count_nonzero, Tensor.norm, Tensor.nanmean)


# ==== linear algebra (helper: reduce/linalg) ====
# (records and functions of this group go below this line)
#
#
from ._linalg import einsum, tensordot
outer, ger, addmm, addmv, addr, baddbmm, addbmm = (Tensor.outer, Tensor.ger, Tensor.addmm,
                                                   Tensor.addmv, Tensor.addr, Tensor.baddbmm,
                                                   Tensor.addbmm)


# ==== shape and indexing (helper: shape/index) ====
# (records and functions of this group go below this line)
#
#


# ==== nn, serialization (helper: nn) ====
# (records and functions of this group go below this line)
#
#


# ==== conv (helper: conv) ====
# (records and functions of this group go below this line)
#
#


# ==== optim, utils (helper: optim) ====
# (records and functions of this group go below this line)
#
#
