"""The primitive kernels against numpy: elementwise math, comparisons, where, casts, type
promotion, reductions and matmul, on broadcast, non-contiguous, 0-d, empty and odd-sized inputs
of every dtype."""
import numpy as np
import pytest

import clgrad
from clgrad import runtime
from clgrad.runtime import lazy
from helpers import check_op, inputs_for, make

INT_DTYPES = ["int64", "int32", "int16", "int8", "uint8"]
SHAPES_1 = [(), (1,), (7,), (3, 5), (2, 1, 9), (0, 3)]
SHAPES_2 = [[(3, 4), (3, 4)], [(3, 1), (1, 4)], [(), (2, 3)], [(5,), ()], [(0, 3), (3,)],
            [(2, 1, 5), (4, 1)], [(1,), (7, 1, 1)]]


def _floats(device):
    return ["float32", "float16"] + (["float64"] if device.has_fp64 else [])


def _np(dtype):
    return np.dtype(clgrad.dtypes.to_dtype(dtype).np)


def _tol(dtype):
    # float16 stores 11 significant bits: compare at its resolution
    return {"float16": dict(atol=1e-3, rtol=2e-3), "float64": dict(atol=1e-12, rtol=1e-10)}.get(
        dtype, dict(atol=1e-6, rtol=1e-5))


# ---- unary ---------------------------------------------------------------------------------------
UNARY = [
    ("neg", lambda x: -x, np.negative, -2, 2),
    ("exp", lambda x: x.exp(), np.exp, -2, 2),
    ("log", lambda x: x.log(), np.log, 0.1, 3),
    ("sqrt", lambda x: x.sqrt(), np.sqrt, 0.1, 4),
    ("sin", lambda x: x.sin(), np.sin, -3, 3),
    ("cos", lambda x: x.cos(), np.cos, -3, 3),
    ("tanh", lambda x: x.tanh(), np.tanh, -3, 3),
    ("sigmoid", lambda x: x.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), -4, 4),
    ("relu", lambda x: x.relu(), lambda a: np.maximum(a, 0), -2, 2),
    ("abs", lambda x: x.abs(), np.abs, -2, 2),
    ("sign", lambda x: x.sign(), np.sign, -2, 2),
    ("square", lambda x: x.square(), np.square, -2, 2),
]


@pytest.mark.parametrize("name,fn,np_fn,lo,hi", UNARY, ids=[u[0] for u in UNARY])
def test_unary_float32(device, name, fn, np_fn, lo, hi):
    for shape in SHAPES_1:
        check_op([shape], fn, np_fn, device=device, low=lo, high=hi, grad=shape == (3, 5),
                 expect_dtype="float32")


@pytest.mark.parametrize("name,fn,np_fn,lo,hi", UNARY, ids=[u[0] for u in UNARY])
def test_unary_other_floats(device, name, fn, np_fn, lo, hi):
    for dtype in _floats(device)[1:]:
        [a] = inputs_for([(4, 7)], low=lo, high=hi, seed=1)
        a = a.astype(_np(dtype))
        x = make(a, dtype, device, "permuted")
        out = fn(x)
        assert out.dtype is clgrad.dtypes.to_dtype(dtype)
        want = np_fn(a.astype(np.float64)).astype(_np(dtype))
        np.testing.assert_allclose(out.numpy().astype(np.float64), want.astype(np.float64),
                                   **_tol(dtype))


@pytest.mark.parametrize("dtype", INT_DTYPES + ["bool"])
def test_unary_integers(device, dtype):
    a = np.array([[0, 1, 5], [3, 2, 7]]).astype(_np(dtype))
    if dtype not in ("uint8", "bool"):
        a[1] = -a[1]
    x = make(a, dtype, device, "sliced")
    if dtype != "bool":
        for fn, np_fn in [(lambda t: t.abs(), np.abs),
                          (lambda t: t.relu(), lambda v: np.maximum(v, 0)),
                          (lambda t: t.sign(), np.sign), (lambda t: t * t, np.square)]:
            out = fn(x)
            assert out.dtype is x.dtype
            np.testing.assert_array_equal(out.numpy(), np_fn(a))
    if dtype not in ("uint8", "bool"):
        np.testing.assert_array_equal((-x).numpy(), -a)
    # floating functions of integers compute in the default float type
    out = x.exp()
    assert out.dtype is clgrad.float32
    np.testing.assert_allclose(out.numpy(), np.exp(a.astype(np.float64)), rtol=1e-6)
    np.testing.assert_array_equal(x.logical_not().numpy(), np.logical_not(a))


