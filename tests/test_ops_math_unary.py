"""Unary math and activation ops: forward against numpy (float64) in every layout, gradient by
gradcheck, second derivatives for the activations, and the edge values PyTorch pins down."""
import math

import numpy as np
import pytest

import clgrad
from clgrad.tensor.activation import (celu, elu, gelu, hardsigmoid, hardswish, hardtanh,
                                      leaky_relu, logsigmoid, mish, relu6, selu, silu, softplus,
                                      softsign)
from clgrad.autograd import gradcheck
from helpers import check_op, make

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


# name: (clgrad fn, numpy fn, low, high)
UNARY = {
    "neg": (lambda a: -a, lambda a: -a, -2, 2),
    "abs": (lambda a: a.abs(), np.abs, -2, 2),
    "exp": (lambda a: a.exp(), np.exp, -2, 2),
    "exp2": (lambda a: a.exp2(), np.exp2, -2, 2),
    "expm1": (lambda a: a.expm1(), np.expm1, -2, 2),
    "log": (lambda a: a.log(), np.log, 0.1, 3),
    "log2": (lambda a: a.log2(), np.log2, 0.1, 3),
    "log10": (lambda a: a.log10(), np.log10, 0.1, 3),
    "log1p": (lambda a: a.log1p(), np.log1p, -0.5, 3),
    "sqrt": (lambda a: a.sqrt(), np.sqrt, 0.1, 3),
    "rsqrt": (lambda a: a.rsqrt(), lambda a: 1 / np.sqrt(a), 0.2, 3),
    "square": (lambda a: a.square(), np.square, -2, 2),
    "reciprocal": (lambda a: a.reciprocal(), lambda a: 1 / a, 0.3, 3),
    "sin": (lambda a: a.sin(), np.sin, -3, 3),
    "cos": (lambda a: a.cos(), np.cos, -3, 3),
    "tan": (lambda a: a.tan(), np.tan, -1.2, 1.2),
    "asin": (lambda a: a.asin(), np.arcsin, -0.9, 0.9),
    "acos": (lambda a: a.acos(), np.arccos, -0.9, 0.9),
    "atan": (lambda a: a.atan(), np.arctan, -3, 3),
    "sinh": (lambda a: a.sinh(), np.sinh, -2, 2),
    "cosh": (lambda a: a.cosh(), np.cosh, -2, 2),
    "tanh": (lambda a: a.tanh(), np.tanh, -2, 2),
    "asinh": (lambda a: a.asinh(), np.arcsinh, -3, 3),
    "acosh": (lambda a: a.acosh(), np.arccosh, 1.2, 3),
    "atanh": (lambda a: a.atanh(), np.arctanh, -0.9, 0.9),
    "erf": (lambda a: a.erf(), _erf, -2, 2),
    "erfc": (lambda a: a.erfc(), _erfc, -2, 2),
    "sigmoid": (lambda a: a.sigmoid(), _sigmoid, -4, 4),
    "logit": (lambda a: a.logit(), lambda a: np.log(a / (1 - a)), 0.05, 0.95),
    "logit_eps": (lambda a: a.logit(eps=0.2), lambda a: (lambda c: np.log(c / (1 - c)))(
        np.clip(a, 0.2, 0.8)), 0.05, 0.95),
    "frac": (lambda a: a.frac(), lambda a: a - np.trunc(a), -3, 3),
    "relu": (lambda a: a.relu(), lambda a: np.maximum(a, 0), -2, 2),
    "relu6": (relu6, lambda a: np.clip(a, 0, 6), -2, 8),
    "leaky_relu": (lambda a: leaky_relu(a, 0.2), lambda a: np.where(a > 0, a, 0.2 * a), -2, 2),
    "elu": (lambda a: elu(a, 0.7), lambda a: np.where(a > 0, a, 0.7 * np.expm1(a)), -2, 2),
    "selu": (selu, lambda a: SELU_S * np.where(a > 0, a, SELU_A * np.expm1(a)), -2, 2),
    "celu": (lambda a: celu(a, 0.6),
             lambda a: np.maximum(a, 0) + np.minimum(0, 0.6 * np.expm1(a / 0.6)), -2, 2),
    "gelu": (gelu, lambda a: 0.5 * a * (1 + _erf(a / np.sqrt(2))), -3, 3),
    "gelu_tanh": (lambda a: gelu(a, approximate="tanh"),
                  lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3))),
                  -3, 3),
    "silu": (silu, lambda a: a * _sigmoid(a), -3, 3),
    "mish": (mish, lambda a: a * np.tanh(np.log1p(np.exp(a))), -3, 3),
    "hardtanh": (lambda a: hardtanh(a, -0.5, 1.5), lambda a: np.clip(a, -0.5, 1.5), -2, 2),
    "hardsigmoid": (hardsigmoid, lambda a: np.clip(a / 6 + 0.5, 0, 1), -5, 5),
    "hardswish": (hardswish, lambda a: a * np.clip(a + 3, 0, 6) / 6, -5, 5),
    "softsign": (softsign, lambda a: a / (1 + np.abs(a)), -3, 3),
    "logsigmoid": (logsigmoid, lambda a: -np.logaddexp(0, -a), -5, 5),
    "softplus": (softplus, lambda a: np.log1p(np.exp(a)), -3, 3),
    "softplus_beta": (lambda a: softplus(a, beta=2.0, threshold=3.0),
                      lambda a: np.where(2 * a > 3, a, np.log1p(np.exp(2 * a)) / 2), -3, 3),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(device, name):
    fn, ref, low, high = UNARY[name]
    check_op([(4, 5)], fn, ref, device=device, low=low, high=high)


