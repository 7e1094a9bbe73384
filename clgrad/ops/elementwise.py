"""Elementwise records: arithmetic, math, activations (with their fused gradients), compares
and logic. Each record is one C snippet with its dtype rule and a Tensor-level backward."""
from __future__ import annotations

import math

import numpy as np

from ..array import Array
from .base import Op, _binary_grads, _need

NEG = Op("neg", "-x0", lambda ctx, g: (-g,), ref=np.negative, sample=((-2.0, 2.0),))
EXP = Op("exp", "exp(x0)", lambda ctx, g: (g * ctx.out(),), dtype="float", save="o",
         ref=np.exp, sample=((-2.0, 2.0),))
LOG = Op("log", "log(x0)", lambda ctx, g: (g / ctx.arg(0),), dtype="float", save="x",
         ref=np.log, sample=((0.5, 3.0),))
SQRT = Op("sqrt", "sqrt(x0)", lambda ctx, g: (g / (ctx.out() * 2),), dtype="float", save="o",
          ref=np.sqrt, sample=((0.5, 3.0),))
SIN = Op("sin", "sin(x0)", lambda ctx, g: (g * ctx.arg(0).cos(),), dtype="float", save="x",
         ref=np.sin, sample=((-2.0, 2.0),))
COS = Op("cos", "cos(x0)", lambda ctx, g: (-g * ctx.arg(0).sin(),), dtype="float", save="x",
         ref=np.cos, sample=((-2.0, 2.0),))
TANH = Op("tanh", "clg_tanh(x0)", lambda ctx, g: (g._apply(TANH_BWD, g, ctx.out()),),
          dtype="float", save="o", preamble=("math_float.cl",), ref=np.tanh, sample=((-2.0, 2.0),))
SIGMOID = Op("sigmoid", "F(1.0) / (F(1.0) + exp(-x0))",
             lambda ctx, g: (g._apply(SIGMOID_BWD, g, ctx.out()),), dtype="float", save="o",
             ref=lambda x: 1 / (1 + np.exp(-x)), sample=((-2.0, 2.0),))
# relu keeps NaN (x < 0 is false for NaN); its gradient at 0 is 0, as in PyTorch
RELU = Op("relu", "x0 < (clg_t)0 ? (clg_t)0 : x0",
          lambda ctx, g: (g._apply(RELU_BWD, g, ctx.out()),), save="o",
          ref=lambda x: np.maximum(x, 0), sample=((-2.0, 2.0),))
ABS = Op("abs", "x0 < (clg_t)0 ? -x0 : x0", lambda ctx, g: (g * ctx.arg(0).sign(),), save="x",
         ref=np.abs, sample=((-2.0, 2.0),))
SIGN = Op("sign", "(clg_t)((x0 > (clg_t)0) - (x0 < (clg_t)0))",
          lambda ctx, g: (g * 0,), ref=np.sign, sample=((-2.0, 2.0),))
COPY = Op("copy", "x0", lambda ctx, g: (g,), ref=np.copy, sample=((-2.0, 2.0),))

ADD = Op("add", "x0 + x1", lambda ctx, g: (g, g), ref=np.add, sample=((-2.0, 2.0), (-2.0, 2.0)))
SUB = Op("sub", "x0 - x1", lambda ctx, g: (g, -g if _need(ctx, 1) else None),
         ref=np.subtract, sample=((-2.0, 2.0), (-2.0, 2.0)))
MUL = Op("mul", "x0 * x1", _binary_grads(lambda c, g: g * c.arg(1), lambda c, g: g * c.arg(0)),
         save="x", ref=np.multiply, sample=((-2.0, 2.0), (-2.0, 2.0)))
DIV = Op("div", "x0 / x1", _binary_grads(lambda c, g: g / c.arg(1),
                                         lambda c, g: -g * c.arg(0) / (c.arg(1) * c.arg(1))),
         dtype="float", save="x", ref=np.divide, sample=((-2.0, 2.0), (0.5, 3.0)))
# maximum/minimum propagate NaN; ties send half the gradient to each side (as PyTorch does)
MAXIMUM = Op("maximum", "(isnan(x0) || x0 > x1) ? x0 : x1",
             _binary_grads(lambda c, g: g * ((c.arg(0) > c.arg(1)) + (c.arg(0) == c.arg(1)) * 0.5),
                           lambda c, g: g * ((c.arg(1) > c.arg(0)) + (c.arg(0) == c.arg(1)) * 0.5)),
             save="x", int_expr="x0 > x1 ? x0 : x1",
             ref=np.maximum, sample=((-2.0, 2.0), (-2.0, 2.0)))
