"""Comparisons, closeness, classification (isnan...), logical and bitwise ops, and the in-place
variants with their version counters and autograd rules."""
import numpy as np
import pytest

import clgrad
from helpers import check_op as _check_op
from helpers import make


def check_op(*args, **kw):
    # comparisons, logic and bitwise ops have no gradient to check
    return _check_op(*args, grad=False, **kw)

CMP = {
    "eq": (lambda a, b: a == b, np.equal), "ne": (lambda a, b: a != b, np.not_equal),
    "lt": (lambda a, b: a < b, np.less), "le": (clgrad.less_equal, np.less_equal),
    "gt": (clgrad.greater, np.greater), "ge": (lambda a, b: a >= b, np.greater_equal),
}


@pytest.mark.parametrize("name", sorted(CMP))
def test_compare(device, name):
    fn, ref = CMP[name]
    rng = np.random.default_rng(0)
    a = rng.integers(-2, 3, (3, 4)).astype(np.float64)    # small integers give ties
    b = rng.integers(-2, 3, (4,)).astype(np.float64)
    check_op(None, fn, ref, device=device, inputs=[a, b], expect_dtype="bool")
    one = ("sliced",)     # other dtypes and scalar operands: one strided layout is enough
    check_op(None, fn, ref, device=device, inputs=[a.astype(np.int32), b.astype(np.int64)],
             expect_dtype="bool", layouts=one)
    check_op(None, lambda x: fn(x, 0.5), lambda x: ref(x, 0.5), device=device, inputs=[a],
             layouts=one)
    check_op(None, lambda x: fn(1, x), lambda x: ref(1, x), device=device, inputs=[a],
             layouts=one)


def test_compare_nan(device):
    x = clgrad.tensor([np.nan, 1.0], device=device)
    np.testing.assert_array_equal((x == x).numpy(), [False, True])
    np.testing.assert_array_equal((x != x).numpy(), [True, False])
    np.testing.assert_array_equal((x < 2).numpy(), [False, True])


def test_classify(device):
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, -1.5, 3e38], np.float32)
    x = make(vals, "float32", device, "sliced")
    for name, ref in [("isnan", np.isnan), ("isinf", np.isinf), ("isposinf", np.isposinf),
                      ("isneginf", np.isneginf), ("isfinite", np.isfinite)]:
        r = getattr(clgrad, name)(x)
        assert r.dtype is clgrad.bool
        np.testing.assert_array_equal(r.numpy(), ref(vals), err_msg=name)
        ri = getattr(x.new_tensor([1, 2], dtype=clgrad.int32), name)()
        np.testing.assert_array_equal(ri.numpy(), ref(np.array([1, 2])), err_msg=name)


@pytest.mark.parametrize("equal_nan", [False, True])
def test_isclose(device, equal_nan):
    a = np.array([1.0, 1.0 + 1e-6, 1.0, np.inf, np.inf, np.nan, 0.0, 1e-9, 100.0])
    b = np.array([1.0, 1.0, 1.001, np.inf, -np.inf, np.nan, 1e-9, 0.0, 100.1])
    x, y = (clgrad.tensor(v, dtype=clgrad.float64, device=device) for v in (a, b))
    for rtol, atol in [(1e-5, 1e-8), (1e-2, 0.0), (0.0, 0.2)]:
        got = clgrad.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan).numpy()
        np.testing.assert_array_equal(got, np.isclose(a, b, rtol, atol, equal_nan))
    assert x.isclose(y).dtype is clgrad.bool
    assert clgrad.allclose(x[:3], y[:3], rtol=1e-2) is True
    assert clgrad.allclose(x[:3], y[:3]) is False
    assert x[5:6].allclose(y[5:6], equal_nan=True) is True
    i = clgrad.tensor([100, 101], device=device)
    np.testing.assert_array_equal(clgrad.isclose(i, clgrad.tensor([101, 101], device=device),
                                                 rtol=0.02).numpy(), [True, True])
    with pytest.raises(RuntimeError, match="did not match"):
        clgrad.isclose(x, x.float())


def test_equal(device):
    x = clgrad.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    assert clgrad.equal(x, x.T.T.clone()) is True
    assert clgrad.equal(x, x.T) is False
    assert x.equal(x.reshape(4)) is False


LOGIC = {
    "logical_and": (clgrad.logical_and, np.logical_and),
    "logical_or": (clgrad.logical_or, np.logical_or),
    "logical_xor": (clgrad.logical_xor, np.logical_xor),
}


@pytest.mark.parametrize("name", sorted(LOGIC))
def test_logical(device, name):
    fn, ref = LOGIC[name]
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 4)) < 0.5, rng.random((4,)) < 0.5
    check_op(None, fn, ref, device=device, inputs=[a, b], expect_dtype="bool")
    f = rng.integers(-1, 2, (3, 4)).astype(np.float64)
    check_op(None, fn, ref, device=device, inputs=[f, b], expect_dtype="bool",
             layouts=("sliced",))
    check_op(None, lambda x: x.logical_not(), np.logical_not, device=device, inputs=[f],
             layouts=("sliced",))