def test_isfinite_and_logical_not(device):
    a = np.array([1.0, np.nan, np.inf, -np.inf, 0.0, -2.5], np.float32)
    x = make(a, "float32", device, "sliced")
    assert x.isfinite().dtype is clgrad.bool
    np.testing.assert_array_equal(x.isfinite().numpy(), np.isfinite(a))
    np.testing.assert_array_equal(x.logical_not().numpy(), np.logical_not(a))
    np.testing.assert_array_equal(clgrad.tensor([1, 2], device=device).isfinite().numpy(),
                                  [True, True])
    # NaN passes through relu, maximum and minimum as in PyTorch
    np.testing.assert_array_equal(np.isnan(x.relu().numpy()), np.isnan(a))
    m = x.maximum(clgrad.zeros(6, device=device)).numpy()
    assert np.isnan(m[1]) and m[2] == np.inf and m[3] == 0


# ---- binary --------------------------------------------------------------------------------------
BINARY = [
    ("add", lambda a, b: a + b, np.add),
    ("sub", lambda a, b: a - b, np.subtract),
    ("mul", lambda a, b: a * b, np.multiply),
    ("div", lambda a, b: a / b, np.divide),
    ("maximum", lambda a, b: a.maximum(b), np.maximum),
    ("minimum", lambda a, b: a.minimum(b), np.minimum),
]


@pytest.mark.parametrize("name,fn,np_fn", BINARY, ids=[b[0] for b in BINARY])
def test_binary_float32(device, name, fn, np_fn):
    for shapes in SHAPES_2:
        kw = dict(low=0.5, high=2.0) if name == "div" else {}
        check_op(shapes, fn, np_fn, device=device, grad=shapes in SHAPES_2[:3],
                 expect_dtype="float32", **kw)


def test_binary_with_python_scalars(device):
    check_op([(3, 4)], lambda a: 2.5 * a - 1, lambda a: 2.5 * a - 1, device=device, grad=False)
    check_op([(3, 4)], lambda a: 1 / a, lambda a: 1 / a, device=device, low=0.5, high=2,
             grad=False)
    check_op([(3, 4)], lambda a: 3 - a, lambda a: 3 - a, device=device, grad=False)
    check_op([(5,)], lambda a: a.maximum(clgrad.tensor(0.25, device=device)),
             lambda a: np.maximum(a, 0.25), device=device, grad=False)


@pytest.mark.parametrize("dtype", INT_DTYPES + ["float16", "float64"])
def test_binary_each_dtype(device, dtype):
    if dtype == "float64" and not device.has_fp64:
        pytest.skip("no cl_khr_fp64")
    rng = np.random.default_rng(3)
    a = rng.integers(1, 11, size=(5, 6)).astype(_np(dtype))
    b = rng.integers(1, 11, size=(6,)).astype(_np(dtype))
    x, y = make(a, dtype, device, "permuted"), make(b, dtype, device, "sliced")
    for name, fn, np_fn in BINARY:
        out = fn(x, y)
        want = np_fn(a, b)
        if name == "div":
            # true division of integers gives the default float type (PyTorch's rule)
            assert out.dtype is (clgrad.float32 if dtype in INT_DTYPES
                                 else clgrad.dtypes.to_dtype(dtype))
            np.testing.assert_allclose(out.numpy().astype(np.float64),
                                       a.astype(np.float64) / b, **_tol(
                                           "float16" if dtype == "float16" else "float32"))
        else:
            assert out.dtype is clgrad.dtypes.to_dtype(dtype), name
            np.testing.assert_array_equal(out.numpy(), want.astype(_np(dtype)), err_msg=name)


def test_integer_overflow_wraps_like_torch(device):
    x = clgrad.tensor([250, 3], dtype=clgrad.uint8, device=device)
    np.testing.assert_array_equal((x + 10).numpy(), np.array([4, 13], np.uint8))
    y = clgrad.tensor([2**31 - 1], dtype=clgrad.int32, device=device)
    assert (y + 1).item() == -2**31
    z = clgrad.tensor([2**40], device=device)
    assert (z * 1000).item() == 2**40 * 1000       # int64 stays 64-bit