MINIMUM = Op("minimum", "(isnan(x0) || x0 < x1) ? x0 : x1",
             _binary_grads(lambda c, g: g * ((c.arg(0) < c.arg(1)) + (c.arg(0) == c.arg(1)) * 0.5),
                           lambda c, g: g * ((c.arg(1) < c.arg(0)) + (c.arg(0) == c.arg(1)) * 0.5)),
             save="x", int_expr="x0 < x1 ? x0 : x1",
             ref=np.minimum, sample=((-2.0, 2.0), (-2.0, 2.0)))
EQ = Op("eq", "x0 == x1", dtype="bool", ref=np.equal, sample=((-2.0, 2.0), (-2.0, 2.0)))
NE = Op("ne", "x0 != x1", dtype="bool", ref=np.not_equal, sample=((-2.0, 2.0), (-2.0, 2.0)))
LT = Op("lt", "x0 < x1", dtype="bool", ref=np.less, sample=((-2.0, 2.0), (-2.0, 2.0)))
LE = Op("le", "x0 <= x1", dtype="bool", ref=np.less_equal, sample=((-2.0, 2.0), (-2.0, 2.0)))
GT = Op("gt", "x0 > x1", dtype="bool", ref=np.greater, sample=((-2.0, 2.0), (-2.0, 2.0)))
GE = Op("ge", "x0 >= x1", dtype="bool", ref=np.greater_equal, sample=((-2.0, 2.0), (-2.0, 2.0)))
WHERE = Op("where", "x0 != (clg_t)0 ? x1 : x2",
           lambda ctx, g: (None,
                           g.where(ctx.arg(0), 0) if _need(ctx, 1) else None,
                           g._apply(WHERE, ctx.arg(0), 0, g) if _need(ctx, 2) else None),
           save="x", ref=np.where, sample=((0, 2, "bool"), (-2.0, 2.0), (-2.0, 2.0)))
ISFINITE = Op("isfinite", "isfinite(x0)", dtype="bool", int_expr="1",
              ref=np.isfinite, sample=((-2.0, 2.0),))
LOGICAL_NOT = Op("logical_not", "!x0", dtype="bool", ref=np.logical_not, sample=((-2.0, 2.0),))


_MF = ("math_float.cl",)      # helpers in a floating compute type
_MI = ("math_int.cl",)        # helpers in an integer compute type
_LN2 = 0.6931471805599453
_LN10 = 2.302585092994046
_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2PI = 0.3989422804014327
_TWO_OVER_SQRT_PI = 1.1283791670955126
# numpy has no erf: the references use the math module's, elementwise
_np_erf = np.vectorize(math.erf, otypes=[float])
_np_erfc = np.vectorize(math.erfc, otypes=[float])


def _is_t(x) -> bool:
    return isinstance(x, Array)


def _masked(g, cond):
    """g where cond holds, else 0 (where, not a product, so an infinite g stays out of 0*inf)."""
    return g.where(cond, 0)


def _zero_grads(ctx, g):
    # piecewise-constant ops (floor, rounding division, sign...): zero gradient, as in PyTorch
    return tuple(g * 0 if need else None for need in ctx.needs_input_grad)


def _unary(name, expr, grad=None, save="x", dtype="float", int_expr=None, preamble=(), **table):
    """A one-input record whose gradient is g * grad(ctx) (grad uses ctx.arg(0) / ctx.out())."""
    bw = None if grad is None else (lambda ctx, g: (g * grad(ctx),))
    return Op(name, expr, bw, dtype=dtype, save=save, int_expr=int_expr, preamble=preamble,
              **table)


# -- arithmetic --
ADD_ALPHA = Op("add_alpha", "x0 + x1 * x2",
               lambda ctx, g: (g, g * ctx.arg(2) if _need(ctx, 1) else None, None),
               grad_name="add",
               ref=lambda a, b, alpha: a + b * alpha, sample=((-2.0, 2.0), (-2.0, 2.0), 0.5))
SUB_ALPHA = Op("sub_alpha", "x0 - x1 * x2",
               lambda ctx, g: (g, g * -ctx.arg(2) if _need(ctx, 1) else None, None),
               grad_name="sub",
               ref=lambda a, b, alpha: a - b * alpha, sample=((-2.0, 2.0), (-2.0, 2.0), 0.5))
