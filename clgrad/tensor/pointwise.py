"""Elementwise Tensor methods and functions: arithmetic, math, activations, comparisons and
bitwise logic, each one op-table record (ops.py) launched by ops.ew."""
from __future__ import annotations

from .. import ops
from ..dtypes import float64, get_default_dtype, result_type
from ..runtime import faults
from ..runtime.errors import DeviceZeroDivisionError
from .apply import apply


def _is_t(x) -> bool:
    return hasattr(x, "_view")


def _floating(*args) -> bool:
    return result_type(*args).is_floating


def _int_only(name, *args):
    for a in args:
        if _is_t(a) and a.dtype.is_floating:
            raise RuntimeError(f'"{name}_cpu" not implemented for \'{ops.torch_name(a.dtype)}\'')
        if not _is_t(a) and isinstance(a, float):
            raise TypeError(f"{name}(): argument 'other' must be an integer or bool, not float")


def _check_alpha(x, other, alpha):
    if isinstance(alpha, float) and not _floating(x, other):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                           "point number.")


_ROUNDING = (None, "trunc", "floor")


def _zero_divisor(name, a, b, out):
    """Integer division and remainder by zero raise, as PyTorch's CPU kernels do: at once for a
    Python 0, at the next sync for a tensor holding a zero (a check kernel sets the device's
    error flag; the division itself yields 0 there and never traps)."""
    if _floating(a, b) or out.numel() == 0:     # an empty result divides nothing
        return
    if not _is_t(b):
        if b == 0:
            raise DeviceZeroDivisionError(f"ZeroDivisionError: integer {name} by zero")
        return
    if b.dtype.name != "bool":
        ops.check_nonzero(b, faults.site(name, DeviceZeroDivisionError,
                                         "ZeroDivisionError: integer " + name + " by zero"))


def _divide(a, b, rounding_mode):
    if rounding_mode not in _ROUNDING:
        raise ValueError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                         f"found '{rounding_mode}'")
    if rounding_mode is None:
        return apply(ops.DIV, a, b)
    out = apply(ops.DIV_TRUNC if rounding_mode == "trunc" else ops.DIV_FLOOR, a, b)
    _zero_divisor("division", a, b, out)
    return out


def _power(base, exp):
    if _floating(base, exp):
        return apply(ops.POW, base, exp)
    if not _is_t(exp) and exp < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return apply(ops.POW, base, exp)


def _remainder(a, b):
    out = apply(ops.REMAINDER, a, b)
    _zero_divisor("remainder", a, b, out)
    return out


def _bitwise_not(x):
    _int_only("bitwise_not", x)
    if x.dtype.name == "bool":
        return apply(ops.LOGICAL_NOT, x)
    return apply(ops.BITWISE_NOT, x)


def _bitwise(op, a, b):
    _int_only(op.name, a, b)
    return apply(op, a, b)