def test_bool_arithmetic(device):
    a = clgrad.tensor([True, False, True], device=device)
    b = clgrad.tensor([True, False, False], device=device)
    assert (a + b).dtype is clgrad.bool
    np.testing.assert_array_equal((a + b).numpy(), [True, False, True])
    np.testing.assert_array_equal((a * b).numpy(), [True, False, False])
    assert (a + 1).dtype is clgrad.int64
    np.testing.assert_array_equal((a + 1).numpy(), [2, 1, 2])
    assert (a * 1.5).dtype is clgrad.float32


# ---- type promotion ------------------------------------------------------------------------------
def _t(dtype, device, zero_d=False):
    d = getattr(clgrad, dtype) if dtype != "bool" else clgrad.bool
    return clgrad.ones((), dtype=d, device=device) if zero_d else clgrad.ones(2, dtype=d,
                                                                              device=device)


PROMOTION = [
    # (a, a is 0-d, b (dtype name or Python value), b is 0-d, expected) -- PyTorch's results
    ("int64", False, 2.5, None, "float32"),
    ("int32", False, 2.5, None, "float32"),
    ("uint8", False, "int8", False, "int16"),
    ("uint8", False, "int16", False, "int16"),
    ("uint8", False, "int32", False, "int32"),
    ("int8", False, "int16", False, "int16"),
    ("int32", False, "int64", False, "int64"),
    ("int32", False, "int64", True, "int32"),           # 0-d of the same category loses
    ("int32", False, "float64", True, "float64"),       # 0-d of a higher category wins
    ("float16", False, "float64", True, "float16"),
    ("float16", False, "int64", False, "float16"),
    ("float32", False, "float64", False, "float64"),
    ("float32", False, "float16", False, "float32"),
    ("float32", True, "float64", True, "float64"),      # both 0-d: ordinary promotion
    ("int64", True, "float16", False, "float16"),
    ("uint8", False, 300, None, "uint8"),               # Python ints keep the tensor's type
    ("int8", False, 1, None, "int8"),
    ("float16", False, 2.5, None, "float16"),
    ("bool", False, "bool", False, "bool"),
    ("bool", False, 1, None, "int64"),
    ("bool", False, 1.5, None, "float32"),
    ("bool", False, "uint8", False, "uint8"),
    ("bool", False, "float16", True, "float16"),
    ("bool", False, True, None, "bool"),
    ("int32", False, True, None, "int32"),
]


@pytest.mark.parametrize("a,a0,b,b0,want", PROMOTION, ids=[str(i) for i in range(len(PROMOTION))])
def test_type_promotion(device, a, a0, b, b0, want):
    if "float64" in (a, b, want) and not device.has_fp64:
        pytest.skip("no cl_khr_fp64")
    ta = _t(a, device, a0)
    tb = _t(b, device, b0) if isinstance(b, str) else b
    w = clgrad.dtypes.to_dtype(want)
    assert clgrad.result_type(ta, tb) is w
    out = ta + tb
    assert out.dtype is w
    assert (tb + ta).dtype is w
    assert (ta * tb).dtype is w


def test_promote_types():
    P = clgrad.promote_types
    assert P(clgrad.uint8, clgrad.int8) is clgrad.int16
    assert P(clgrad.int64, clgrad.float16) is clgrad.float16
    assert P(clgrad.bool, clgrad.int8) is clgrad.int8
    assert P(clgrad.float32, clgrad.float64) is clgrad.float64
    assert P(clgrad.int16, clgrad.int32) is clgrad.int32
    with pytest.raises(TypeError, match="at least one"):
        clgrad.result_type()


def test_out_of_category_inplace_is_refused(device):
    x = clgrad.ones(2, dtype=clgrad.int64, device=device)
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
        x.add_(1.5)
    f = clgrad.ones(2, device=device)
    f.add_(clgrad.ones(2, dtype=clgrad.int64, device=device))     # int into float is fine
    assert f.dtype is clgrad.float32 and f.tolist() == [2.0, 2.0]


# ---- comparisons and where -----------------------------------------------------------------------
CMPS = [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
        ("gt", np.greater), ("ge", np.greater_equal)]


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "int32", "uint8", "int8",
                                   "bool"])
