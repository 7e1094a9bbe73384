"""Reductions, scans, softmax and norms against numpy (float64), with gradcheck in float64."""
import math

import numpy as np
import pytest

import clgrad
from clgrad import runtime
from clgrad.autograd import gradcheck, gradgradcheck
from helpers import check_op


def _gg(fn, inputs):
    """gradgradcheck, building the first gradient with grad mode on (gradcheck's probes run
    under no_grad)."""
    def f(*a):
        with clgrad.enable_grad():
            return fn(*a)
    return gradgradcheck(f, inputs)


def _t(arr, device, grad=False):
    return clgrad.tensor(np.asarray(arr, dtype=np.float64), device=device, requires_grad=grad)


# ---- sum / mean / prod / amax / amin / nansum / logsumexp over every kind of dim ----------------
DIMS = [(None, False), (1, False), (-1, True), ((0, 2), False), ((2, 0), True), ((-3, -2), False)]


def _npdim(d):
    return d if d is None or isinstance(d, int) else tuple(d)


def _np_lse(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


REDUCTIONS = {
    "sum": (lambda x, d, k: x.sum(d, k), lambda a, d, k: a.sum(axis=d, keepdims=k)),
    "mean": (lambda x, d, k: x.mean(d, k), lambda a, d, k: a.mean(axis=d, keepdims=k)),
    "prod": (lambda x, d, k: x.prod(d, k), lambda a, d, k: a.prod(axis=d, keepdims=k)),
    "amax": (lambda x, d, k: x.amax(() if d is None else d, k),
             lambda a, d, k: a.max(axis=d, keepdims=k)),
    "amin": (lambda x, d, k: x.amin(() if d is None else d, k),
             lambda a, d, k: a.min(axis=d, keepdims=k)),
    "nansum": (lambda x, d, k: x.nansum(d, k), lambda a, d, k: np.nansum(a, axis=d, keepdims=k)),
    "logsumexp": (lambda x, d, k: x.logsumexp(d, k), _np_lse),
}


@pytest.mark.parametrize("dim,keepdim", DIMS)
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions(device, name, dim, keepdim):
    cl, ref = REDUCTIONS[name]
    check_op([(2, 3, 4)], lambda x: cl(x, dim, keepdim),
             lambda a: ref(a, _npdim(dim), keepdim), device=device, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions_small_shapes(device, name):
    cl, ref = REDUCTIONS[name]
    check_op([()], lambda x: cl(x, None, False), lambda a: ref(a, None, False), device=device)
    check_op([()], lambda x: cl(x, 0, True), lambda a: ref(a, None, True), device=device)
    check_op([(1, 5)], lambda x: cl(x, 0, False), lambda a: ref(a, 0, False), device=device,
             atol=1e-5)


def test_sum_dtype_and_ints(device):
    x = clgrad.tensor([[1, 2], [3, 4]], dtype=clgrad.int32, device=device)
    assert x.sum().dtype is clgrad.int64 and x.sum().item() == 10
    np.testing.assert_array_equal(x.sum(0).numpy(), [4, 6])
    assert x.prod().dtype is clgrad.int64 and x.prod().item() == 24
    b = clgrad.tensor([True, False, True], device=device)
    assert b.sum().dtype is clgrad.int64 and b.sum().item() == 2
    assert x.sum(dtype=clgrad.float64).dtype is clgrad.float64
    assert x.sum(dtype=clgrad.float64).item() == 10.0
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        x.mean()
    assert x.mean(dtype=clgrad.float32).item() == 2.5
    check_op([(3, 4)], lambda a: a.sum(1), lambda a: a.sum(1), device=device, dtype="int64",
             low=-50, high=50, expect_dtype="int64")


def test_empty_reductions(device):
    e = clgrad.zeros(0, 3, device=device)
    assert e.sum().item() == 0 and e.prod().item() == 1
    np.testing.assert_array_equal(e.sum(0).numpy(), np.zeros(3))
    np.testing.assert_array_equal(e.prod(0).numpy(), np.ones(3))
    assert math.isnan(e.mean().item())
    assert e.sum(1).shape == (0,)
    with pytest.raises(RuntimeError, match="Expected reduction dim to be specified"):
        e.max()
    with pytest.raises(RuntimeError, match="Expected reduction dim 0 to have non-zero size"):
        e.amax(0)
    with pytest.raises(RuntimeError, match="Expected reduction dim to be specified"):
        e.argmax()
    v, i = e.max(1)
    assert v.shape == (0,) and i.shape == (0,) and i.dtype is clgrad.int64
    assert e.logsumexp(0).numpy().tolist() == [-math.inf] * 3


def test_dims_errors(device):
    x = clgrad.ones(2, 3, device=device)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.sum(2)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        x.sum((0, -2))
    assert x.sum([]).item() == 6.0     # an empty dim list reduces everything, as in PyTorch


def test_prod_grad_with_zeros(device):
    a = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 1.0], [1.0, 2.0, -3.0, 0.5]])
    for fn in (lambda t: t.prod(1), lambda t: t.prod(0, keepdim=True), lambda t: t.prod()):
        assert gradcheck(fn, [_t(a, device, True)])
    x = _t(a, device, True)
    x.prod(1).sum().backward()
    expect = np.array([[0, -3, 0, 0], [0, 0, 0, 0], [-3, -1.5, 1, -6]])
    np.testing.assert_allclose(x.grad.numpy(), expect)
    assert _gg(lambda t: t.prod(1), [_t(a[2:], device, True)])


