"""Elementwise records: arithmetic, math, activations (with their fused gradients), compares
and logic. Each record is one C snippet with its dtype rule and a Tensor-level backward."""
from __future__ import annotations

import math

from ..array import Array
from .base import Op, _binary_grads, _need, ew

NEG = Op("neg", "-x0", lambda ctx, g: (-g,))
EXP = Op("exp", "exp(x0)", lambda ctx, g: (g * ctx.out(),), dtype="float", save="o")
LOG = Op("log", "log(x0)", lambda ctx, g: (g / ctx.arg(0),), dtype="float", save="x")
SQRT = Op("sqrt", "sqrt(x0)", lambda ctx, g: (g / (ctx.out() * 2),), dtype="float", save="o")
SIN = Op("sin", "sin(x0)", lambda ctx, g: (g * ctx.arg(0).cos(),), dtype="float", save="x")
COS = Op("cos", "cos(x0)", lambda ctx, g: (-g * ctx.arg(0).sin(),), dtype="float", save="x")
TANH = Op("tanh", "clg_tanh(x0)", lambda ctx, g: (ew(TANH_BWD, g, ctx.out()),),
          dtype="float", save="o", preamble=("math_float.cl",))
SIGMOID = Op("sigmoid", "F(1.0) / (F(1.0) + exp(-x0))",
             lambda ctx, g: (ew(SIGMOID_BWD, g, ctx.out()),), dtype="float", save="o")
# relu keeps NaN (x < 0 is false for NaN); its gradient at 0 is 0, as in PyTorch
RELU = Op("relu", "x0 < (clg_t)0 ? (clg_t)0 : x0",
          lambda ctx, g: (ew(RELU_BWD, g, ctx.out()),), save="o")
ABS = Op("abs", "x0 < (clg_t)0 ? -x0 : x0", lambda ctx, g: (g * ctx.arg(0).sign(),), save="x")
SIGN = Op("sign", "(clg_t)((x0 > (clg_t)0) - (x0 < (clg_t)0))",
          lambda ctx, g: (g * 0,))
COPY = Op("copy", "x0", lambda ctx, g: (g,))

ADD = Op("add", "x0 + x1", lambda ctx, g: (g, g))
SUB = Op("sub", "x0 - x1", lambda ctx, g: (g, -g if _need(ctx, 1) else None))
MUL = Op("mul", "x0 * x1", _binary_grads(lambda c, g: g * c.arg(1), lambda c, g: g * c.arg(0)),
         save="x")
DIV = Op("div", "x0 / x1", _binary_grads(lambda c, g: g / c.arg(1),
                                         lambda c, g: -g * c.arg(0) / (c.arg(1) * c.arg(1))),
         dtype="float", save="x")
# maximum/minimum propagate NaN; ties send half the gradient to each side (as PyTorch does)
MAXIMUM = Op("maximum", "(isnan(x0) || x0 > x1) ? x0 : x1",
             _binary_grads(lambda c, g: g * ((c.arg(0) > c.arg(1)) + (c.arg(0) == c.arg(1)) * 0.5),
                           lambda c, g: g * ((c.arg(1) > c.arg(0)) + (c.arg(0) == c.arg(1)) * 0.5)),
             save="x", int_expr="x0 > x1 ? x0 : x1")
MINIMUM = Op("minimum", "(isnan(x0) || x0 < x1) ? x0 : x1",
             _binary_grads(lambda c, g: g * ((c.arg(0) < c.arg(1)) + (c.arg(0) == c.arg(1)) * 0.5),
                           lambda c, g: g * ((c.arg(1) < c.arg(0)) + (c.arg(0) == c.arg(1)) * 0.5)),
             save="x", int_expr="x0 < x1 ? x0 : x1")