BITWISE = {
    "and": (lambda a, b: a & b, np.bitwise_and),
    "or": (lambda a, b: a | b, np.bitwise_or),
    "xor": (lambda a, b: a ^ b, np.bitwise_xor),
    "lshift": (lambda a, b: a << b, np.left_shift),
    "rshift": (lambda a, b: a >> b, np.right_shift),
}


@pytest.mark.parametrize("dtype", ["int64", "uint8"])
@pytest.mark.parametrize("name", sorted(BITWISE))
def test_bitwise(device, name, dtype):
    fn, ref = BITWISE[name]
    rng = np.random.default_rng(2)
    lo = 0 if dtype == "uint8" else -50
    a = rng.integers(lo, 50, (3, 4)).astype(dtype)
    b = rng.integers(0, 6, (4,)).astype(dtype)
    one = ("permuted",)   # the layout machinery is the same for every dtype (tested on floats)
    check_op(None, fn, lambda x, y: ref(x, y).astype(dtype), device=device, inputs=[a, b],
             expect_dtype=dtype, layouts=one)
    check_op(None, lambda x: fn(x, 3), lambda x: ref(x, 3).astype(dtype), device=device,
             inputs=[a], layouts=one)
    check_op(None, lambda x: ~x, np.invert, device=device, inputs=[a], layouts=one)


def test_bitwise_bool_and_errors(device):
    rng = np.random.default_rng(4)
    a, b = rng.random(6) < 0.5, rng.random(6) < 0.5
    x, y = clgrad.tensor(a, device=device), clgrad.tensor(b, device=device)
    for fn, ref in [(lambda p, q: p & q, np.bitwise_and), (lambda p, q: p | q, np.bitwise_or),
                    (lambda p, q: p ^ q, np.bitwise_xor)]:
        r = fn(x, y)
        assert r.dtype is clgrad.bool
        np.testing.assert_array_equal(r.numpy(), ref(a, b))
    np.testing.assert_array_equal((~x).numpy(), ~a)
    np.testing.assert_array_equal((x & True).numpy(), a)
    i = clgrad.tensor([5, 12], device=device)
    np.testing.assert_array_equal((3 & i).numpy(), [1, 0])
    np.testing.assert_array_equal((1 << i).numpy(), [32, 4096])
    np.testing.assert_array_equal((i << 64).numpy(), [0, 0])        # PyTorch's overshift
    np.testing.assert_array_equal((-i >> 70).numpy(), [-1, -1])
    with pytest.raises(RuntimeError, match="not implemented for 'Float'"):
        clgrad.tensor([1.0], device=device) & clgrad.tensor([1.0], device=device)


# ---- in place ---------------------------------------------------------------------------------
INPLACE = {
    "add_": (lambda t, o: t.add_(o, alpha=2), lambda a, b: a + 2 * b),
    "sub_": (lambda t, o: t.sub_(o), lambda a, b: a - b),
    "mul_": (lambda t, o: t.mul_(o), lambda a, b: a * b),
    "div_": (lambda t, o: t.div_(o), lambda a, b: a / b),
    "pow_": (lambda t, o: t.pow_(o), lambda a, b: a ** b),
    "clamp_": (lambda t, o: t.clamp_(o - 0.5, o + 0.5), lambda a, b: np.clip(a, b - 0.5, b + 0.5)),
    "clamp_min_": (lambda t, o: t.clamp_min_(o), np.maximum),
    "clamp_max_": (lambda t, o: t.clamp_max_(1.0), lambda a, b: np.minimum(a, 1.0)),
    "lerp_": (lambda t, o: t.lerp_(o, 0.25), lambda a, b: a + 0.25 * (b - a)),
    "addcmul_": (lambda t, o: t.addcmul_(o, o, value=2), lambda a, b: a + 2 * b * b),
    "addcdiv_": (lambda t, o: t.addcdiv_(o, o + 1), lambda a, b: a + b / (b + 1)),
    "neg_": (lambda t, o: t.neg_(), lambda a, b: -a),
    "abs_": (lambda t, o: (t - 1).abs_(), lambda a, b: np.abs(a - 1)),
    "exp_": (lambda t, o: t.exp_(), lambda a, b: np.exp(a)),
    "log_": (lambda t, o: t.log_(), lambda a, b: np.log(a)),
    "sqrt_": (lambda t, o: t.sqrt_(), lambda a, b: np.sqrt(a)),
    "sigmoid_": (lambda t, o: t.sigmoid_(), lambda a, b: 1 / (1 + np.exp(-a))),
    "tanh_": (lambda t, o: t.tanh_(), lambda a, b: np.tanh(a)),
    "relu_": (lambda t, o: (t - 1).relu_(), lambda a, b: np.maximum(a - 1, 0)),
    "floor_": (lambda t, o: (t * 3).floor_(), lambda a, b: np.floor(a * 3)),
    "ceil_": (lambda t, o: (t * 3).ceil_(), lambda a, b: np.ceil(a * 3)),
    "round_": (lambda t, o: (t * 3).round_(), lambda a, b: np.round(a * 3)),
    "trunc_": (lambda t, o: (t * 3).trunc_(), lambda a, b: np.trunc(a * 3)),
    "iadd": (lambda t, o: _iop(t, o, "__iadd__"), lambda a, b: a + b),
    "imul": (lambda t, o: _iop(t, o, "__imul__"), lambda a, b: a * b),
    "itruediv": (lambda t, o: _iop(t, o, "__itruediv__"), lambda a, b: a / b),
    "ipow": (lambda t, o: _iop(t, o, "__ipow__"), lambda a, b: a ** b),
}