# integer division guards: x / 0 would trap the process on x86 (PoCL runs C semantics), and
# MIN / -1 overflows the same instruction; 0 is numpy's answer for a zero divisor. `~x1 == 0`
# tests x1 == -1 without a constant comparison that is always false (a warning) for uint8.
_IDIV_GUARD = "x1 == 0 ? (clg_t)0 : ~x1 == 0 ? (clg_t)(-x0) : "
DIV_TRUNC = Op("div_trunc", "trunc(x0 / x1)", _zero_grads,
               int_expr=_IDIV_GUARD + "(clg_t)(x0 / x1)",
               ref=lambda a, b: np.trunc(a / b), sample=((-2.0, 2.0), (0.5, 3.0)))
DIV_FLOOR = Op("div_floor", "clg_floordiv(x0, x1)", _zero_grads, preamble=_MF,
               int_expr=_IDIV_GUARD +
               "(clg_t)(x0 / x1 - ((x0 % x1 != 0) && ((x0 < 0) != (x1 < 0))))",
               ref=np.floor_divide, sample=((-2.0, 2.0), (0.5, 3.0)))
_IMOD_GUARD = "(x1 == 0 || ~x1 == 0) ? (clg_t)0 : "
def _floor_quotient(a, b):
    return a.div(b, rounding_mode="floor") if _is_t(a) else (a / b).floor()


REMAINDER = Op("remainder", "clg_remainder(x0, x1)",
               _binary_grads(lambda c, g: g,
                             lambda c, g: -g * _floor_quotient(c.arg(0), c.arg(1))),
               save="x", preamble=_MF, int_expr=_IMOD_GUARD +
               "(clg_t)(x0 % x1 + ((x0 % x1 != 0) && ((x0 % x1 < 0) != (x1 < 0))) * x1)",
               ref=np.remainder, sample=((-2.0, 2.0), (0.5, 3.0)))
FMOD = Op("fmod", "fmod(x0, x1)",
          _binary_grads(lambda c, g: g,
                        lambda c, g: -g * c.arg(0).div(c.arg(1), rounding_mode="trunc")),
          save="x", int_expr=_IMOD_GUARD + "(clg_t)(x0 % x1)",
          ref=np.fmod, sample=((-2.0, 2.0), (0.5, 3.0)))


def _pow_grads(ctx, g):
    x, e = ctx.arg(0), ctx.arg(1)
    gx = ge = None
    if _need(ctx, 0):
        if _is_t(e):
            gx = _masked(g * e * x.pow(e - 1), e != 0)
        else:
            gx = g * 0 if e == 0 else g * e * x.pow(e - 1)
    if _need(ctx, 1):
        out = ctx.out()
        if _is_t(x):
            ge = _masked(g * out * x.log(), ((x == 0) & (e >= 0)).logical_not())
        elif x == 0:
            ge = _masked(g * out * float("-inf"), e < 0)
        else:
            ge = g * out * math.log(x) if x > 0 else g * out * float("nan")
    return gx, ge


POW = Op("pow", "pow(x0, x1)", _pow_grads, save="xo", int_expr="clg_ipow(x0, x1)",
         int_preamble=_MI, ref=np.power, sample=((0.5, 3.0), (-1.5, 1.5)))
RECIPROCAL = _unary("reciprocal", "F(1.0) / x0", lambda c: -(c.out() * c.out()), save="o",
                    ref=np.reciprocal, sample=((0.5, 3.0),))
FLOOR = Op("floor", "floor(x0)", _zero_grads, int_expr="x0", ref=np.floor, sample=((-2.0, 2.0),))
CEIL = Op("ceil", "ceil(x0)", _zero_grads, int_expr="x0", ref=np.ceil, sample=((-2.0, 2.0),))
# rint rounds half to even, as PyTorch's round does
ROUND = Op("round", "rint(x0)", _zero_grads, int_expr="x0", ref=np.rint, sample=((-2.0, 2.0),))
ROUND_DEC = Op("round_decimals", "clg_round_dec(x0, x1, (int)x2)", _zero_grads,
               int_expr="x0", preamble=_MF, grad_name="round",
               ref=lambda x, s, neg: np.rint(x / s) * s if neg else np.rint(x * s) / s,
               sample=((-20.0, 20.0), 100.0, 0))
TRUNC = Op("trunc", "trunc(x0)", _zero_grads, int_expr="x0", ref=np.trunc, sample=((-2.0, 2.0),))
FRAC = Op("frac", "x0 - trunc(x0)", lambda ctx, g: (g,), int_expr="(clg_t)0",
          ref=lambda x: x - np.trunc(x), sample=((-2.0, 2.0),))


def _clamp_grads(ctx, g):
    x, lo, hi = ctx.arg(0), ctx.arg(1), ctx.arg(2)
    gx = glo = ghi = None
    if _need(ctx, 0):
        gx = _masked(g, (x >= lo) & (x <= hi))
    if _need(ctx, 1):
        glo = _masked(g, (x < lo) & (lo < hi))
    if _need(ctx, 2):
        ghi = _masked(g, (x > hi) | (hi < lo))
    return gx, glo, ghi