# the same ops through the function spelling (clgrad.<name>) where torch has one
@pytest.mark.parametrize("name", ["exp", "log1p", "atan", "erfc", "sigmoid", "frac", "rsqrt"])
def test_function_alias(device, name):
    fn, ref, low, high = UNARY[name]
    check_op([(5,)], getattr(clgrad, name), ref, device=device, low=low, high=high, grad=False)


@pytest.mark.parametrize("shape", [(), (1,), (1, 3, 1), (0,), (2, 0, 3)])
@pytest.mark.parametrize("name", ["exp", "gelu", "abs"])
def test_unary_shapes(device, name, shape):
    fn, ref, low, high = UNARY[name]
    check_op([shape], fn, ref, device=device, low=low, high=high,
             grad=0 not in shape)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "gelu_tanh", "silu", "mish", "relu",
                                  "softplus_beta", "elu", "logsigmoid", "erf", "rsqrt",
                                  "asin", "acosh", "logit", "hardswish", "softsign"])
def test_double_backward(fp64, name):
    fn, _, low, high = UNARY[name]
    rng = np.random.default_rng(1)
    x = make(rng.uniform(low, high, (7,)), "float64", fp64, requires_grad=True)
    v = clgrad.tensor(rng.standard_normal(7), dtype=clgrad.float64, device=fp64)

    def first(x):
        # the gradient built with create_graph, checked by gradcheck: second derivatives
        with clgrad.enable_grad():
            (g,) = clgrad.autograd.grad([fn(x)], [x], [v], create_graph=True)
        return g

    assert gradcheck(first, [x], atol=1e-4)


def test_rounding(device):
    vals = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6, 0.0, 3.7])
    x = clgrad.tensor(vals, dtype=clgrad.float32, device=device)
    np.testing.assert_array_equal(x.round().numpy(), np.round(vals))   # half to even
    np.testing.assert_array_equal(x.floor().numpy(), np.floor(vals))
    np.testing.assert_array_equal(x.ceil().numpy(), np.ceil(vals))
    np.testing.assert_array_equal(x.trunc().numpy(), np.trunc(vals))
    np.testing.assert_array_equal(clgrad.fix(x).numpy(), np.trunc(vals))
    y = clgrad.tensor([1.2345, -2.5678, 125.0, 135.0], dtype=clgrad.float64, device=device)
    np.testing.assert_allclose(y.round(decimals=2).numpy(), [1.23, -2.57, 125.0, 135.0])
    np.testing.assert_allclose(y.round(decimals=-1).numpy(), [0.0, 0.0, 120.0, 140.0])
    i = clgrad.tensor([3, -4], device=device)
    for f in (i.round, i.floor, i.ceil, i.trunc):
        r = f()
        assert r.dtype is clgrad.int64
        np.testing.assert_array_equal(r.numpy(), [3, -4])


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign"])
def test_piecewise_constant_grad_is_zero(device, name):
    x = clgrad.tensor([-1.3, 0.4, 2.7], device=device, requires_grad=True)
    y = getattr(x, name)()
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)


