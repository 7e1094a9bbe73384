"""In-place arithmetic and math methods of Tensor (add_, mul_, exp_, ...): each computes the
out-of-place op and writes it back through MathMixin._ip (one kernel when no gradient is
recorded)."""
from __future__ import annotations

from .. import ops
from .pointwise import _check_alpha


class InplaceMixin:
    def add_(self, other, *, alpha=1):
        if alpha != 1:
            _check_alpha(self, other, alpha)
            return self._ip(lambda s, o, a: s.add(o, alpha=a), other, alpha, op=ops.ADD_ALPHA)
        return self._ip(lambda s, o: s.add(o), other, op=ops.ADD)

    def sub_(self, other, *, alpha=1):
        if alpha != 1:
            _check_alpha(self, other, alpha)
            return self._ip(lambda s, o, a: s.sub(o, alpha=a), other, alpha, op=ops.SUB_ALPHA)
        return self._ip(lambda s, o: s.sub(o), other, op=ops.SUB)

    subtract_ = sub_

    def mul_(self, other):
        return self._ip(lambda s, o: s.mul(o), other, op=ops.MUL, saves_self=True)

    multiply_ = mul_

    def div_(self, other, *, rounding_mode=None):
        if rounding_mode is None:
            return self._ip(lambda s, o: s.div(o), other, op=ops.DIV, saves_self=True)
        return self._ip(lambda s, o: s.div(o, rounding_mode=rounding_mode), other)

    divide_ = div_

    def true_divide_(self, other):
        return self.div_(other)

    def floor_divide_(self, other):
        return self._ip(lambda s, o: s.floor_divide(o), other)

    def pow_(self, exponent):
        return self._ip(lambda s, e: s.pow(e), exponent, saves_self=True)

    def neg_(self):
        return self._ip(lambda s: s.neg(), op=ops.NEG)

    negative_ = neg_

    def abs_(self):
        return self._ip(lambda s: s.abs(), op=ops.ABS, saves_self=True)

    absolute_ = abs_

    def sign_(self):
        return self._ip(lambda s: s.sign(), op=ops.SIGN)

    def reciprocal_(self):
        return self._ip(lambda s: s.reciprocal(), op=ops.RECIPROCAL)

    def fmod_(self, other):
        return self._ip(lambda s, o: s.fmod(o), other, saves_self=True)

    def remainder_(self, other):
        return self._ip(lambda s, o: s.remainder(o), other, saves_self=True)

    def floor_(self):
        return self._ip(lambda s: s.floor(), op=ops.FLOOR)

    def ceil_(self):
        return self._ip(lambda s: s.ceil(), op=ops.CEIL)

    def round_(self, *, decimals=0):
        return self._ip(lambda s: s.round(decimals=decimals))

    def trunc_(self):
        return self._ip(lambda s: s.trunc(), op=ops.TRUNC)

    fix_ = trunc_

    def frac_(self):
        return self._ip(lambda s: s.frac(), op=ops.FRAC)

    def clamp_(self, min=None, max=None):
        return self._ip(lambda s: s.clamp(min, max), saves_self=True)

    clip_ = clamp_

    def clamp_min_(self, min):
        return self._ip(lambda s: s.clamp_min(min), saves_self=True)

    def clamp_max_(self, max):
        return self._ip(lambda s: s.clamp_max(max), saves_self=True)

    def lerp_(self, end, weight):
        return self._ip(lambda s, e, w: s.lerp(e, w), end, weight, op=ops.LERP,
                        saves_self=True)

    def addcmul_(self, tensor1, tensor2, *, value=1):
        return self._ip(lambda s, a, b, v: s.addcmul(a, b, value=v), tensor1, tensor2, value,
                        op=ops.ADDCMUL, saves_self=True)

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        return self._ip(lambda s, a, b, v: s.addcdiv(a, b, value=v), tensor1, tensor2, value,
                        saves_self=True)

    def square_(self):
        return self._ip(lambda s: s.square(), saves_self=True)

    def exp_(self):
        return self._ip(lambda s: s.exp(), op=ops.EXP)

    def log_(self):
        return self._ip(lambda s: s.log(), op=ops.LOG, saves_self=True)

    def sqrt_(self):
        return self._ip(lambda s: s.sqrt(), op=ops.SQRT)

    def sin_(self):
        return self._ip(lambda s: s.sin(), op=ops.SIN, saves_self=True)

    def cos_(self):
        return self._ip(lambda s: s.cos(), op=ops.COS, saves_self=True)

    def sigmoid_(self):
        return self._ip(lambda s: s.sigmoid(), op=ops.SIGMOID)

    def tanh_(self):
        return self._ip(lambda s: s.tanh(), op=ops.TANH)

    def relu_(self):
        return self._ip(lambda s: s.relu(), op=ops.RELU)

    def maximum_(self, other):
        return self._ip(lambda s, o: s.maximum(o), other, saves_self=True)

    def minimum_(self, other):
        return self._ip(lambda s, o: s.minimum(o), other, saves_self=True)

    def bitwise_and_(self, other):
        return self._ip(lambda s, o: s.bitwise_and(o), other)

    def bitwise_or_(self, other):
        return self._ip(lambda s, o: s.bitwise_or(o), other)

    def bitwise_xor_(self, other):
        return self._ip(lambda s, o: s.bitwise_xor(o), other)

    def __iadd__(self, o):
        return self.add_(o)

    def __isub__(self, o):
        return self.sub_(o)

    def __imul__(self, o):
        return self.mul_(o)

    def __itruediv__(self, o):
        return self.div_(o)

    def __ifloordiv__(self, o):
        return self.floor_divide_(o)

    def __imod__(self, o):
        return self.remainder_(o)

    def __ipow__(self, o):
        return self.pow_(o)

    def __iand__(self, o):
        return self.bitwise_and_(o)

    def __ior__(self, o):
        return self.bitwise_or_(o)

    def __ixor__(self, o):
        return self.bitwise_xor_(o)

    def __ilshift__(self, o):
        return self._ip(lambda s, x: s.bitwise_left_shift(x), o)

    def __irshift__(self, o):
        return self._ip(lambda s, x: s.bitwise_right_shift(x), o)