EQ = Op("eq", "x0 == x1", dtype="bool")
NE = Op("ne", "x0 != x1", dtype="bool")
LT = Op("lt", "x0 < x1", dtype="bool")
LE = Op("le", "x0 <= x1", dtype="bool")
GT = Op("gt", "x0 > x1", dtype="bool")
GE = Op("ge", "x0 >= x1", dtype="bool")
WHERE = Op("where", "x0 != (clg_t)0 ? x1 : x2",
           lambda ctx, g: (None,
                           g.where(ctx.arg(0), 0) if _need(ctx, 1) else None,
                           ew(WHERE, ctx.arg(0), 0, g) if _need(ctx, 2) else None),
           save="x")
ISFINITE = Op("isfinite", "isfinite(x0)", dtype="bool", int_expr="1")
LOGICAL_NOT = Op("logical_not", "!x0", dtype="bool")


_MF = ("math_float.cl",)      # helpers in a floating compute type
_MI = ("math_int.cl",)        # helpers in an integer compute type
_LN2 = 0.6931471805599453
_LN10 = 2.302585092994046
_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2PI = 0.3989422804014327
_TWO_OVER_SQRT_PI = 1.1283791670955126


def _is_t(x) -> bool:
    return isinstance(x, Array)


def _masked(g, cond):
    """g where cond holds, else 0 (where, not a product, so an infinite g stays out of 0*inf)."""
    return g.where(cond, 0)


def _zero_grads(ctx, g):
    # piecewise-constant ops (floor, rounding division, sign...): zero gradient, as in PyTorch
    return tuple(g * 0 if need else None for need in ctx.needs_input_grad)


def _unary(name, expr, grad=None, save="x", dtype="float", int_expr=None, preamble=()):
    """A one-input record whose gradient is g * grad(ctx) (grad uses ctx.arg(0) / ctx.out())."""
    bw = None if grad is None else (lambda ctx, g: (g * grad(ctx),))
    return Op(name, expr, bw, dtype=dtype, save=save, int_expr=int_expr, preamble=preamble)


# -- arithmetic --
ADD_ALPHA = Op("add_alpha", "x0 + x1 * x2",
               lambda ctx, g: (g, g * ctx.arg(2) if _need(ctx, 1) else None, None),
               grad_name="add")
SUB_ALPHA = Op("sub_alpha", "x0 - x1 * x2",
               lambda ctx, g: (g, g * -ctx.arg(2) if _need(ctx, 1) else None, None),
               grad_name="sub")
# integer division guards: x / 0 would trap the process on x86 (PoCL runs C semantics), and
# MIN / -1 overflows the same instruction; 0 is numpy's answer for a zero divisor. `~x1 == 0`
# tests x1 == -1 without a constant comparison that is always false (a warning) for uint8.
_IDIV_GUARD = "x1 == 0 ? (clg_t)0 : ~x1 == 0 ? (clg_t)(-x0) : "
DIV_TRUNC = Op("div_trunc", "trunc(x0 / x1)", _zero_grads,
               int_expr=_IDIV_GUARD + "(clg_t)(x0 / x1)")
DIV_FLOOR = Op("div_floor", "clg_floordiv(x0, x1)", _zero_grads, preamble=_MF,
               int_expr=_IDIV_GUARD +
               "(clg_t)(x0 / x1 - ((x0 % x1 != 0) && ((x0 < 0) != (x1 < 0))))")
_IMOD_GUARD = "(x1 == 0 || ~x1 == 0) ? (clg_t)0 : "
def _floor_quotient(a, b):
    return a.div(b, rounding_mode="floor") if _is_t(a) else (a / b).floor()


REMAINDER = Op("remainder", "clg_remainder(x0, x1)",
               _binary_grads(lambda c, g: g,
                             lambda c, g: -g * _floor_quotient(c.arg(0), c.arg(1))),
               save="x", preamble=_MF, int_expr=_IMOD_GUARD +
               "(clg_t)(x0 % x1 + ((x0 % x1 != 0) && ((x0 % x1 < 0) != (x1 < 0))) * x1)")