def test_comparisons(device, dtype):
    rng = np.random.default_rng(2)
    hi = 2 if dtype == "bool" else 4
    a = rng.integers(0, hi, size=(4, 5)).astype(_np(dtype))
    b = rng.integers(0, hi, size=(5,)).astype(_np(dtype))
    x, y = make(a, dtype, device, "permuted"), make(b, dtype, device)
    for name, np_fn in CMPS:
        out = getattr(x, name)(y)
        assert out.dtype is clgrad.bool and out.shape == (4, 5)
        np.testing.assert_array_equal(out.numpy(), np_fn(a, b), err_msg=name)
        np.testing.assert_array_equal(getattr(x, name)(1).numpy(), np_fn(a, 1), err_msg=name)
    np.testing.assert_array_equal((x == y).numpy(), a == b)
    np.testing.assert_array_equal((x < y).numpy(), a < b)
    np.testing.assert_array_equal((x >= 1).numpy(), a >= 1)
    np.testing.assert_array_equal((1 > x).numpy(), 1 > a)


def test_compare_mixed_dtypes_and_nan(device):
    a = clgrad.tensor([1, 2, 3], device=device)
    b = clgrad.tensor([1.5, 2.0, np.nan], device=device)
    np.testing.assert_array_equal((a < b).numpy(), [True, False, False])
    np.testing.assert_array_equal((b == b).numpy(), [True, True, False])
    np.testing.assert_array_equal((b != b).numpy(), [False, False, True])
    np.testing.assert_array_equal((a == 2.0).numpy(), [False, True, False])


def test_where(device):
    rng = np.random.default_rng(4)
    for cs, xs, ys in [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (3, 4)), ((), (2, 3), ()),
                       ((2, 1, 5), (4, 1), (5,)), ((0, 2), (2,), (1,))]:
        cond = rng.random(cs) < 0.5
        check_op([xs, ys], lambda x, y, c=cond: clgrad.where(make(c, "bool", device, "sliced"),
                                                            x, y),
                 lambda x, y, c=cond: np.where(c, x, y), device=device, grad=cs == (3, 1))
    x = clgrad.tensor([[1.0, -2.0], [3.0, -4.0]], device=device)
    np.testing.assert_array_equal(clgrad.where(x > 0, x, 0.0).numpy(), [[1, 0], [3, 0]])
    np.testing.assert_array_equal(x.where(x < 0, 10).numpy(), [[10, -2], [10, -4]])
    i = clgrad.where(clgrad.tensor([True, False], device=device),
                     clgrad.tensor([1, 2], dtype=clgrad.int32, device=device),
                     clgrad.tensor([3.5, 4.5], device=device))
    assert i.dtype is clgrad.float32 and i.tolist() == [1.0, 4.5]


# ---- casts ---------------------------------------------------------------------------------------
CAST_DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


@pytest.mark.parametrize("src", CAST_DTYPES)
def test_casts_between_all_dtypes(device, src):
    if not device.has_fp64 and src == "float64":
        pytest.skip("no cl_khr_fp64")
    rng = np.random.default_rng(5)
    # values inside every target's range; halves and thirds make truncation and rounding visible
    if src == "bool":
        a = rng.random((3, 17)) < 0.5
    elif _np(src).kind == "f":
        a = (rng.integers(0, 120, size=(3, 17)) / rng.choice([1, 2, 3], size=(3, 17)))
        a[0, :4] = [0.0, 0.5, 0.999, 1.0]
    else:
        a = rng.integers(0, 120, size=(3, 17))
    a = a.astype(_np(src))
    for layout in ("contiguous", "permuted"):
        x = make(a, src, device, layout)
        for dst in CAST_DTYPES:
            if dst == "float64" and not device.has_fp64:
                continue
            out = x.to(clgrad.dtypes.to_dtype(dst))
            assert out.dtype is clgrad.dtypes.to_dtype(dst)
            assert out.shape == a.shape
            np.testing.assert_array_equal(out.numpy(), a.astype(_np(dst)),
                                          err_msg=f"{src} -> {dst} ({layout})")


