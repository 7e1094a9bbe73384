"""Elementwise Tensor methods: arithmetic, comparisons and math, each one op-table record."""
from __future__ import annotations

from numbers import Number

from . import ops


def _is_t(x) -> bool:
    return hasattr(x, "_view")


class MathMixin:
    """Elementwise methods of Tensor; the kernels and gradients live in ops.py."""

    # ---- arithmetic -----------------------------------------------------------------------
    def add(self, other, *, alpha=1):
        if alpha != 1:
            other = other * alpha
        return ops.ew(ops.ADD, self, other)

    def sub(self, other, *, alpha=1):
        if self.dtype.name == "bool" and _is_t(other) and other.dtype.name == "bool":
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead.")
        if alpha != 1:
            other = other * alpha
        return ops.ew(ops.SUB, self, other)

    subtract = sub

    def mul(self, other):
        return ops.ew(ops.MUL, self, other)

    multiply = mul

    def div(self, other, *, rounding_mode=None):
        if rounding_mode is None:
            return ops.ew(ops.DIV, self, other)
        raise NotImplementedError("div(rounding_mode=...) arrives with the autograd issue")

    divide = true_divide = div

    def neg(self):
        if self.dtype.name == "bool":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return ops.ew(ops.NEG, self)

    negative = neg

    def maximum(self, other):
        return ops.ew(ops.MAXIMUM, self, other)

    def minimum(self, other):
        return ops.ew(ops.MINIMUM, self, other)

    def __add__(self, o):
        return self.add(o)

    def __radd__(self, o):
        return ops.ew(ops.ADD, o, self)

    def __sub__(self, o):
        return self.sub(o)

    def __rsub__(self, o):
        return ops.ew(ops.SUB, o, self)

    def __mul__(self, o):
        return ops.ew(ops.MUL, self, o)

    def __rmul__(self, o):
        return ops.ew(ops.MUL, o, self)

    def __truediv__(self, o):
        return ops.ew(ops.DIV, self, o)

    def __rtruediv__(self, o):
        return ops.ew(ops.DIV, o, self)

    def __neg__(self):
        return self.neg()

    def __pos__(self):
        return self

    # in-place arithmetic: a kernel writing into self when no gradient is recorded
    def add_(self, other, *, alpha=1):
        o = other * alpha if alpha != 1 else other
        return self._inplace(lambda s, x: s.add(x), o, fast=lambda: ops.ew(ops.ADD, self, o,
                                                                           out=self))

    def sub_(self, other, *, alpha=1):
        o = other * alpha if alpha != 1 else other
        return self._inplace(lambda s, x: s.sub(x), o, fast=lambda: ops.ew(ops.SUB, self, o,
                                                                           out=self))

    def mul_(self, other):
        return self._inplace(lambda s, x: s.mul(x), other,
                             fast=lambda: ops.ew(ops.MUL, self, other, out=self))

    def div_(self, other, *, rounding_mode=None):
        return self._inplace(lambda s, x: s.div(x, rounding_mode=rounding_mode), other,
                             fast=lambda: ops.ew(ops.DIV, self, other, out=self)
                             if rounding_mode is None else None)

    def neg_(self):
        return self._inplace(lambda s: s.neg(), fast=lambda: ops.ew(ops.NEG, self, out=self))

    def __iadd__(self, o):
        return self.add_(o)

    def __isub__(self, o):
        return self.sub_(o)

    def __imul__(self, o):
        return self.mul_(o)

    def __itruediv__(self, o):
        return self.div_(o)

    # ---- comparisons --------------------------------------------------------------------------
    def eq(self, other):
        return ops.ew(ops.EQ, self, other)

    def ne(self, other):
        return ops.ew(ops.NE, self, other)

    def lt(self, other):
        return ops.ew(ops.LT, self, other)

    def le(self, other):
        return ops.ew(ops.LE, self, other)

    def gt(self, other):
        return ops.ew(ops.GT, self, other)

    def ge(self, other):
        return ops.ew(ops.GE, self, other)

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

    def logical_not(self):
        return ops.ew(ops.LOGICAL_NOT, self)

    def isfinite(self):
        return ops.ew(ops.ISFINITE, self)

    def where(self, condition, other):
        return where(condition, self, other)

    # ---- math -------------------------------------------------------------------------------
    def exp(self):
        return ops.ew(ops.EXP, self)

    def log(self):
        return ops.ew(ops.LOG, self)

    def sqrt(self):
        return ops.ew(ops.SQRT, self)

    def sin(self):
        return ops.ew(ops.SIN, self)

    def cos(self):
        return ops.ew(ops.COS, self)

    def tanh(self):
        return ops.ew(ops.TANH, self)

    def sigmoid(self):
        return ops.ew(ops.SIGMOID, self)

    def relu(self):
        return ops.ew(ops.RELU, self)

    def abs(self):
        return ops.ew(ops.ABS, self)

    absolute = abs

    def sign(self):
        return ops.ew(ops.SIGN, self)

    def square(self):
        return self * self

    def __abs__(self):
        return self.abs()


def where(condition, input, other):
    """Elements of `input` where `condition` holds, else of `other` (broadcast together)."""
    if not _is_t(condition):
        raise TypeError("where(): condition must be a bool tensor")
    if condition.dtype.name != "bool":
        condition = condition != 0
    return ops.ew(ops.WHERE, condition, input, other)