FMOD = Op("fmod", "fmod(x0, x1)",
          _binary_grads(lambda c, g: g,
                        lambda c, g: -g * c.arg(0).div(c.arg(1), rounding_mode="trunc")),
          save="x", int_expr=_IMOD_GUARD + "(clg_t)(x0 % x1)")


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
         int_preamble=_MI)
RECIPROCAL = _unary("reciprocal", "F(1.0) / x0", lambda c: -(c.out() * c.out()), save="o")
FLOOR = Op("floor", "floor(x0)", _zero_grads, int_expr="x0")
CEIL = Op("ceil", "ceil(x0)", _zero_grads, int_expr="x0")
# rint rounds half to even, as PyTorch's round does
ROUND = Op("round", "rint(x0)", _zero_grads, int_expr="x0")
ROUND_DEC = Op("round_decimals", "clg_round_dec(x0, x1, (int)x2)", _zero_grads,
               int_expr="x0", preamble=_MF, grad_name="round")
TRUNC = Op("trunc", "trunc(x0)", _zero_grads, int_expr="x0")
FRAC = Op("frac", "x0 - trunc(x0)", lambda ctx, g: (g,), int_expr="(clg_t)0")


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
           int_expr="min(max(x0, x1), x2)", preamble=_MF)
CLAMP_MIN = Op("clamp_min", "clg_maxn(x0, x1)",
               _binary_grads(lambda c, g: _masked(g, c.arg(0) >= c.arg(1)),
                             lambda c, g: _masked(g, c.arg(0) < c.arg(1))),
               save="x", int_expr="max(x0, x1)", preamble=_MF)
CLAMP_MAX = Op("clamp_max", "clg_minn(x0, x1)",
               _binary_grads(lambda c, g: _masked(g, c.arg(0) <= c.arg(1)),
                             lambda c, g: _masked(g, c.arg(0) > c.arg(1))),
               save="x", int_expr="min(x0, x1)", preamble=_MF)


def _lerp_grads(ctx, g):
    a, b, w = ctx.arg(0), ctx.arg(1), ctx.arg(2)
    return (g * (1 - w) if _need(ctx, 0) else None,
            g * w if _need(ctx, 1) else None,
            g * (b - a) if _need(ctx, 2) else None)


LERP = Op("lerp", "clg_lerp(x0, x1, x2)", _lerp_grads, save="x", preamble=_MF)
ADDCMUL = Op("addcmul", "x0 + x3 * x1 * x2",
             lambda ctx, g: (g if _need(ctx, 0) else None,
                             g * ctx.arg(3) * ctx.arg(2) if _need(ctx, 1) else None,
                             g * ctx.arg(3) * ctx.arg(1) if _need(ctx, 2) else None, None),
             save="x")
ADDCDIV = Op("addcdiv", "x0 + x3 * x1 / x2",
             lambda ctx, g: (g if _need(ctx, 0) else None,
                             g * ctx.arg(3) / ctx.arg(2) if _need(ctx, 1) else None,
                             -g * ctx.arg(3) * ctx.arg(1) / (ctx.arg(2) * ctx.arg(2))
                             if _need(ctx, 2) else None, None),
             save="x")


# -- math --
EXP2 = _unary("exp2", "exp2(x0)", lambda c: c.out() * _LN2, save="o")
EXPM1 = _unary("expm1", "expm1(x0)", lambda c: c.out() + 1, save="o")
LOG2 = Op("log2", "log2(x0)", lambda c, g: (g / (c.arg(0) * _LN2),), dtype="float", save="x")
LOG10 = Op("log10", "log10(x0)", lambda c, g: (g / (c.arg(0) * _LN10),), dtype="float",
           save="x")