# ---- max / min / argmax / argmin ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["max", "min"])
def test_max_min_dim(device, kind):
    npv = np.max if kind == "max" else np.min
    npi = np.argmax if kind == "max" else np.argmin
    for dim, keep in ((1, False), (-1, True), (0, False)):
        check_op([(3, 4, 5)], lambda x: tuple(getattr(x, kind)(dim, keep)),
                 lambda a: (npv(a, dim, keepdims=keep), npi(a, dim, keepdims=keep)),
                 device=device)
    check_op([(3, 4)], lambda x: getattr(x, kind)(), lambda a: npv(a), device=device)
    check_op([(3, 4), (4,)], lambda x, y: getattr(x, kind)(y),
             lambda a, b: np.maximum(a, b) if kind == "max" else np.minimum(a, b),
             device=device)
    check_op([()], lambda x: tuple(getattr(x, kind)(0)), lambda a: (a, np.array(0)),
             device=device)


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
def test_argmax_argmin(device, kind):
    npf = getattr(np, kind)
    check_op([(3, 4, 5)], lambda x: getattr(x, kind)(), lambda a: npf(a), device=device,
             grad=False)
    check_op([(3, 4, 5)], lambda x: getattr(x, kind)(1), lambda a: npf(a, 1), device=device,
             grad=False)
    check_op([(3, 4, 5)], lambda x: getattr(x, kind)(-1, True),
             lambda a: npf(a, -1, keepdims=True), device=device, grad=False)
    # first occurrence on ties; NaN counts as the extreme (first NaN wins), like numpy and torch
    a = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, np.nan, 5.0, np.nan], [-1.0, -1.0, 4.0, 4.0]])
    x = clgrad.tensor(a, device=device)
    np.testing.assert_array_equal(getattr(x, kind)(1).numpy(), npf(a, 1))
    assert getattr(x, kind)().item() == npf(a)
    ints = np.array([[3, 7, 7], [-2, -5, -5]])
    xi = clgrad.tensor(ints, device=device)
    np.testing.assert_array_equal(getattr(xi, kind)(1).numpy(), npf(ints, 1))


def test_max_gradients_ties(device):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [5.0, 5.0, 5.0]])
    # amax / full max: ties share the gradient evenly
    for fn in (lambda t: t.amax(1), lambda t: t.max(1).values * 0 + t.amax(1)):
        x = _t(a, device, True)
        fn(x).sum().backward()
        mask = (a == a.max(1, keepdims=True))
        np.testing.assert_allclose(x.grad.numpy(), mask / mask.sum(1, keepdims=True))
    x = _t(a, device, True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), (a == 5.0) / 3.0)
    # max(dim): the whole gradient goes to the returned index
    x = _t(a, device, True)
    v, i = x.max(1)
    v.sum().backward()
    expect = np.zeros_like(a)
    expect[np.arange(3), i.numpy()] = 1.0
    np.testing.assert_allclose(x.grad.numpy(), expect)
    assert i.numpy().tolist() == [1, 0, 0]


# ---- var / std ----------------------------------------------------------------------------------
@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std(device, correction):
    c = correction
    check_op([(2, 3, 4)], lambda x: x.var(1, correction=c),
             lambda a: a.var(1, ddof=c), device=device, atol=1e-5)
    check_op([(2, 3, 4)], lambda x: x.std((0, 2), keepdim=True, correction=c),
             lambda a: a.std((0, 2), ddof=c, keepdims=True), device=device, atol=1e-5)
    check_op([(3, 4)], lambda x: x.var(correction=c), lambda a: a.var(ddof=c), device=device,
             atol=1e-5)


