"""Binary and ternary arithmetic: forward against numpy with broadcasting and every layout,
gradients by gradcheck, Python scalars on either side, integer semantics and PyTorch's dtype
promotion."""
import warnings

import numpy as np
import pytest

import clgrad
from helpers import check_op

BROADCAST = [[(4, 5), (4, 5)], [(3, 1), (1, 4)], [(), (2, 3)], [(2, 1, 3), (3,)]]


def _np_floordiv(a, b):
    return np.floor_divide(a, b)


def _np_lerp(a, b, w):
    return np.where(np.abs(w) < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


# name: (clgrad fn, numpy fn, low, high); inputs draw uniformly from [low, high]
BINARY = {
    "add": (lambda a, b: a + b, np.add, -2, 2),
    "add_alpha": (lambda a, b: a.add(b, alpha=-1.5), lambda a, b: a - 1.5 * b, -2, 2),
    "sub": (lambda a, b: a - b, np.subtract, -2, 2),
    "sub_alpha": (lambda a, b: clgrad.sub(a, b, alpha=2), lambda a, b: a - 2 * b, -2, 2),
    "rsub": (lambda a, b: clgrad.rsub(a, b, alpha=3), lambda a, b: b - 3 * a, -2, 2),
    "mul": (lambda a, b: a * b, np.multiply, -2, 2),
    "div": (lambda a, b: a / b, np.divide, 0.5, 2),
    "div_trunc": (lambda a, b: (a - 1.25).div(b, rounding_mode="trunc"),
                  lambda a, b: np.trunc((a - 1.25) / b), 0.5, 2),
    "div_floor": (lambda a, b: (a - 1.25).div(b, rounding_mode="floor"),
                  lambda a, b: _np_floordiv(a - 1.25, b), 0.5, 2),
    "floor_divide": (lambda a, b: clgrad.floor_divide(a * 3, b - 1.2),
                     lambda a, b: _np_floordiv(a * 3, b - 1.2), 0.5, 2),
    "pow": (lambda a, b: a ** (b - 1), lambda a, b: a ** (b - 1), 0.5, 2),
    "atan2": (clgrad.atan2, np.arctan2, -2, 2),
    "maximum": (clgrad.maximum, np.maximum, -2, 2),
    "minimum": (clgrad.minimum, np.minimum, -2, 2),
    "fmod": (lambda a, b: clgrad.fmod(a * 3, b - 1.2), lambda a, b: np.fmod(a * 3, b - 1.2),
             0.5, 2),
    "remainder": (lambda a, b: clgrad.remainder(a * 3, b - 1.2),
                  lambda a, b: np.remainder(a * 3, b - 1.2), 0.5, 2),
    "clamp_min": (lambda a, b: a.clamp(min=b), np.maximum, -2, 2),
    "clamp_max": (lambda a, b: a.clamp(max=b), np.minimum, -2, 2),
    "eq_where": (lambda a, b: clgrad.where(a > b, a, b * 2), lambda a, b: np.where(a > b, a, b * 2),
                 -2, 2),
}

TERNARY = {
    "clamp": (lambda x, lo, hi: x.clamp(lo - 1, hi + 1),
              lambda x, lo, hi: np.minimum(np.maximum(x, lo - 1), hi + 1), -3, 3),
    "lerp": (clgrad.lerp, _np_lerp, -1, 2),
    "addcmul": (lambda a, b, c: clgrad.addcmul(a, b, c, value=0.5), lambda a, b, c: a + 0.5 * b * c,
                -2, 2),
    "addcdiv": (lambda a, b, c: a.addcdiv(b, c + 3, value=-2),
                lambda a, b, c: a - 2 * b / (c + 3), -2, 2),
    "where": (lambda c, a, b: clgrad.where(c > 0, a, b), lambda c, a, b: np.where(c > 0, a, b),
              -2, 2),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(device, name):
    fn, ref, low, high = BINARY[name]
    check_op([(4, 5), (4, 5)], fn, ref, device=device, low=low, high=high)


@pytest.mark.parametrize("shapes", BROADCAST[1:] + [[(0, 3), (3,)]])
@pytest.mark.parametrize("name", ["div", "pow", "maximum"])
def test_binary_broadcast(device, name, shapes):
    fn, ref, low, high = BINARY[name]
    check_op(shapes, fn, ref, device=device, low=low, high=high,
             grad=not any(0 in s for s in shapes))


@pytest.mark.parametrize("name", sorted(TERNARY))
def test_ternary(device, name):
    fn, ref, low, high = TERNARY[name]
    check_op([(3, 4), (4,), (3, 1)], fn, ref, device=device, low=low, high=high)


SCALAR_CASES = {
    "radd": (lambda a: 2.5 + a, lambda a: 2.5 + a),
    "rsub": (lambda a: 2 - a, lambda a: 2 - a),
    "rmul": (lambda a: -3 * a, lambda a: -3 * a),
    "rdiv": (lambda a: 1.5 / a, lambda a: 1.5 / a),
    "rpow": (lambda a: 2 ** a, lambda a: 2.0 ** a),
    "pow_int": (lambda a: a ** 3, lambda a: a ** 3),
    "pow_half": (lambda a: a ** 0.5, lambda a: a ** 0.5),
    "pow_zero": (lambda a: a ** 0, lambda a: a ** 0),
    "rfloordiv": (lambda a: 5 // a, lambda a: 5 // a),
    "mod": (lambda a: a % 0.7, lambda a: np.remainder(a, 0.7)),
    "rmod": (lambda a: 5 % a, lambda a: np.remainder(5, a)),
    "rpow_fn": (lambda a: clgrad.pow(3.0, a), lambda a: 3.0 ** a),
    "clamp_scalars": (lambda a: a.clip(0.6, 1.4), lambda a: np.clip(a, 0.6, 1.4)),
    "lerp_scalar": (lambda a: a.lerp(a * 2, 0.3), lambda a: a + 0.3 * a),
    "round_dec": (lambda a: a.round(decimals=1) + a, lambda a: np.round(a, 1) + a),
}


@pytest.mark.parametrize("name", sorted(SCALAR_CASES))
def test_scalar_operands(device, name):
    fn, ref = SCALAR_CASES[name]
    check_op([(2, 3)], fn, ref, device=device, low=0.3, high=2)


def test_pow_exponent_gradient_at_zero_base(device):
    # PyTorch masks d(x**y)/dy where x == 0 and y >= 0 (instead of 0 * log 0 = nan)
    x = clgrad.tensor([0.0, 0.0, 2.0], device=device)
    y = clgrad.tensor([2.0, 0.0, 3.0], device=device, requires_grad=True)
    (x ** y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0, 0, 8 * np.log(2)], rtol=1e-6)
    z = clgrad.tensor([0.0, 1.5], device=device, requires_grad=True)
    (z ** 0).sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0, 0])