CLAMP = Op("clamp", "clg_minn(clg_maxn(x0, x1), x2)", _clamp_grads, save="x",
           int_expr="min(max(x0, x1), x2)", preamble=_MF,
           ref=np.clip, sample=((-2.0, 2.0), -0.5, 0.5))
CLAMP_MIN = Op("clamp_min", "clg_maxn(x0, x1)",
               _binary_grads(lambda c, g: _masked(g, c.arg(0) >= c.arg(1)),
                             lambda c, g: _masked(g, c.arg(0) < c.arg(1))),
               save="x", int_expr="max(x0, x1)", preamble=_MF,
               ref=np.maximum, sample=((-2.0, 2.0), 0.3))
CLAMP_MAX = Op("clamp_max", "clg_minn(x0, x1)",
               _binary_grads(lambda c, g: _masked(g, c.arg(0) <= c.arg(1)),
                             lambda c, g: _masked(g, c.arg(0) > c.arg(1))),
               save="x", int_expr="min(x0, x1)", preamble=_MF,
               ref=np.minimum, sample=((-2.0, 2.0), 0.3))


def _lerp_grads(ctx, g):
    a, b, w = ctx.arg(0), ctx.arg(1), ctx.arg(2)
    return (g * (1 - w) if _need(ctx, 0) else None,
            g * w if _need(ctx, 1) else None,
            g * (b - a) if _need(ctx, 2) else None)


LERP = Op("lerp", "clg_lerp(x0, x1, x2)", _lerp_grads, save="x", preamble=_MF,
          ref=lambda a, b, w: a + w * (b - a), sample=((-2.0, 2.0), (-2.0, 2.0), (0.0, 1.0)))
ADDCMUL = Op("addcmul", "x0 + x3 * x1 * x2",
             lambda ctx, g: (g if _need(ctx, 0) else None,
                             g * ctx.arg(3) * ctx.arg(2) if _need(ctx, 1) else None,
                             g * ctx.arg(3) * ctx.arg(1) if _need(ctx, 2) else None, None),
             save="x",
             ref=lambda a, b, c, v: a + v * b * c,
             sample=((-2.0, 2.0), (-2.0, 2.0), (-2.0, 2.0), 0.5))
ADDCDIV = Op("addcdiv", "x0 + x3 * x1 / x2",
             lambda ctx, g: (g if _need(ctx, 0) else None,
                             g * ctx.arg(3) / ctx.arg(2) if _need(ctx, 1) else None,
                             -g * ctx.arg(3) * ctx.arg(1) / (ctx.arg(2) * ctx.arg(2))
                             if _need(ctx, 2) else None, None),
             save="x",
             ref=lambda a, b, c, v: a + v * b / c,
             sample=((-2.0, 2.0), (-2.0, 2.0), (0.5, 3.0), 0.5))


# -- math --
EXP2 = _unary("exp2", "exp2(x0)", lambda c: c.out() * _LN2, save="o",
              ref=np.exp2, sample=((-2.0, 2.0),))
EXPM1 = _unary("expm1", "expm1(x0)", lambda c: c.out() + 1, save="o",
               ref=np.expm1, sample=((-2.0, 2.0),))
LOG2 = Op("log2", "log2(x0)", lambda c, g: (g / (c.arg(0) * _LN2),), dtype="float", save="x",
          ref=np.log2, sample=((0.5, 3.0),))
LOG10 = Op("log10", "log10(x0)", lambda c, g: (g / (c.arg(0) * _LN10),), dtype="float",
           save="x", ref=np.log10, sample=((0.5, 3.0),))
LOG1P = Op("log1p", "log1p(x0)", lambda c, g: (g / (c.arg(0) + 1),), dtype="float", save="x",
           ref=np.log1p, sample=((-0.5, 2.0),))
RSQRT = _unary("rsqrt", "rsqrt(x0)", lambda c: c.out().pow(3) * -0.5, save="o",
               ref=lambda x: 1 / np.sqrt(x), sample=((0.5, 3.0),))
TAN = _unary("tan", "tan(x0)", lambda c: c.out() * c.out() + 1, save="o",
             ref=np.tan, sample=((-1.0, 1.0),))
ASIN = _unary("asin", "asin(x0)", lambda c: (1 - c.arg(0) * c.arg(0)).rsqrt(),
              ref=np.arcsin, sample=((-0.9, 0.9),))