def test_var_std_legacy_and_pairs(device):
    check_op([(4, 5)], lambda x: x.var(1, False), lambda a: a.var(1), device=device)
    check_op([(4, 5)], lambda x: x.std(unbiased=True), lambda a: a.std(ddof=1), device=device)
    check_op([(4, 5)], lambda x: x.std(True), lambda a: a.std(ddof=1), device=device)
    check_op([(4, 5)], lambda x: clgrad.var_mean(x, -1),
             lambda a: (a.var(-1, ddof=1), a.mean(-1)), device=device)
    check_op([(4, 5)], lambda x: clgrad.std_mean(x, 0, keepdim=True, correction=0),
             lambda a: (a.std(0, keepdims=True), a.mean(0, keepdims=True)), device=device)
    x = clgrad.ones(3, device=device)
    with pytest.raises(RuntimeError, match="only support floating point"):
        clgrad.ones(3, dtype=clgrad.int64, device=device).var()
    with pytest.raises(RuntimeError, match="can't specify both"):
        x.var(unbiased=True, correction=1)
    assert math.isnan(clgrad.tensor([2.0], device=device).var().item())
    # large offset: the two-pass formula keeps precision
    big = clgrad.tensor([1e4 + 0.1, 1e4 + 0.2, 1e4 + 0.3], device=device)
    assert abs(big.var().item() - 0.01) < 1e-3


# ---- logsumexp stability, softmax ---------------------------------------------------------------
def test_logsumexp_stable(device):
    a = np.array([[1000.0, 1000.0], [-1000.0, -1001.0], [-np.inf, -np.inf], [np.inf, 1.0]])
    got = clgrad.tensor(a, dtype=clgrad.float32, device=device).logsumexp(1).numpy()
    np.testing.assert_allclose(got, [1000 + math.log(2), -1000 + math.log1p(math.exp(-1)),
                                     -math.inf, math.inf], rtol=1e-6)
    assert clgrad.tensor([1, 2], device=device).logsumexp(0).dtype is clgrad.float32


def _np_softmax(a, d):
    e = np.exp(a - a.max(d, keepdims=True))
    return e / e.sum(d, keepdims=True)


def _np_log_softmax(a, d):
    m = a.max(d, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(d, keepdims=True))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax(device, dim):
    check_op([(3, 4, 5)], lambda x: x.softmax(dim), lambda a: _np_softmax(a, dim),
             device=device)
    check_op([(3, 4, 5)], lambda x: clgrad.log_softmax(x, dim),
             lambda a: _np_log_softmax(a, dim), device=device, atol=1e-5)


def test_softmax_shapes(device):
    check_op([()], lambda x: x.softmax(0), lambda a: np.ones(()), device=device)
    check_op([(1, 6)], lambda x: x.softmax(0), lambda a: np.ones((1, 6)), device=device)
    check_op([(6,)], lambda x: x.log_softmax(-1), lambda a: _np_log_softmax(a, -1),
             device=device)
    check_op([(0, 4)], lambda x: x.softmax(1), lambda a: a, device=device)
    # implicit dim (PyTorch's legacy rule: dim 1 for 2-D)
    check_op([(3, 4)], lambda x: clgrad.softmax(x), lambda a: _np_softmax(a, 1), device=device)
    # softmin is softmax of the negation
    from clgrad.tensor.reduce import softmin
    check_op([(3, 4)], lambda x: softmin(x, 1), lambda a: _np_softmax(-a, 1), device=device)


def test_softmax_long_and_many_rows(device):
    # long rows get a work-group each, many short rows a work-item each: both must agree
    check_op([(2, 3000)], lambda x: x.softmax(-1), lambda a: _np_softmax(a, -1), device=device,
             layouts=("contiguous", "permuted"), grad=False, atol=1e-7)
    check_op([(3000, 3)], lambda x: x.log_softmax(1), lambda a: _np_log_softmax(a, 1),
             device=device, layouts=("contiguous", "sliced"), grad=False, atol=1e-5)
    check_op([(5, 700)], lambda x: x.log_softmax(1), lambda a: _np_log_softmax(a, 1),
             device=device, layouts=("contiguous",))


def test_softmax_stability_and_dtype(device):
    a = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, -np.inf], [1e30, -1e30, 0.0]])
    x = clgrad.tensor(a, dtype=clgrad.float32, device=device)
    np.testing.assert_allclose(x.softmax(1).numpy(), _np_softmax(a, 1), atol=1e-7, rtol=1e-5)
    np.testing.assert_allclose(x.log_softmax(1).numpy(), _np_log_softmax(a, 1), rtol=1e-5)
    assert np.isnan(clgrad.tensor([[np.nan, 1.0]], device=device).softmax(1).numpy()).all()
    y = x.softmax(1, dtype=clgrad.float64)
    assert y.dtype is clgrad.float64
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        clgrad.tensor([1, 2], device=device).softmax(0)
    assert clgrad.tensor([1, 2], device=device).softmax(0, dtype=clgrad.float32).dtype \
        is clgrad.float32
    # one fused launch for the forward
    z = clgrad.randn(8, 16, device=device)
    z.softmax(1)
    runtime.reset_stats()
    z.softmax(1)
    assert runtime.stats()["launches"] == 1