def _grad_at(device, fn, vals):
    x = clgrad.tensor(vals, dtype=clgrad.float32, device=device, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy()


def test_kink_gradients_match_pytorch(device):
    # PyTorch's conventions at the kinks: abs'(0) = 0, relu'(0) = 0, leaky_relu'(0) = slope,
    # elu'(0) = alpha, hardtanh' = 0 on its bounds, relu6'(0) = relu6'(6) = 0
    np.testing.assert_array_equal(_grad_at(device, lambda x: x.abs(), [0.0, -1.0]), [0, -1])
    np.testing.assert_array_equal(_grad_at(device, lambda x: x.relu(), [0.0, 1.0]), [0, 1])
    np.testing.assert_allclose(_grad_at(device, lambda x: leaky_relu(x, 0.1), [0.0]), [0.1])
    np.testing.assert_allclose(_grad_at(device, lambda x: elu(x, 0.5), [0.0]), [0.5])
    np.testing.assert_array_equal(_grad_at(device, hardtanh, [-1.0, 1.0, 0.0]), [0, 0, 1])
    np.testing.assert_array_equal(_grad_at(device, relu6, [0.0, 6.0, 3.0]), [0, 0, 1])
    np.testing.assert_allclose(_grad_at(device, hardswish, [-3.0, 3.0]), [-0.5, 1.5])
    np.testing.assert_array_equal(_grad_at(device, lambda x: x.clamp(0, 1), [0.0, 1.0]), [1, 1])


def test_stability_for_large_inputs(device):
    big = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0])
    x = clgrad.tensor(big, dtype=clgrad.float32, device=device)
    # atol: results below float32's normal range (e.g. log1p(exp(-100))) are denormals, which
    # the device may compute with less precision or flush
    tiny = 1e-37
    np.testing.assert_allclose(logsigmoid(x).numpy(), -np.logaddexp(0, -big), rtol=1e-6,
                               atol=tiny)
    np.testing.assert_allclose(softplus(x).numpy(), np.logaddexp(0, big), rtol=1e-6, atol=tiny)
    np.testing.assert_allclose(x.sigmoid().numpy(), _sigmoid(big), rtol=1e-6, atol=tiny)
    np.testing.assert_allclose(silu(x).numpy(), big * _sigmoid(big), rtol=1e-6, atol=tiny)
    np.testing.assert_allclose(mish(x).numpy(), big * np.tanh(np.logaddexp(0, big)), rtol=1e-6,
                               atol=tiny)
    for fn in (logsigmoid, softplus, lambda t: t.sigmoid(), silu, mish, gelu, elu):
        xg = clgrad.tensor(big, dtype=clgrad.float32, device=device, requires_grad=True)
        fn(xg).sum().backward()
        assert np.isfinite(xg.grad.numpy()).all()


def test_nan_and_inf_propagate(device):
    x = clgrad.tensor([np.nan, np.inf, -np.inf], device=device)
    for f, ref in [(lambda t: t.exp(), np.exp), (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
                   (lambda t: t.tanh(), np.tanh), (lambda t: t.sigmoid(), _sigmoid),
                   (hardtanh, lambda a: np.clip(a, -1, 1)), (lambda t: t.abs(), np.abs)]:
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(f(x).numpy(), ref(np.array([np.nan, np.inf, -np.inf],
                                                                     np.float32)))


def test_float_results_of_integer_inputs(device):
    i = clgrad.tensor([1, 2, 4], device=device)
    for name in ("exp", "log", "sqrt", "sigmoid", "erf", "reciprocal", "rsqrt"):
        r = getattr(i, name)()
        assert r.dtype is clgrad.float32, name
    assert i.abs().dtype is clgrad.int64 and i.neg().dtype is clgrad.int64
    assert i.square().dtype is clgrad.int64
    np.testing.assert_allclose(i.log2().numpy(), [0, 1, 2])


def test_half_storage_computes_in_float(device):
    a = np.array([0.5, -1.25, 2.0], np.float16)
    x = clgrad.tensor(a, device=device)
    assert x.dtype is clgrad.float16
    r = x.exp()
    assert r.dtype is clgrad.float16
    np.testing.assert_allclose(r.numpy().astype(np.float64), np.exp(a.astype(np.float64)),
                               rtol=1e-3)
    assert (x * 2.5).dtype is clgrad.float16


def test_activation_arguments(device):
    x = clgrad.tensor([1.0], device=device)
    with pytest.raises(RuntimeError, match="approximate argument"):
        gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="min_val cannot be greater"):
        hardtanh(x, 1.0, -1.0)