ACOS = _unary("acos", "acos(x0)", lambda c: -(1 - c.arg(0) * c.arg(0)).rsqrt(),
              ref=np.arccos, sample=((-0.9, 0.9),))
ATAN = Op("atan", "atan(x0)", lambda c, g: (g / (c.arg(0) * c.arg(0) + 1),), dtype="float",
          save="x", ref=np.arctan, sample=((-2.0, 2.0),))
SINH = _unary("sinh", "sinh(x0)", lambda c: c.arg(0).cosh(), ref=np.sinh, sample=((-2.0, 2.0),))
COSH = _unary("cosh", "cosh(x0)", lambda c: c.arg(0).sinh(), ref=np.cosh, sample=((-2.0, 2.0),))
ASINH = _unary("asinh", "asinh(x0)", lambda c: (c.arg(0) * c.arg(0) + 1).rsqrt(),
               ref=np.arcsinh, sample=((-2.0, 2.0),))
ACOSH = _unary("acosh", "acosh(x0)", lambda c: ((c.arg(0) - 1) * (c.arg(0) + 1)).rsqrt(),
               ref=np.arccosh, sample=((1.5, 3.0),))
ATANH = Op("atanh", "atanh(x0)", lambda c, g: (g / (1 - c.arg(0) * c.arg(0)),), dtype="float",
           save="x", ref=np.arctanh, sample=((-0.9, 0.9),))
ERF = _unary("erf", "erf(x0)", lambda c: (-(c.arg(0) * c.arg(0))).exp() * _TWO_OVER_SQRT_PI,
             ref=_np_erf, sample=((-2.0, 2.0),))
ERFC = _unary("erfc", "erfc(x0)",
              lambda c: (-(c.arg(0) * c.arg(0))).exp() * -_TWO_OVER_SQRT_PI,
              ref=_np_erfc, sample=((-2.0, 2.0),))


def _atan2_grads(ctx, g):
    y, x = ctx.arg(0), ctx.arg(1)
    r2 = x * x + y * y
    return (g * x / r2 if _need(ctx, 0) else None, -g * y / r2 if _need(ctx, 1) else None)


ATAN2 = Op("atan2", "atan2(x0, x1)", _atan2_grads, dtype="float", save="x",
           ref=np.arctan2, sample=((-2.0, 2.0), (0.5, 3.0)))
LOGIT = Op("logit", "log(x0 / (F(1.0) - x0))",
           lambda c, g: (g / (c.arg(0) * (1 - c.arg(0))),), dtype="float", save="x",
           ref=lambda x: np.log(x / (1 - x)), sample=((0.1, 0.9),))
# with eps the input is clamped to [eps, 1 - eps]; the gradient is 0 outside, as in PyTorch
LOGIT_EPS = Op("logit_eps", "log(clg_minn(clg_maxn(x0, x1), F(1.0) - x1) / "
               "(F(1.0) - clg_minn(clg_maxn(x0, x1), F(1.0) - x1)))",
               lambda c, g: (_masked(g / (c.arg(0) * (1 - c.arg(0))),
                                     (c.arg(0) >= c.arg(1)) & (c.arg(0) <= 1 - c.arg(1))), None),
               dtype="float", save="x", preamble=_MF, grad_name="logit",
               ref=lambda x, e: np.log(np.clip(x, e, 1 - e) / (1 - np.clip(x, e, 1 - e))),
               sample=((0.1, 0.9), 0.2))
SOFTPLUS = Op("softplus", "clg_softplus(x0, x1, x2)",
              lambda c, g: (g.where(c.arg(0) * c.arg(1) > c.arg(2),
                                    g * (c.arg(0) * c.arg(1)).sigmoid()), None, None),
              dtype="float", save="x", preamble=_MF,
              ref=lambda x, b, t: np.where(x * b > t, x, np.log1p(np.exp(x * b)) / b),
              sample=((-2.0, 2.0), 1.5, 2.0))
# hardtanh passes NaN through (both comparisons are false); its gradient is 0 on the bounds
HARDTANH = Op("hardtanh", "x0 < x1 ? x1 : (x0 > x2 ? x2 : x0)",
              lambda c, g: (_masked(g, (c.arg(0) > c.arg(1)) & (c.arg(0) < c.arg(2))), None,
                            None), save="x", ref=np.clip, sample=((-2.0, 2.0), -1.0, 1.0))
# threshold and the shrinks pass the gradient where they pass the input
THRESHOLD = Op("threshold", "x0 > x1 ? x0 : x2",
               lambda c, g: (_masked(g, c.arg(0) > c.arg(1)), None, None), dtype="float",
               save="x", ref=lambda x, t, v: np.where(x > t, x, v), sample=((-2.0, 2.0), 0.5, -1.0))