def test_cast_methods_and_identity(device):
    x = clgrad.tensor([1.7, -2.2, 0.0], device=device)
    assert x.to(clgrad.float32) is x
    assert x.float() is x
    np.testing.assert_array_equal(x.int().numpy(), [1, -2, 0])       # truncation toward zero
    np.testing.assert_array_equal(x.long().numpy(), [1, -2, 0])
    np.testing.assert_array_equal(x.bool().numpy(), [True, True, False])
    np.testing.assert_array_equal(x.half().numpy(), np.float16([1.7, -2.2, 0.0]))
    assert x.short().dtype is clgrad.int16 and x.char().dtype is clgrad.int8
    assert clgrad.tensor([3, 4], device=device).byte().dtype is clgrad.uint8
    assert x.to("float16").dtype is clgrad.float16
    assert x.type() == "clgrad.FloatTensor"
    if device.has_fp64:
        assert x.double().dtype is clgrad.float64


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_float16_storage(device):
    # float16 values live as half in the buffer (vload_half/vstore_half), rounded to nearest even
    a = np.array([1 / 3, 65504.0, 70000.0, -1e-8, 2049.0, 0.1], np.float32)   # 70000 -> inf
    h = clgrad.tensor(a, device=device).half()
    assert h.element_size() == 2 and h.nbytes == 12
    np.testing.assert_array_equal(h.numpy(), a.astype(np.float16))
    np.testing.assert_array_equal(h.float().numpy(), a.astype(np.float16).astype(np.float32))
    s = h[:2] + clgrad.tensor([1.0, 0.0], dtype=clgrad.float16,
                                                    device=device)
    assert s.dtype is clgrad.float16
    np.testing.assert_array_equal(s.numpy(), (a[:2].astype(np.float16) +
                                              np.float16([1, 0])).astype(np.float16))


# ---- reductions ----------------------------------------------------------------------------------
RED_SHAPES = [((), None), ((7,), 0), ((3, 5), 1), ((3, 5), -2), ((4, 5, 6), (0, 2)),
              ((2, 1, 33), (1, 2)), ((1023,), None), ((3, 0), 1)]


@pytest.mark.parametrize("kind", ["sum", "mean", "amax", "amin", "prod"])
def test_float_reductions(device, kind):
    np_fn = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min,
             "prod": np.prod}[kind]
    lo, hi = (0.8, 1.25) if kind == "prod" else (-2, 2)
    for shape, dim in RED_SHAPES:
        if 0 in shape and kind in ("amax", "amin"):
            continue
        for keepdim in (False, True):
            def cl_fn(x, dim=dim, keepdim=keepdim):
                if dim is None:
                    return getattr(x, kind)() if not keepdim else \
                        getattr(x, kind)(dim=tuple(range(x.ndim)), keepdim=True)
                return getattr(x, kind)(dim=dim, keepdim=keepdim)

            def np_ref(a, dim=dim, keepdim=keepdim):
                axis = dim if dim is not None else None
                if kind == "mean" and a.size == 0:
                    return np.full(np.sum(a, axis=axis, keepdims=keepdim).shape, np.nan)
                return np_fn(a, axis=axis, keepdims=keepdim)
            check_op([shape], cl_fn, np_ref, device=device, low=lo, high=hi, atol=1e-5,
                     rtol=1e-4, grad=shape in ((3, 5), (4, 5, 6)) and keepdim is False and
                     kind != "prod" or (kind == "prod" and shape == (3, 5)))


def test_reduction_dtypes(device):
    i = clgrad.tensor([[1, 2], [3, 4]], dtype=clgrad.int32, device=device)
    assert i.sum().dtype is clgrad.int64 and i.sum().item() == 10
    assert i.prod().dtype is clgrad.int64 and i.prod().item() == 24
    assert i.amax().dtype is clgrad.int32 and i.amax().item() == 4
    b = clgrad.tensor([True, True, False], device=device)
    assert b.sum().dtype is clgrad.int64 and b.sum().item() == 2
    u = clgrad.full((300,), 200, dtype=clgrad.uint8, device=device)
    assert u.sum().item() == 60000                   # accumulates in int64, no wrap
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        i.mean()
    h = clgrad.ones(4097, dtype=clgrad.float16, device=device)
    assert h.sum().dtype is clgrad.float16 and h.sum().item() == 4096.0   # torch: 4097 -> 4096
    f = clgrad.tensor([1.0, 2.0], device=device)
    assert f.sum(dtype=clgrad.int64).dtype is clgrad.int64
    if device.has_fp64:
        assert f.mean(dtype=clgrad.float64).dtype is clgrad.float64


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "int32", "uint8", "int8",
                                   "bool"])