class MathMixin:
    """Elementwise methods of Tensor; the kernels and gradients live in ops.py."""

    def _ip(self, fn, *args, op=None, saves_self=False):
        """self = fn(self, *args) in place; `op` over (self, *args) is the one-kernel path
        when no gradient is recorded. An op that saves its input for backward computes on a
        copy of self, since the in-place write bumps the version of self's storage."""
        def compute(s, *a):
            r = fn(s.clone() if saves_self else s, *a)
            if r.dtype.category > self.dtype.category:
                raise RuntimeError(f"result type {ops.torch_name(r.dtype)} can't be cast to the "
                                   f"desired output type {ops.torch_name(self.dtype)}")
            return r

        fast = None if op is None else (lambda: apply(op, self, *args, out=self))
        return self._inplace(compute, *args, fast=fast)

    # ---- arithmetic -----------------------------------------------------------------------
    def add(self, other, *, alpha=1):
        if alpha != 1:
            _check_alpha(self, other, alpha)
            return apply(ops.ADD_ALPHA, self, other, alpha)
        return apply(ops.ADD, self, other)

    def sub(self, other, *, alpha=1):
        if self.dtype.name == "bool" and _is_t(other) and other.dtype.name == "bool":
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead.")
        if alpha != 1:
            _check_alpha(self, other, alpha)
            return apply(ops.SUB_ALPHA, self, other, alpha)
        return apply(ops.SUB, self, other)

    subtract = sub

    def rsub(self, other, *, alpha=1):
        """other - alpha * self."""
        if alpha != 1:
            _check_alpha(self, other, alpha)
            return apply(ops.SUB_ALPHA, other, self, alpha)
        return apply(ops.SUB, other, self)

    def mul(self, other):
        return apply(ops.MUL, self, other)

    multiply = mul

    def div(self, other, *, rounding_mode=None):
        return _divide(self, other, rounding_mode)

    divide = div

    def true_divide(self, other):
        return apply(ops.DIV, self, other)

    def floor_divide(self, other):
        return _divide(self, other, "floor")

    def neg(self):
        if self.dtype.name == "bool":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return apply(ops.NEG, self)

    negative = neg

    def positive(self):
        return self

    def pow(self, exponent):
        return _power(self, exponent)

    def float_power(self, exponent):
        e = exponent.to(float64) if _is_t(exponent) else float(exponent)
        return apply(ops.POW, self.to(float64), e)

    def reciprocal(self):
        return apply(ops.RECIPROCAL, self)

    def abs(self):
        return apply(ops.ABS, self)

    absolute = abs

    def sign(self):
        return apply(ops.SIGN, self)

    sgn = sign

    def fmod(self, other):
        out = apply(ops.FMOD, self, other)
        _zero_divisor("fmod", self, other, out)
        return out

    def remainder(self, other):
        return _remainder(self, other)

    def floor(self):
        return apply(ops.FLOOR, self)

    def ceil(self):
        return apply(ops.CEIL, self)

    def round(self, *, decimals=0):
        if decimals == 0 or not self.dtype.is_floating:
            return apply(ops.ROUND, self)
        return apply(ops.ROUND_DEC, self, 10.0 ** abs(decimals), 1 if decimals < 0 else 0)

    def trunc(self):
        return apply(ops.TRUNC, self)

    fix = trunc

    def frac(self):
        return apply(ops.FRAC, self)

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        if max is None:
            return apply(ops.CLAMP_MIN, self, min)
        if min is None:
            return apply(ops.CLAMP_MAX, self, max)
        return apply(ops.CLAMP, self, min, max)

    clip = clamp

    def clamp_min(self, min):
        return apply(ops.CLAMP_MIN, self, min)

    def clamp_max(self, max):
        return apply(ops.CLAMP_MAX, self, max)

    def maximum(self, other):
        return apply(ops.MAXIMUM, self, other)

    def minimum(self, other):
        return apply(ops.MINIMUM, self, other)

    def where(self, condition, other):
        return where(condition, self, other)

    def lerp(self, end, weight):
        return apply(ops.LERP, self, end, weight)

    def addcmul(self, tensor1, tensor2, *, value=1):
        return apply(ops.ADDCMUL, self, tensor1, tensor2, value)

    def addcdiv(self, tensor1, tensor2, *, value=1):
        if not _floating(tensor1, tensor2):
            raise RuntimeError("Integer division with addcdiv is no longer supported, and in a "
                               "future release addcdiv will perform a true division of tensor1 "
                               "and tensor2. The historic addcdiv behavior can be implemented as "
                               "(input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) "
                               "for integer inputs and as (input + value * tensor1 / tensor2) "
                               "for float inputs. The future addcdiv behavior is just the latter "
                               "implementation: (input + value * tensor1 / tensor2), for all "
                               "dtypes.")
        return apply(ops.ADDCDIV, self, tensor1, tensor2, value)

    def square(self):
        return self * self

    # ---- operators ----------------------------------------------------------------------------
    def __add__(self, o):
        return self.add(o)

    def __radd__(self, o):
        return apply(ops.ADD, o, self)

    def __sub__(self, o):
        return self.sub(o)

    def __rsub__(self, o):
        return apply(ops.SUB, o, self)

    def __mul__(self, o):
        return apply(ops.MUL, self, o)

    def __rmul__(self, o):
        return apply(ops.MUL, o, self)

    def __truediv__(self, o):
        return apply(ops.DIV, self, o)

    def __rtruediv__(self, o):
        return apply(ops.DIV, o, self)

    def __floordiv__(self, o):
        return _divide(self, o, "floor")

    def __rfloordiv__(self, o):
        return _divide(o, self, "floor")

    def __mod__(self, o):
        return _remainder(self, o)

    def __rmod__(self, o):
        return _remainder(o, self)

    def __pow__(self, o):
        return _power(self, o)

    def __rpow__(self, o):
        return _power(o, self)

    def __neg__(self):
        return self.neg()

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    def __and__(self, o):
        return self.bitwise_and(o)

    def __rand__(self, o):
        return _bitwise(ops.BITWISE_AND, o, self)

    def __or__(self, o):
        return self.bitwise_or(o)

    def __ror__(self, o):
        return _bitwise(ops.BITWISE_OR, o, self)

    def __xor__(self, o):
        return self.bitwise_xor(o)

    def __rxor__(self, o):
        return _bitwise(ops.BITWISE_XOR, o, self)

    def __invert__(self):
        return self.bitwise_not()

    def __lshift__(self, o):
        return self.bitwise_left_shift(o)

    def __rlshift__(self, o):
        return _bitwise(ops.LSHIFT, o, self)

    def __rshift__(self, o):
        return self.bitwise_right_shift(o)

    def __rrshift__(self, o):
        return _bitwise(ops.RSHIFT, o, self)

    # ---- comparisons --------------------------------------------------------------------------
    def eq(self, other):
        return apply(ops.EQ, self, other)

    def ne(self, other):
        return apply(ops.NE, self, other)

    def lt(self, other):
        return apply(ops.LT, self, other)

    def le(self, other):
        return apply(ops.LE, self, other)

    def gt(self, other):
        return apply(ops.GT, self, other)

    def ge(self, other):
        return apply(ops.GE, self, other)

    less, less_equal, greater, greater_equal, not_equal = lt, le, gt, ge, ne

    def __eq__(self, o):
        return self.eq(o)

    def __ne__(self, o):
        return self.ne(o)

    def __lt__(self, o):
        return self.lt(o)

    def __le__(self, o):
        return self.le(o)

    def __gt__(self, o):
        return self.gt(o)

    def __ge__(self, o):
        return self.ge(o)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return isclose(self, other, rtol, atol, equal_nan)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        return allclose(self, other, rtol, atol, equal_nan)

    def equal(self, other) -> bool:
        return equal(self, other)

    def isnan(self):
        return apply(ops.ISNAN, self)

    def isinf(self):
        return apply(ops.ISINF, self)

    def isposinf(self):
        return apply(ops.ISPOSINF, self)

    def isneginf(self):
        return apply(ops.ISNEGINF, self)

    def isfinite(self):
        return apply(ops.ISFINITE, self)

    def logical_not(self):
        return apply(ops.LOGICAL_NOT, self)

    def logical_and(self, other):
        return apply(ops.LOGICAL_AND, self, other)

    def logical_or(self, other):
        return apply(ops.LOGICAL_OR, self, other)

    def logical_xor(self, other):
        return apply(ops.LOGICAL_XOR, self, other)

    def bitwise_and(self, other):
        return _bitwise(ops.BITWISE_AND, self, other)

    def bitwise_or(self, other):
        return _bitwise(ops.BITWISE_OR, self, other)

    def bitwise_xor(self, other):
        return _bitwise(ops.BITWISE_XOR, self, other)

    def bitwise_not(self):
        return _bitwise_not(self)

    def bitwise_left_shift(self, other):
        return _bitwise(ops.LSHIFT, self, other)

    def bitwise_right_shift(self, other):
        return _bitwise(ops.RSHIFT, self, other)

    # ---- math -------------------------------------------------------------------------------
    def exp(self):
        return apply(ops.EXP, self)

    def exp2(self):
        return apply(ops.EXP2, self)

    def expm1(self):
        return apply(ops.EXPM1, self)

    def log(self):
        return apply(ops.LOG, self)

    def log2(self):
        return apply(ops.LOG2, self)

    def log10(self):
        return apply(ops.LOG10, self)

    def log1p(self):
        return apply(ops.LOG1P, self)

    def sqrt(self):
        return apply(ops.SQRT, self)

    def rsqrt(self):
        return apply(ops.RSQRT, self)

    def sin(self):
        return apply(ops.SIN, self)

    def cos(self):
        return apply(ops.COS, self)

    def tan(self):
        return apply(ops.TAN, self)

    def asin(self):
        return apply(ops.ASIN, self)

    def acos(self):
        return apply(ops.ACOS, self)

    def atan(self):
        return apply(ops.ATAN, self)

    arcsin, arccos, arctan = asin, acos, atan

    def atan2(self, other):
        return apply(ops.ATAN2, self, other)

    arctan2 = atan2

    def sinh(self):
        return apply(ops.SINH, self)

    def cosh(self):
        return apply(ops.COSH, self)

    def tanh(self):
        return apply(ops.TANH, self)

    def asinh(self):
        return apply(ops.ASINH, self)

    def acosh(self):
        return apply(ops.ACOSH, self)

    def atanh(self):
        return apply(ops.ATANH, self)

    arcsinh, arccosh, arctanh = asinh, acosh, atanh

    def erf(self):
        return apply(ops.ERF, self)

    def erfc(self):
        return apply(ops.ERFC, self)

    def sigmoid(self):
        return apply(ops.SIGMOID, self)

    def logit(self, eps=None):
        if eps is None:
            return apply(ops.LOGIT, self)
        return apply(ops.LOGIT_EPS, self, float(eps))

    def logit_(self, eps=None):
        return self._ip(lambda s: s.logit(eps), saves_self=True)

    def relu(self):
        return apply(ops.RELU, self)