def _iop(t, o, name):
    return getattr(t, name)(o)


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace(device, name):
    """On a non-leaf (t * 1 keeps the graph): forward into the same storage, correct gradients
    through the in-place node (gradcheck in float64), and a bumped version counter."""
    fn, ref = INPLACE[name]

    def cl(a, b):
        t = a * 1
        buf, version = t._buf, t._buf.version
        r = fn(t, b)
        assert r._buf is buf or name in ("abs_", "relu_", "floor_", "ceil_", "round_", "trunc_")
        assert r._buf.version > version
        return r

    # one layout: t = a * 1 is a fresh contiguous tensor whatever a's layout
    _check_op([(3, 4), (4,)], cl, ref, device=device, low=0.5, high=2, layouts=("sliced",))


def test_inplace_fast_path_writes_storage(device):
    x = clgrad.tensor([1.0, 4.0, 9.0], device=device)
    v0 = x._buf.version
    y = x.sqrt_()
    assert y is x and x._buf.version == v0 + 1
    np.testing.assert_allclose(x.numpy(), [1, 2, 3])
    x.add_(1).mul_(2).clamp_(max=7)
    np.testing.assert_allclose(x.numpy(), [4, 6, 7])
    i = clgrad.tensor([1, 2], device=device)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired "
                                           "output type Long"):
        i.div_(2)
    i //= 2
    np.testing.assert_array_equal(i.numpy(), [0, 1])
    f = clgrad.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
        i.add_(f * 1)               # the recorded (autograd) path checks the dtype too


def test_inplace_on_leaf_requiring_grad_raises(device):
    x = clgrad.tensor([1.0, 2.0], device=device, requires_grad=True)
    for f in (lambda: x.add_(1), lambda: x.exp_(), lambda: x.clamp_(0, 1),
              lambda: x.mul_(2), lambda: clgrad.relu_(x)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being "
                                               "used in an in-place operation"):
            f()
    with clgrad.no_grad():
        x.mul_(2)
    np.testing.assert_allclose(x.detach().numpy(), [2, 4])


def test_inplace_gradients_on_non_leaf(device):
    x = clgrad.tensor([0.5, -1.0, 2.0], dtype=clgrad.float64, device=device, requires_grad=True)
    w = clgrad.tensor([2.0, 3.0, -1.0], dtype=clgrad.float64, device=device, requires_grad=True)
    y = x * 1
    y.mul_(w).exp_().add_(x, alpha=2)       # y = exp(x * w) + 2x
    y.sum().backward()
    xv, wv = np.array([0.5, -1.0, 2.0]), np.array([2.0, 3.0, -1.0])
    np.testing.assert_allclose(x.grad.numpy(), wv * np.exp(xv * wv) + 2, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), xv * np.exp(xv * wv), rtol=1e-12)


def test_inplace_on_saved_tensor_raises(device):
    x = clgrad.tensor([0.5, 1.0], device=device, requires_grad=True)
    y = x * 1
    z = y.sin()                              # saves y
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_functional_inplace_activations(device):
    from clgrad.tensor.activation import elu, hardtanh, leaky_relu
    x = clgrad.tensor([-2.0, 0.5, 3.0], device=device)
    assert leaky_relu(x, 0.5, inplace=True) is x
    np.testing.assert_allclose(x.numpy(), [-1.0, 0.5, 3.0])
    assert hardtanh(x, inplace=True) is x
    np.testing.assert_allclose(x.numpy(), [-1.0, 0.5, 1.0])
    assert elu(x, inplace=True) is x
    np.testing.assert_allclose(x.numpy(), [np.expm1(-1.0), 0.5, 1.0], rtol=1e-6)