HARDSHRINK = Op("hardshrink", "(x0 > x1 || x0 < -x1) ? x0 : (clg_t)0",
                lambda c, g: (_masked(g, (c.arg(0) > c.arg(1)) | (c.arg(0) < -c.arg(1))), None),
                dtype="float", save="x",
                ref=lambda x, l: np.where(np.abs(x) > l, x, 0.0), sample=((-2.0, 2.0), 0.5))
SOFTSHRINK = Op("softshrink", "x0 > x1 ? x0 - x1 : (x0 < -x1 ? x0 + x1 : (clg_t)0)",
                lambda c, g: (_masked(g, (c.arg(0) > c.arg(1)) | (c.arg(0) < -c.arg(1))), None),
                dtype="float", save="x",
                ref=lambda x, l: np.where(x > l, x - l, np.where(x < -l, x + l, 0.0)),
                sample=((-2.0, 2.0), 0.5))
LEAKY_RELU = Op("leaky_relu", "x0 > (clg_t)0 ? x0 : x0 * x1",
                lambda c, g: (g.where(c.arg(0) > 0, g * c.arg(1)), None), save="x",
                ref=lambda x, s: np.where(x > 0, x, x * s), sample=((-2.0, 2.0), 0.1))


def _elu_grads(ctx, g):
    x, alpha, scale, iscale = ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3)
    # x = 0 takes the exponential branch, as in PyTorch
    pos = g if scale == 1 else g * scale
    return (pos.where(x > 0, g * (x * iscale).exp() * (alpha * scale * iscale)), None, None, None)


# elu(x) = scale * (x if x > 0 else alpha * (exp(x * input_scale) - 1)): elu, selu and celu
ELU = Op("elu", "x0 > F(0.0) ? x0 * x2 : expm1(x0 * x3) * x1 * x2", _elu_grads, dtype="float",
         save="x",
         ref=lambda x, a, s, i: s * np.where(x > 0, x, a * np.expm1(x * i)),
         sample=((-2.0, 2.0), 1.2, 1.1, 0.8))


# Fused gradients of the hot activations: g * f'(x) (or of the saved output) in one kernel. Their
# own backward is the same op for g and Tensor ops with f'' for x, so double backward works.
def _fused_bwd(name, expr, d2, preamble=(), **table):
    def backward(ctx, gg):
        g, x = ctx.arg(0), ctx.arg(1)
        return (gg._apply(op, gg, x) if _need(ctx, 0) else None,
                gg * g * d2(x) if _need(ctx, 1) and d2 is not None else None)
    op = Op(name, expr, backward, save="x", preamble=preamble, **table)
    return op


def _silu_d2(x):
    s = x.sigmoid()
    return s * (1 - s) * (x * (1 - 2 * s) + 2)


RELU_BWD = _fused_bwd("threshold_backward", "x1 > (clg_t)0 ? x0 : (clg_t)0", None,
                      ref=lambda g, o: np.where(o > 0, g, 0.0), sample=((-2.0, 2.0), (-2.0, 2.0)))
SIGMOID_BWD = _fused_bwd("sigmoid_backward", "x0 * x1 * (F(1.0) - x1)", lambda o: 1 - 2 * o,
                         ref=lambda g, o: g * o * (1 - o), sample=((-2.0, 2.0), (0.1, 0.9)))
TANH_BWD = _fused_bwd("tanh_backward", "x0 * (F(1.0) - x1 * x1)", lambda o: o * -2,
                      ref=lambda g, o: g * (1 - o * o), sample=((-2.0, 2.0), (-0.9, 0.9)))
GELU_BWD = _fused_bwd("gelu_backward", "x0 * clg_gelu_grad(x1)",
                      lambda x: (x * x * -0.5).exp() * _INV_SQRT_2PI * (2 - x * x), _MF,
                      ref=lambda g, x: g * (0.5 * (1 + _np_erf(x / np.sqrt(2)))
                                            + x * np.exp(-0.5 * x * x) * _INV_SQRT_2PI),
                      sample=((-2.0, 2.0), (-2.0, 2.0)))
SILU_BWD = _fused_bwd("silu_backward", "x0 * clg_silu_grad(x1)", _silu_d2, _MF,
                      ref=lambda g, x: g / (1 + np.exp(-x)) * (1 + x * (1 - 1 / (1 + np.exp(-x)))),
                      sample=((-2.0, 2.0), (-2.0, 2.0)))