LOG1P = Op("log1p", "log1p(x0)", lambda c, g: (g / (c.arg(0) + 1),), dtype="float", save="x")
RSQRT = _unary("rsqrt", "rsqrt(x0)", lambda c: c.out().pow(3) * -0.5, save="o")
TAN = _unary("tan", "tan(x0)", lambda c: c.out() * c.out() + 1, save="o")
ASIN = _unary("asin", "asin(x0)", lambda c: (1 - c.arg(0) * c.arg(0)).rsqrt())
ACOS = _unary("acos", "acos(x0)", lambda c: -(1 - c.arg(0) * c.arg(0)).rsqrt())
ATAN = Op("atan", "atan(x0)", lambda c, g: (g / (c.arg(0) * c.arg(0) + 1),), dtype="float",
          save="x")
SINH = _unary("sinh", "sinh(x0)", lambda c: c.arg(0).cosh())
COSH = _unary("cosh", "cosh(x0)", lambda c: c.arg(0).sinh())
ASINH = _unary("asinh", "asinh(x0)", lambda c: (c.arg(0) * c.arg(0) + 1).rsqrt())
ACOSH = _unary("acosh", "acosh(x0)", lambda c: ((c.arg(0) - 1) * (c.arg(0) + 1)).rsqrt())
ATANH = Op("atanh", "atanh(x0)", lambda c, g: (g / (1 - c.arg(0) * c.arg(0)),), dtype="float",
           save="x")
ERF = _unary("erf", "erf(x0)", lambda c: (-(c.arg(0) * c.arg(0))).exp() * _TWO_OVER_SQRT_PI)
ERFC = _unary("erfc", "erfc(x0)",
              lambda c: (-(c.arg(0) * c.arg(0))).exp() * -_TWO_OVER_SQRT_PI)


def _atan2_grads(ctx, g):
    y, x = ctx.arg(0), ctx.arg(1)
    r2 = x * x + y * y
    return (g * x / r2 if _need(ctx, 0) else None, -g * y / r2 if _need(ctx, 1) else None)


ATAN2 = Op("atan2", "atan2(x0, x1)", _atan2_grads, dtype="float", save="x")
LOGIT = Op("logit", "log(x0 / (F(1.0) - x0))",
           lambda c, g: (g / (c.arg(0) * (1 - c.arg(0))),), dtype="float", save="x")
# with eps the input is clamped to [eps, 1 - eps]; the gradient is 0 outside, as in PyTorch
LOGIT_EPS = Op("logit_eps", "log(clg_minn(clg_maxn(x0, x1), F(1.0) - x1) / "
               "(F(1.0) - clg_minn(clg_maxn(x0, x1), F(1.0) - x1)))",
               lambda c, g: (_masked(g / (c.arg(0) * (1 - c.arg(0))),
                                     (c.arg(0) >= c.arg(1)) & (c.arg(0) <= 1 - c.arg(1))), None),
               dtype="float", save="x", preamble=_MF, grad_name="logit")
SOFTPLUS = Op("softplus", "clg_softplus(x0, x1, x2)",
              lambda c, g: (g.where(c.arg(0) * c.arg(1) > c.arg(2),
                                    g * (c.arg(0) * c.arg(1)).sigmoid()), None, None),
              dtype="float", save="x", preamble=_MF)
# hardtanh passes NaN through (both comparisons are false); its gradient is 0 on the bounds
HARDTANH = Op("hardtanh", "x0 < x1 ? x1 : (x0 > x2 ? x2 : x0)",
              lambda c, g: (_masked(g, (c.arg(0) > c.arg(1)) & (c.arg(0) < c.arg(2))), None,
                            None), save="x")
# threshold and the shrinks pass the gradient where they pass the input
THRESHOLD = Op("threshold", "x0 > x1 ? x0 : x2",
               lambda c, g: (_masked(g, c.arg(0) > c.arg(1)), None, None), dtype="float",
               save="x")