def test_int_and_bool_reductions(device, dtype):
    rng = np.random.default_rng(6)
    a = rng.integers(0, 2 if dtype == "bool" else 9, size=(6, 37)).astype(_np(dtype))
    a[2] = 0
    x = make(a, dtype, device, "permuted")
    for dim in (None, 1) if dtype != "float32" else (None, 0, -1):
        for keepdim in (False, True):
            kw = {} if dim is None else dict(dim=dim, keepdim=keepdim)
            npkw = dict(axis=dim, keepdims=keepdim if dim is not None else False)
            np.testing.assert_array_equal(x.all(**kw).numpy(), np.all(a, **npkw))
            np.testing.assert_array_equal(x.any(**kw).numpy(), np.any(a, **npkw))
            # PyTorch keeps uint8 for all/any of uint8 input (its legacy mask type)
            expect = clgrad.uint8 if dtype == "uint8" else clgrad.bool
            assert x.all(**kw).dtype is expect and x.any(**kw).dtype is expect
            if dtype != "bool":
                np.testing.assert_array_equal(x.amax(**kw).numpy(), np.max(a, **npkw))
                np.testing.assert_array_equal(x.amin(**kw).numpy(), np.min(a, **npkw))
                np.testing.assert_allclose(x.sum(**kw).numpy().astype(np.float64),
                                           np.sum(a.astype(np.float64), **npkw),
                                           rtol=2e-3 if dtype == "float16" else 0)
    assert clgrad.zeros(0, device=device).all().item() is True
    assert clgrad.zeros(0, device=device).any().item() is False


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
def test_argmax_argmin(device, kind):
    np_fn = getattr(np, kind)
    rng = np.random.default_rng(7)
    # float32 over every shape; other dtypes on one matrix (each dtype and rank is a program)
    for dtype in ["float32", "int64", "int32", "uint8", "float16"]:
        for shape in [(1,), (7,), (1023,), (5, 9), (3, 4, 5)] if dtype == "float32" else [(5, 9)]:
            # few distinct values: ties must resolve to the first index, as in PyTorch
            a = rng.integers(0, 5, size=shape).astype(_np(dtype))
            x = make(a, dtype, device, "permuted" if len(shape) > 1 else "sliced")
            out = getattr(x, kind)()
            assert out.dtype is clgrad.int64 and out.shape == ()
            assert out.item() == np_fn(a)
            for d in range(len(shape)):
                got = getattr(x, kind)(dim=d)
                np.testing.assert_array_equal(got.numpy(), np_fn(a, axis=d))
                kept = getattr(x, kind)(dim=d - len(shape), keepdim=True)
                np.testing.assert_array_equal(kept.numpy(),
                                              np.expand_dims(np_fn(a, axis=d), d))
    x = clgrad.tensor([[1.0, 5.0], [7.0, 2.0]], device=device)
    assert getattr(x, kind)(keepdim=True).shape == (1, 1)
    n = clgrad.tensor([1.0, np.nan, 3.0, np.nan], device=device)
    assert getattr(n, kind)().item() == 1           # NaN wins, first NaN index
    assert getattr(clgrad.tensor(2.0, device=device), kind)().item() == 0
    with pytest.raises(RuntimeError, match="Expected reduction dim"):
        getattr(clgrad.zeros(0, device=device), kind)()


def test_max_min_with_dim(device):
    rng = np.random.default_rng(8)
    a = rng.integers(0, 4, size=(4, 6)).astype(np.float32)
    x = make(a, "float32", device, "permuted")
    v, i = x.max(dim=1)
    np.testing.assert_array_equal(v.numpy(), a.max(1))
    np.testing.assert_array_equal(i.numpy(), a.argmax(1))
    v, i = x.min(dim=0, keepdim=True)
    np.testing.assert_array_equal(v.numpy(), a.min(0, keepdims=True))
    np.testing.assert_array_equal(i.numpy(), a.argmin(0)[None])
    assert x.max().item() == a.max() and x.min().item() == a.min()


def test_reduction_errors(device):
    x = clgrad.ones(2, 3, device=device)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.sum(dim=2)
    with pytest.raises(RuntimeError, match="Expected reduction dim to be specified"):
        clgrad.zeros(0, device=device).amax()