def test_softmax_double_backward(device):
    x = _t(np.random.default_rng(3).standard_normal((3, 4)), device, True)
    assert _gg(lambda t: t.softmax(1), [x])
    assert _gg(lambda t: t.log_softmax(0), [x])


# ---- scans --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum_cumprod(device, dim):
    check_op([(3, 4, 5)], lambda x: x.cumsum(dim), lambda a: a.cumsum(dim), device=device,
             atol=1e-5)
    check_op([(3, 4, 5)], lambda x: clgrad.cumprod(x, dim), lambda a: a.cumprod(dim),
             device=device, atol=1e-5, low=0.5, high=1.5)


def test_scans_small_and_ints(device):
    check_op([()], lambda x: x.cumsum(0), lambda a: a, device=device)
    check_op([(0, 3)], lambda x: x.cumprod(0), lambda a: a, device=device)
    check_op([(1, 7)], lambda x: x.cumsum(0), lambda a: a, device=device)
    x = clgrad.tensor([[1, 2, 3], [4, 5, 6]], dtype=clgrad.int32, device=device)
    assert x.cumsum(1).dtype is clgrad.int64
    np.testing.assert_array_equal(x.cumsum(1).numpy(), [[1, 3, 6], [4, 9, 15]])
    np.testing.assert_array_equal(x.cumprod(0).numpy(), [[1, 2, 3], [4, 10, 18]])
    assert x.cumsum(0, dtype=clgrad.float32).dtype is clgrad.float32
    b = clgrad.tensor([True, False, True], device=device)
    np.testing.assert_array_equal(b.cumsum(0).numpy(), [1, 1, 2])


def test_scan_gradients(device):
    a = np.random.default_rng(5).uniform(0.5, 1.5, (3, 5))
    assert _gg(lambda t: t.cumsum(1), [_t(a, device, True)])
    assert _gg(lambda t: t.cumprod(0), [_t(a, device, True)])
    # zeros: before the first zero, at it, after it (PyTorch's zero-aware gradient)
    z = np.array([[1.5, 0.0, 2.0, 0.0, 3.0], [2.0, 3.0, 0.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 0.0],
                  [0.0, 2.0, 1.0, 1.0, 1.0]])
    assert gradcheck(lambda t: t.cumprod(1), [_t(z, device, True)])
    assert gradcheck(lambda t: t.cumprod(0), [_t(z, device, True)])


# ---- all / any / count_nonzero -------------------------------------------------------------------
def test_all_any_count(device):
    ints = np.array([[0, 1, 2], [3, 4, 5]])
    bools = np.array([[True, True], [False, True]])
    for arr in (ints, bools, ints.astype(np.float64)):
        x = clgrad.tensor(arr, device=device)
        assert x.all().item() == bool(arr.all()) and x.any().item() == bool(arr.any())
        np.testing.assert_array_equal(x.all(1).numpy(), arr.all(1))
        np.testing.assert_array_equal(x.any(0, keepdim=True).numpy(), arr.any(0, keepdims=True))
        assert x.all(1).dtype is clgrad.bool
        assert clgrad.count_nonzero(x).item() == np.count_nonzero(arr)
        np.testing.assert_array_equal(x.count_nonzero(0).numpy(), np.count_nonzero(arr, 0))
        assert x.count_nonzero((0, 1)).dtype is clgrad.int64
    assert clgrad.tensor([1, 2], dtype=clgrad.uint8, device=device).all().dtype is clgrad.uint8
    e = clgrad.zeros(0, device=device)
    assert e.all().item() is True and e.any().item() is False
    check_op([(3, 4)], lambda x: (x > 0).all(-1), lambda a: (a > 0).all(-1), device=device,
             grad=False)


# ---- norms --------------------------------------------------------------------------------------
def _np_vnorm(a, p, axis=None, keepdims=False):
    b = np.abs(a)
    if p == math.inf:
        return b.max(axis=axis, keepdims=keepdims)
    if p == -math.inf:
        return b.min(axis=axis, keepdims=keepdims)
    if p == 0:
        return (b != 0).sum(axis=axis, keepdims=keepdims).astype(a.dtype)
    return (b ** p).sum(axis=axis, keepdims=keepdims) ** (1.0 / p)