HARDSHRINK = Op("hardshrink", "(x0 > x1 || x0 < -x1) ? x0 : (clg_t)0",
                lambda c, g: (_masked(g, (c.arg(0) > c.arg(1)) | (c.arg(0) < -c.arg(1))), None),
                dtype="float", save="x")
SOFTSHRINK = Op("softshrink", "x0 > x1 ? x0 - x1 : (x0 < -x1 ? x0 + x1 : (clg_t)0)",
                lambda c, g: (_masked(g, (c.arg(0) > c.arg(1)) | (c.arg(0) < -c.arg(1))), None),
                dtype="float", save="x")
LEAKY_RELU = Op("leaky_relu", "x0 > (clg_t)0 ? x0 : x0 * x1",
                lambda c, g: (g.where(c.arg(0) > 0, g * c.arg(1)), None), save="x")


def _elu_grads(ctx, g):
    x, alpha, scale, iscale = ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3)
    # x = 0 takes the exponential branch, as in PyTorch
    pos = g if scale == 1 else g * scale
    return (pos.where(x > 0, g * (x * iscale).exp() * (alpha * scale * iscale)), None, None, None)


# elu(x) = scale * (x if x > 0 else alpha * (exp(x * input_scale) - 1)): elu, selu and celu
ELU = Op("elu", "x0 > F(0.0) ? x0 * x2 : expm1(x0 * x3) * x1 * x2", _elu_grads, dtype="float",
         save="x")


# Fused gradients of the hot activations: g * f'(x) (or of the saved output) in one kernel. Their
# own backward is the same op for g and Tensor ops with f'' for x, so double backward works.
def _fused_bwd(name, expr, d2, preamble=()):
    def backward(ctx, gg):
        g, x = ctx.arg(0), ctx.arg(1)
        return (ew(op, gg, x) if _need(ctx, 0) else None,
                gg * g * d2(x) if _need(ctx, 1) and d2 is not None else None)
    op = Op(name, expr, backward, save="x", preamble=preamble)
    return op


def _silu_d2(x):
    s = x.sigmoid()
    return s * (1 - s) * (x * (1 - 2 * s) + 2)


RELU_BWD = _fused_bwd("threshold_backward", "x1 > (clg_t)0 ? x0 : (clg_t)0", None)
SIGMOID_BWD = _fused_bwd("sigmoid_backward", "x0 * x1 * (F(1.0) - x1)", lambda o: 1 - 2 * o)
TANH_BWD = _fused_bwd("tanh_backward", "x0 * (F(1.0) - x1 * x1)", lambda o: o * -2)
GELU_BWD = _fused_bwd("gelu_backward", "x0 * clg_gelu_grad(x1)",
                      lambda x: (x * x * -0.5).exp() * _INV_SQRT_2PI * (2 - x * x), _MF)
SILU_BWD = _fused_bwd("silu_backward", "x0 * clg_silu_grad(x1)", _silu_d2, _MF)


def _gelu_tanh_grads(ctx, g):
    x = ctx.arg(0)
    x2 = x * x
    t = ((x + x2 * x * 0.044715) * _SQRT_2_OVER_PI).tanh()
    d = (t + 1) * 0.5 + x * (1 - t * t) * (x2 * (3 * 0.044715) + 1) * (0.5 * _SQRT_2_OVER_PI)
    return (g * d,)


GELU = Op("gelu", "F(0.5) * x0 * (F(1.0) + erf(x0 * F(0.7071067811865476)))",
          lambda ctx, g: (ew(GELU_BWD, g, ctx.arg(0)),), dtype="float", save="x")
GELU_TANH = Op("gelu_tanh", "F(0.5) * x0 * (F(1.0) + clg_tanh(F(0.7978845608028654) * "
               "(x0 + F(0.044715) * x0 * x0 * x0)))", _gelu_tanh_grads, dtype="float", save="x",
               preamble=_MF)


def _mish_grads(ctx, g):
    x = ctx.arg(0)
    t = ew(SOFTPLUS, x, 1.0, 20.0).tanh()
    return (g * (t + x * x.sigmoid() * (1 - t * t)),)