def test_maximum_ties_and_nan(device):
    a = clgrad.tensor([1.0, np.nan, 2.0, 3.0], device=device, requires_grad=True)
    b = clgrad.tensor([1.0, 0.0, np.nan, 1.0], device=device, requires_grad=True)
    m = clgrad.maximum(a, b)
    np.testing.assert_array_equal(m.detach().numpy(), [1.0, np.nan, np.nan, 3.0])
    np.testing.assert_array_equal(clgrad.minimum(a, b).detach().numpy(),
                                  [1.0, np.nan, np.nan, 1.0])
    clgrad.maximum(a, b)[0].backward()
    np.testing.assert_array_equal(a.grad.numpy()[:1], [0.5])   # ties split the gradient
    np.testing.assert_array_equal(b.grad.numpy()[:1], [0.5])


def test_clamp_nan_and_bounds(device):
    x = clgrad.tensor([np.nan, -5.0, 0.5, 5.0], device=device)
    np.testing.assert_array_equal(x.clamp(-1, 1).numpy(), [np.nan, -1, 0.5, 1])
    np.testing.assert_array_equal(x.clamp(min=float("nan")).numpy(), [np.nan] * 4)
    # min > max: every element becomes max, as in PyTorch
    np.testing.assert_array_equal(x[1:].clamp(2, 1).numpy(), [1, 1, 1])
    lo = clgrad.tensor([0.0, np.nan, 0.0, 0.0], device=device)
    np.testing.assert_array_equal(x.clamp(min=lo).numpy(), [np.nan, np.nan, 0.5, 5.0])
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        x.clamp()