@pytest.mark.parametrize("p", [2, 1, math.inf, -math.inf, 0, 3, 1.5])
def test_vector_norm(device, p):
    vn = clgrad.linalg.vector_norm
    check_op([(3, 4)], lambda x: vn(x, p), lambda a: _np_vnorm(a, p), device=device,
             atol=1e-5, grad=p != 0)
    check_op([(3, 4, 2)], lambda x: vn(x, p, dim=(0, -1), keepdim=True),
             lambda a: _np_vnorm(a, p, (0, 2), True), device=device, atol=1e-5, grad=p != 0)
    check_op([(3, 4)], lambda x: x.norm(p, 1), lambda a: _np_vnorm(a, p, 1), device=device,
             atol=1e-5, grad=p != 0)


def test_norm_fro_and_defaults(device):
    check_op([(3, 4)], lambda x: x.norm(), lambda a: np.linalg.norm(a), device=device)
    check_op([(2, 3, 4)], lambda x: clgrad.norm(x, "fro", (1, 2)),
             lambda a: np.sqrt((a * a).sum((1, 2))), device=device)
    check_op([()], lambda x: x.norm(), lambda a: np.abs(a), device=device)
    with pytest.raises(RuntimeError, match="floating point"):
        clgrad.linalg.vector_norm(clgrad.tensor([1, 2], device=device))
    assert clgrad.linalg.vector_norm(clgrad.tensor([3, 4], device=device),
                                     dtype=clgrad.float64).item() == 5.0


def test_norm_gradient_at_zero(device):
    for p in (2, 3, 1, math.inf):
        x = _t(np.zeros((2, 3)), device, True)
        clgrad.linalg.vector_norm(x, p).backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3)))
    x = _t([[0.0, 0.0], [3.0, 4.0]], device, True)
    clgrad.linalg.vector_norm(x, 2, dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0], [0.6, 0.8]])
    assert _gg(lambda t: clgrad.linalg.vector_norm(t, 2, 1),
               [_t(np.random.default_rng(1).standard_normal((2, 3)), device, True)])
    assert _gg(lambda t: clgrad.linalg.vector_norm(t, 3),
               [_t(np.random.default_rng(2).standard_normal((4,)), device, True)])


@pytest.mark.parametrize("ord", ["fro", 1, -1, math.inf, -math.inf])
def test_matrix_norm(device, ord):
    check_op([(2, 3, 4)], lambda x: clgrad.linalg.matrix_norm(x, ord),
             lambda a: np.linalg.norm(a, ord, axis=(-2, -1)), device=device, atol=1e-5)
    check_op([(3, 4)], lambda x: clgrad.linalg.norm(x, ord, keepdim=True),
             lambda a: np.linalg.norm(a, ord, keepdims=True), device=device, atol=1e-5)


def test_linalg_norm_cases(device):
    ln = clgrad.linalg.norm
    check_op([(2, 3, 4)], lambda x: ln(x), lambda a: np.linalg.norm(a.ravel()), device=device)
    check_op([(2, 3, 4)], lambda x: ln(x, 3, dim=1), lambda a: _np_vnorm(a, 3, 1),
             device=device, atol=1e-5)
    check_op([(2, 3, 4)], lambda x: ln(x, dim=(0, 2)),
             lambda a: np.sqrt((a * a).sum((0, 2))), device=device)
    with pytest.raises(RuntimeError, match="must be 1D or 2D"):
        ln(clgrad.ones(2, 2, 2, device=device), 1)
    # the singular-value orders (tests/test_svd.py checks them in depth)
    check_op([(3, 4)], lambda x: clgrad.linalg.matrix_norm(x, "nuc"),
             lambda a: np.linalg.norm(a, "nuc"), device=device, atol=1e-5)
    check_op([(2, 3, 4)], lambda x: x.norm("nuc", dim=(0, 2)),
             lambda a: np.linalg.norm(a, "nuc", axis=(0, 2)), device=device, atol=1e-5)


def test_torch_parity_softmax_norm(device):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(7).standard_normal((3, 5))
    x = clgrad.tensor(a, device=device)
    ta = torch.tensor(a)
    np.testing.assert_allclose(x.log_softmax(0).numpy(), ta.log_softmax(0).numpy(), atol=1e-12)
    np.testing.assert_allclose(x.var(1, correction=2).numpy(),
                               ta.var(1, correction=2).numpy(), atol=1e-12)
    np.testing.assert_allclose(x.norm(3, 1).numpy(), ta.norm(3, 1).numpy(), atol=1e-12)