def _gelu_tanh_grads(ctx, g):
    x = ctx.arg(0)
    x2 = x * x
    t = ((x + x2 * x * 0.044715) * _SQRT_2_OVER_PI).tanh()
    d = (t + 1) * 0.5 + x * (1 - t * t) * (x2 * (3 * 0.044715) + 1) * (0.5 * _SQRT_2_OVER_PI)
    return (g * d,)


GELU = Op("gelu", "F(0.5) * x0 * (F(1.0) + erf(x0 * F(0.7071067811865476)))",
          lambda ctx, g: (g._apply(GELU_BWD, g, ctx.arg(0)),), dtype="float", save="x",
          ref=lambda x: 0.5 * x * (1 + _np_erf(x / np.sqrt(2))), sample=((-2.0, 2.0),))
GELU_TANH = Op("gelu_tanh", "F(0.5) * x0 * (F(1.0) + clg_tanh(F(0.7978845608028654) * "
               "(x0 + F(0.044715) * x0 * x0 * x0)))", _gelu_tanh_grads, dtype="float", save="x",
               preamble=_MF,
               ref=lambda x: 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))),
               sample=((-2.0, 2.0),))


def _mish_grads(ctx, g):
    x = ctx.arg(0)
    t = x._apply(SOFTPLUS, x, 1.0, 20.0).tanh()
    return (g * (t + x * x.sigmoid() * (1 - t * t)),)


SILU = Op("silu", "x0 / (F(1.0) + exp(-x0))",
          lambda ctx, g: (g._apply(SILU_BWD, g, ctx.arg(0)),), dtype="float", save="x",
          ref=lambda x: x / (1 + np.exp(-x)), sample=((-2.0, 2.0),))
MISH = Op("mish", "x0 * clg_tanh(clg_softplus(x0, F(1.0), F(20.0)))", _mish_grads,
          dtype="float", save="x", preamble=_MF,
          ref=lambda x: x * np.tanh(np.log1p(np.exp(x))), sample=((-2.0, 2.0),))
HARDSIGMOID = Op("hardsigmoid",
                 "x0 <= F(-3.0) ? F(0.0) : (x0 >= F(3.0) ? F(1.0) : x0 / F(6.0) + F(0.5))",
                 lambda c, g: (_masked(g, (c.arg(0) > -3) & (c.arg(0) < 3)) / 6,),
                 dtype="float", save="x",
                 ref=lambda x: np.clip(x / 6 + 0.5, 0, 1), sample=((-4.0, 4.0),))
HARDSWISH = Op("hardswish",
               "x0 <= F(-3.0) ? F(0.0) : (x0 >= F(3.0) ? x0 : x0 * (x0 + F(3.0)) / F(6.0))",
               lambda c, g: (_masked(g.where(c.arg(0) > 3, g * (c.arg(0) / 3 + 0.5)),
                                     c.arg(0) >= -3),), dtype="float", save="x",
               ref=lambda x: x * np.clip(x + 3, 0, 6) / 6, sample=((-4.0, 4.0),))
SOFTSIGN = Op("softsign", "x0 / (F(1.0) + fabs(x0))",
              lambda c, g: (g / (c.arg(0).abs() + 1).square(),), dtype="float", save="x",
              ref=lambda x: x / (1 + np.abs(x)), sample=((-2.0, 2.0),))
LOGSIGMOID = Op("logsigmoid", "clg_logsigmoid(x0)", lambda c, g: (g * (-c.arg(0)).sigmoid(),),
                dtype="float", save="x", preamble=_MF,
                ref=lambda x: -np.log1p(np.exp(-x)), sample=((-2.0, 2.0),))

# -- compare and logic --
ISNAN = Op("isnan", "isnan(x0)", dtype="bool", int_expr="0", ref=np.isnan, sample=((-2.0, 2.0),))
ISINF = Op("isinf", "isinf(x0)", dtype="bool", int_expr="0", ref=np.isinf, sample=((-2.0, 2.0),))
ISPOSINF = Op("isposinf", "isinf(x0) && x0 > (clg_t)0", dtype="bool", int_expr="0",
              ref=np.isposinf, sample=((-2.0, 2.0),))
ISNEGINF = Op("isneginf", "isinf(x0) && x0 < (clg_t)0", dtype="bool", int_expr="0",
              ref=np.isneginf, sample=((-2.0, 2.0),))
# |a - b| <= atol + |rtol * b|, equal values (infinities too) always close, NaN == NaN on request
ISCLOSE = Op("isclose", "x0 == x1 || (x4 != (clg_t)0 && isnan(x0) && isnan(x1)) || "
             "(isfinite(x0 - x1) && fabs(x0 - x1) <= x3 + fabs(x2 * x1))", dtype="bool",
             ref=lambda a, b, rtol, atol, nan: np.isclose(a, b, rtol, atol, bool(nan)),
             sample=((-2.0, 2.0), (-2.0, 2.0), 0.5, 0.25, 0.0))