# ---- matmul --------------------------------------------------------------------------------------
MATMUL_SHAPES = [[(4,), (4,)], [(5,), (5, 3)], [(3, 5), (5,)], [(3, 5), (5, 2)], [(1, 1), (1, 1)],
                 [(7, 13), (13, 9)], [(2, 3, 5), (5, 4)], [(4,), (2, 4, 3)], [(2, 3, 4), (4,)],
                 [(2, 1, 3, 4), (5, 4, 2)], [(0, 3), (3, 4)], [(3, 0), (0, 4)],
                 [(33, 17), (17, 65)]]


def test_matmul_float32(device):
    for i, shapes in enumerate(MATMUL_SHAPES):
        check_op(shapes, lambda a, b: a @ b, np.matmul, device=device, atol=1e-5, rtol=1e-4,
                 grad=i in (0, 1, 2, 3, 6, 9), expect_dtype="float32")


@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "int32"])
def test_matmul_dtypes(device, dtype):
    if dtype == "float64" and not device.has_fp64:
        pytest.skip("no cl_khr_fp64")
    rng = np.random.default_rng(9)
    for sa, sb in [((5, 7), (7, 3)), ((2, 4, 6), (6, 5)), ((9,), (9, 2))]:
        a = rng.integers(-3, 4, size=sa).astype(_np(dtype))
        b = rng.integers(-3, 4, size=sb).astype(_np(dtype))
        out = make(a, dtype, device, "permuted") @ make(b, dtype, device, "permuted")
        assert out.dtype is clgrad.dtypes.to_dtype(dtype)
        np.testing.assert_array_equal(out.numpy(), (a.astype(np.int64) @ b).astype(_np(dtype)))


def test_matmul_named_variants(device):
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    A, B = clgrad.tensor(a, dtype=clgrad.float32, device=device), \
        clgrad.tensor(b, dtype=clgrad.float32, device=device)
    np.testing.assert_allclose(A.mm(B).numpy(), a @ b, atol=1e-5)
    np.testing.assert_allclose(clgrad.matmul(A, B).numpy(), a @ b, atol=1e-5)
    v = clgrad.tensor(b[:, 0], dtype=clgrad.float32, device=device)
    np.testing.assert_allclose(A.mv(v).numpy(), a @ b[:, 0], atol=1e-5)
    np.testing.assert_allclose(v.dot(v).numpy(), b[:, 0] @ b[:, 0], atol=1e-5)
    bb = clgrad.tensor(np.stack([a, 2 * a]), dtype=clgrad.float32, device=device)
    cc = clgrad.tensor(np.stack([b, -b]), dtype=clgrad.float32, device=device)
    np.testing.assert_allclose(bb.bmm(cc).numpy(), np.stack([a @ b, -2 * a @ b]), atol=1e-5)
    # x @ x.T of a random matrix, summed by rows (the README's first example)
    x = clgrad.randn(3, 4, device=device)
    xn = x.numpy().astype(np.float64)
    np.testing.assert_allclose((x @ x.T).sum(dim=1).numpy(), (xn @ xn.T).sum(1), atol=1e-5,
                               rtol=1e-5)


def test_matmul_errors(device):
    a = clgrad.ones(3, 4, device=device)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied \\(3x4 and 5x2\\)"):
        a @ clgrad.ones(5, 2, device=device)
    with pytest.raises(RuntimeError, match="both arguments to matmul need to be at least 1D"):
        a @ clgrad.tensor(2.0, device=device)
    with pytest.raises(RuntimeError, match="inconsistent tensor size"):
        clgrad.ones(3, device=device) @ clgrad.ones(4, device=device)
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype"):
        a @ clgrad.ones(4, 2, dtype=clgrad.int64, device=device)
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        clgrad.ones(2, 3, 4, device=device) @ clgrad.ones(3, 4, 5, device=device)


# ---- device discipline ---------------------------------------------------------------------------
def test_ops_stay_on_device(device):
    x = clgrad.randn(64, 32, device=device)
    w = clgrad.randn(32, 8, device=device)
    y = ((x @ w).relu() * 2 + 1).sum(dim=1).tanh().amax()
    runtime.reset_stats()
    y = ((x @ w).relu() * 2 + 1).sum(dim=1).tanh().amax()
    s = runtime.stats()
    assert s["d2h"] == 0 and s["h2d"] == 0, "an op read back to the host"
    # 7 launches op by op; with fusion the relu, * 2 and + 1 are one kernel
    assert s["launches"] == (5 if lazy.enabled else 7) and s["builds"] == 0
    assert np.isfinite(y.item())