def test_clamp_tensor_bound_gradients(device):
    x = clgrad.tensor([-2.0, 0.5, 3.0], device=device, requires_grad=True)
    lo = clgrad.tensor([-1.0, -1.0, -1.0], device=device, requires_grad=True)
    hi = clgrad.tensor([1.0, 1.0, 1.0], device=device, requires_grad=True)
    x.clamp(lo, hi).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 0])
    np.testing.assert_array_equal(lo.grad.numpy(), [1, 0, 0])
    np.testing.assert_array_equal(hi.grad.numpy(), [0, 0, 1])


def test_float_division_modes(device):
    a = np.array([7.0, -7.0, 7.0, -7.0, 0.5, -0.0, 5.0])
    b = np.array([2.0, 2.0, -2.0, -2.0, 0.0, 3.0, 0.0])
    x = clgrad.tensor(a, device=device, dtype=clgrad.float64)
    y = clgrad.tensor(b, device=device, dtype=clgrad.float64)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal((x // y).numpy(), np.floor_divide(a, b))
        np.testing.assert_array_equal(x.div(y, rounding_mode="trunc").numpy(), np.trunc(a / b))
        np.testing.assert_array_equal((x % y).numpy(), np.remainder(a, b))
        np.testing.assert_array_equal(clgrad.fmod(x, y).numpy(), np.fmod(a, b))
    with pytest.raises(ValueError, match="rounding_mode"):
        x.div(y, rounding_mode="round")


INT_CASES = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "floordiv": (lambda a, b: a // b, np.floor_divide),
    "trunc_div": (lambda a, b: a.div(b, rounding_mode="trunc"),
                  lambda a, b: np.trunc(a / b).astype(a.dtype)),
    "remainder": (lambda a, b: a % b, np.remainder),
    "fmod": (clgrad.fmod, np.fmod),
    "maximum": (clgrad.maximum, np.maximum),
    "minimum": (clgrad.minimum, np.minimum),
    "clamp": (lambda a, b: a.clamp(b - 2, b + 2), lambda a, b: np.clip(a, b - 2, b + 2)),
    "pow": (lambda a, b: a ** b.abs(), lambda a, b: a ** np.abs(b)),
}


# int32's MIN / -1 guard has its own test below; int64 and uint8 cover signed and unsigned
@pytest.mark.parametrize("dtype", ["int64", "uint8"])
@pytest.mark.parametrize("name", sorted(INT_CASES))
def test_integer_arithmetic(device, name, dtype):
    fn, ref = INT_CASES[name]
    rng = np.random.default_rng(3)
    lo = 0 if dtype == "uint8" else -9
    a = rng.integers(lo, 10, (3, 4)).astype(dtype)
    b = rng.integers(1, 4, (4,)).astype(dtype)
    if name in ("floordiv", "remainder", "fmod", "trunc_div") and dtype != "uint8":
        b[::2] *= -1
    expect = ref(a, b).astype(dtype)
    # one strided layout: the layout machinery is the same for every dtype (tested on floats)
    check_op(None, fn, lambda *_: expect, device=device, inputs=[a, b], expect_dtype=dtype,
             grad=False, layouts=("permuted",))


def test_integer_division_by_zero_does_not_crash(device):
    a = clgrad.tensor([5, -5, 0, -2**63], device=device)
    z = clgrad.tensor([0, 0, 0, -1], device=device)
    # the kernels never trap (a zero divisor computes 0 there); the next sync raises PyTorch's
    # ZeroDivisionError (tests/test_faults.py), and the process carries on
    for f in (lambda: a // z, lambda: a % z, lambda: clgrad.fmod(a, z),
              lambda: a.div(z, rounding_mode="trunc")):
        out = f()
        with pytest.raises(ZeroDivisionError, match="ZeroDivisionError"):
            out.numpy()
        assert out.numpy()[:3].tolist() == [0, 0, 0]
    one = clgrad.tensor([1, 1, 1, -1], device=device)
    assert (a // one).numpy()[3] == -2**63                  # MIN // -1 wraps, as in numpy
    i32 = clgrad.tensor([7, -2**31], dtype=clgrad.int32, device=device)
    np.testing.assert_array_equal((i32 // -1).numpy(), [-7, -2**31])
    with pytest.raises(ZeroDivisionError):
        i32 // 0
    assert (a / z).dtype is clgrad.float32              # true division gives inf, not a trap


def test_integer_pow(device):
    b = clgrad.tensor([2, -3, 1, -1, 0, 5], device=device)
    e = clgrad.tensor([10, 3, -4, -3, 0, -1], device=device)
    np.testing.assert_array_equal((b ** e).numpy(), [1024, -27, 1, -1, 1, 0])
    assert (b ** 2).dtype is clgrad.int64
    assert (2 ** b.abs()).dtype is clgrad.int64
    assert (b ** 0.5).dtype is clgrad.float32
    assert (2.0 ** b).dtype is clgrad.float32
    with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
        b ** -1


def test_type_promotion(device):
    i = clgrad.tensor([1, 2, 3], device=device)
    i32 = clgrad.tensor([1, 2, 3], dtype=clgrad.int32, device=device)
    f = clgrad.tensor([1.0, 2.0, 3.0], device=device)
    d = clgrad.tensor([1.0, 2.0, 3.0], dtype=clgrad.float64, device=device)
    b = clgrad.tensor([True, False, True], device=device)
    assert (i / 2).dtype is clgrad.float32
    assert (i / i).dtype is clgrad.float32
    assert (i + 2.5).dtype is clgrad.float32
    np.testing.assert_allclose((i + 2.5).numpy(), [3.5, 4.5, 5.5])
    assert (i32 + 1).dtype is clgrad.int32
    assert (i32 + i).dtype is clgrad.int64
    assert (i32 * f).dtype is clgrad.float32
    assert (f + d).dtype is clgrad.float64
    assert (b + b).dtype is clgrad.bool
    assert (b + 1).dtype is clgrad.int64
    assert (b * 1.5).dtype is clgrad.float32
    assert (i // 2).dtype is clgrad.int64
    assert (i % 2).dtype is clgrad.int64
    assert (f < 2).dtype is clgrad.bool
    assert (i32 + clgrad.tensor(5, device=device)).dtype is clgrad.int32   # 0-d does not win
    assert clgrad.clamp(i, 0.5).dtype is clgrad.float32
    if device.has_fp64:
        fp = clgrad.float_power(i, 2)
        assert fp.dtype is clgrad.float64
        np.testing.assert_array_equal(fp.numpy(), [1, 4, 9])
    with pytest.raises(RuntimeError, match="alpha must not be a floating"):
        i.add(i, alpha=0.5)
    with pytest.raises(RuntimeError, match="Integer division with addcdiv"):
        f.addcdiv(i, i)
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool"):
        b - b
    with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool"):
        -b


def test_numpy_scalar_and_reflected(device):
    x = clgrad.tensor([1.0, 2.0], device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = np.float64(2.0) * x
    assert isinstance(r, clgrad.Tensor)
    np.testing.assert_allclose(r.numpy(), [2, 4])
    np.testing.assert_allclose((3 - x).numpy(), [2, 1])
    np.testing.assert_allclose((+x).numpy(), [1, 2])
    np.testing.assert_allclose(abs(-x).numpy(), [1, 2])