LOGICAL_AND = Op("logical_and", "x0 != (clg_t)0 && x1 != (clg_t)0", dtype="bool",
                 ref=np.logical_and, sample=((-2.0, 2.0), (-2.0, 2.0)))
LOGICAL_OR = Op("logical_or", "x0 != (clg_t)0 || x1 != (clg_t)0", dtype="bool",
                ref=np.logical_or, sample=((-2.0, 2.0), (-2.0, 2.0)))
LOGICAL_XOR = Op("logical_xor", "(x0 != (clg_t)0) != (x1 != (clg_t)0)", dtype="bool",
                 ref=np.logical_xor, sample=((-2.0, 2.0), (-2.0, 2.0)))
_INTS = (-1000, 1000, "int")
BITWISE_AND = Op("bitwise_and", "0", int_expr="x0 & x1", ref=np.bitwise_and,
                 sample=(_INTS, _INTS))
BITWISE_OR = Op("bitwise_or", "0", int_expr="x0 | x1", ref=np.bitwise_or, sample=(_INTS, _INTS))
BITWISE_XOR = Op("bitwise_xor", "0", int_expr="x0 ^ x1", ref=np.bitwise_xor,
                 sample=(_INTS, _INTS))
BITWISE_NOT = Op("bitwise_not", "0", int_expr="~x0", ref=np.invert, sample=(_INTS,))
# shifts by a negative amount or by the width or more give PyTorch's 0 (or -1), not C's UB
_BITS = "(clg_t)(sizeof(clg_t) * 8)"
_SHIFTS = (-2, 70, "int")      # past both ends of an int64's width


def _shift_ref(shift, out_of_range):
    def ref(x, s):
        inside = (s >= 0) & (s < 64)
        return np.where(inside, shift(x, np.where(inside, s, 0)), out_of_range(x))
    return ref


LSHIFT = Op("bitwise_left_shift", "0",
            int_expr=f"(x1 < 0 || x1 >= {_BITS}) ? (clg_t)0 : (clg_t)(x0 << x1)",
            ref=_shift_ref(np.left_shift, np.zeros_like), sample=(_INTS, _SHIFTS))
RSHIFT = Op("bitwise_right_shift", "0",
            int_expr=f"(x1 < 0 || x1 >= {_BITS}) ? (clg_t)(x0 < 0 ? -1 : 0) : (clg_t)(x0 >> x1)",
            ref=_shift_ref(np.right_shift, lambda x: np.where(x < 0, -1, 0)),
            sample=(_INTS, _SHIFTS))


# every elementwise record, in the order above: the op table (ops.TABLE) is built from these
RECORDS = (NEG, EXP, LOG, SQRT, SIN, COS, TANH, SIGMOID, RELU, ABS, SIGN, COPY, ADD, SUB, MUL, DIV,
           MAXIMUM, MINIMUM, EQ, NE, LT, LE, GT, GE, WHERE, ISFINITE, LOGICAL_NOT, ADD_ALPHA,
           SUB_ALPHA, DIV_TRUNC, DIV_FLOOR, REMAINDER, FMOD, POW, RECIPROCAL, FLOOR, CEIL, ROUND,
           ROUND_DEC, TRUNC, FRAC, CLAMP, CLAMP_MIN, CLAMP_MAX, LERP, ADDCMUL, ADDCDIV, EXP2,
           EXPM1, LOG2, LOG10, LOG1P, RSQRT, TAN, ASIN, ACOS, ATAN, SINH, COSH, ASINH, ACOSH,
           ATANH, ERF, ERFC, ATAN2, LOGIT, LOGIT_EPS, SOFTPLUS, HARDTANH, THRESHOLD, HARDSHRINK,
           SOFTSHRINK, LEAKY_RELU, ELU, RELU_BWD, SIGMOID_BWD, TANH_BWD, GELU_BWD, SILU_BWD, GELU,
           GELU_TANH, SILU, MISH, HARDSIGMOID, HARDSWISH, SOFTSIGN, LOGSIGMOID, ISNAN, ISINF,
           ISPOSINF, ISNEGINF, ISCLOSE, LOGICAL_AND, LOGICAL_OR, LOGICAL_XOR, BITWISE_AND,
           BITWISE_OR, BITWISE_XOR, BITWISE_NOT, LSHIFT, RSHIFT)