# ---- functions whose first argument need not be a tensor ------------------------------------
def where(condition, input, other):
    """Elements of `input` where `condition` holds, else of `other` (broadcast together)."""
    if not _is_t(condition):
        raise TypeError("where(): argument 'condition' must be Tensor, not "
                        f"{type(condition).__name__}")
    if condition.dtype.name != "bool":
        condition = condition != 0
    return apply(ops.WHERE, condition, input, other)


def pow(input, exponent):
    """input ** exponent; either side may be a Python number."""
    return _power(input, exponent)


def remainder(input, other):
    """Python's modulo (the result has the divisor's sign); either side may be a number."""
    return _remainder(input, other)


def bitwise_left_shift(input, other):
    return _bitwise(ops.LSHIFT, input, other)


def bitwise_right_shift(input, other):
    return _bitwise(ops.RSHIFT, input, other)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other| elementwise (PyTorch's isclose)."""
    if _is_t(other) and input.dtype is not other.dtype:
        raise RuntimeError(f"{ops.torch_name(input.dtype)} did not match "
                           f"{ops.torch_name(other.dtype)}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    if not input.dtype.is_floating:
        # integers compare exactly or through the tolerance in floating point
        input = input.to(get_default_dtype())
        other = other.to(get_default_dtype()) if _is_t(other) else other
    return apply(ops.ISCLOSE, input.detach(), other.detach() if _is_t(other) else other,
                  float(rtol), float(atol), 1.0 if equal_nan else 0.0)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(isclose(input, other, rtol, atol, equal_nan).all().item())


def equal(input, other) -> bool:
    """True if both tensors have the same shape and elements."""
    if tuple(input.shape) != tuple(other.shape):
        return False
    return bool(apply(ops.EQ, input.detach(), other.detach()).all().item())


__all__ = ["where", "pow", "remainder", "bitwise_left_shift", "bitwise_right_shift", "isclose",
           "allclose", "equal", "MathMixin"]