SILU = Op("silu", "x0 / (F(1.0) + exp(-x0))",
          lambda ctx, g: (ew(SILU_BWD, g, ctx.arg(0)),), dtype="float", save="x")
MISH = Op("mish", "x0 * clg_tanh(clg_softplus(x0, F(1.0), F(20.0)))", _mish_grads,
          dtype="float", save="x", preamble=_MF)
HARDSIGMOID = Op("hardsigmoid",
                 "x0 <= F(-3.0) ? F(0.0) : (x0 >= F(3.0) ? F(1.0) : x0 / F(6.0) + F(0.5))",
                 lambda c, g: (_masked(g, (c.arg(0) > -3) & (c.arg(0) < 3)) / 6,),
                 dtype="float", save="x")
HARDSWISH = Op("hardswish",
               "x0 <= F(-3.0) ? F(0.0) : (x0 >= F(3.0) ? x0 : x0 * (x0 + F(3.0)) / F(6.0))",
               lambda c, g: (_masked(g.where(c.arg(0) > 3, g * (c.arg(0) / 3 + 0.5)),
                                     c.arg(0) >= -3),), dtype="float", save="x")
SOFTSIGN = Op("softsign", "x0 / (F(1.0) + fabs(x0))",
              lambda c, g: (g / (c.arg(0).abs() + 1).square(),), dtype="float", save="x")
LOGSIGMOID = Op("logsigmoid", "clg_logsigmoid(x0)", lambda c, g: (g * (-c.arg(0)).sigmoid(),),
                dtype="float", save="x", preamble=_MF)

# -- compare and logic --
ISNAN = Op("isnan", "isnan(x0)", dtype="bool", int_expr="0")
ISINF = Op("isinf", "isinf(x0)", dtype="bool", int_expr="0")
ISPOSINF = Op("isposinf", "isinf(x0) && x0 > (clg_t)0", dtype="bool", int_expr="0")
ISNEGINF = Op("isneginf", "isinf(x0) && x0 < (clg_t)0", dtype="bool", int_expr="0")
# |a - b| <= atol + |rtol * b|, equal values (infinities too) always close, NaN == NaN on request
ISCLOSE = Op("isclose", "x0 == x1 || (x4 != (clg_t)0 && isnan(x0) && isnan(x1)) || "
             "(isfinite(x0 - x1) && fabs(x0 - x1) <= x3 + fabs(x2 * x1))", dtype="bool")
LOGICAL_AND = Op("logical_and", "x0 != (clg_t)0 && x1 != (clg_t)0", dtype="bool")
LOGICAL_OR = Op("logical_or", "x0 != (clg_t)0 || x1 != (clg_t)0", dtype="bool")
LOGICAL_XOR = Op("logical_xor", "(x0 != (clg_t)0) != (x1 != (clg_t)0)", dtype="bool")
BITWISE_AND = Op("bitwise_and", "0", int_expr="x0 & x1")
BITWISE_OR = Op("bitwise_or", "0", int_expr="x0 | x1")
BITWISE_XOR = Op("bitwise_xor", "0", int_expr="x0 ^ x1")
BITWISE_NOT = Op("bitwise_not", "0", int_expr="~x0")
# shifts by a negative amount or by the width or more give PyTorch's 0 (or -1), not C's UB
_BITS = "(clg_t)(sizeof(clg_t) * 8)"
LSHIFT = Op("bitwise_left_shift", "0",
            int_expr=f"(x1 < 0 || x1 >= {_BITS}) ? (clg_t)0 : (clg_t)(x0 << x1)")
RSHIFT = Op("bitwise_right_shift", "0",
            int_expr=f"(x1 < 0 || x1 >= {_BITS}) ? (clg_t)(x0 < 0 ? -1 : 0) : (clg_t)(x0 >> x1)")
