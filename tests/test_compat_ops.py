"""PyTorch's long-tail ops (issue 15): multinomial, searchsorted/bucketize, scatter_reduce and
index_reduce, cummax/cummin/logcumsumexp, Tensor.unfold, view(dtype), movedim — against numpy
(float64), gradients by gradcheck, and torch where installed."""
import math

import numpy as np
import pytest

import clgrad
from clgrad.autograd import gradcheck
from helpers import check_op

try:
    import torch
except ImportError:          # pragma: no cover - torch is a dev extra
    torch = None


def _t(arr, device, dtype=None, grad=False):
    return clgrad.tensor(np.asarray(arr), dtype=dtype, device=device, requires_grad=grad)


# ---- multinomial ------------------------------------------------------------------------------
# chi-square bounds at p = 0.001 for 3 and 4 degrees of freedom
CHI2_999 = {3: 16.27, 4: 18.47}


def _chi2(counts, probs):
    n = counts.sum()
    keep = probs > 0
    exp = n * probs[keep]
    return float(((counts[keep] - exp) ** 2 / exp).sum())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_multinomial_with_replacement_distribution(device, dtype):
    if dtype == "float64" and not device.has_fp64:
        pytest.skip("no fp64")
    w = np.array([1.0, 2.0, 0.0, 3.0, 4.0, 0.5])      # unnormalized, with a zero
    clgrad.manual_seed(1234)
    p = _t(np.stack([w, w[::-1]]), device, dtype)
    s = p.multinomial(20000, replacement=True)
    assert s.shape == (2, 20000) and s.dtype is clgrad.int64
    got = s.numpy()
    for row, probs in zip(got, (w, w[::-1])):
        probs = probs / probs.sum()
        counts = np.bincount(row, minlength=6).astype(np.float64)
        assert counts[probs == 0].sum() == 0
        assert _chi2(counts, probs) < CHI2_999[4]


def test_multinomial_without_replacement(device):
    w = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    clgrad.manual_seed(7)
    p = _t(np.tile(w, (4000, 1)), device, "float32")
    s = p.multinomial(2).numpy()                          # (4000, 2)
    assert s.shape == (4000, 2)
    assert np.all(s[:, 0] != s[:, 1])
    assert not np.any(s == 4)
    # the first draw follows p; the second, P(j | i) = p_j / (1 - p_i)
    first = np.bincount(s[:, 0], minlength=5).astype(np.float64)
    assert _chi2(first, w) < CHI2_999[3]
    second = np.zeros(5)
    for i in range(4):
        for j in range(4):
            if i != j:
                second[j] += w[i] * w[j] / (1 - w[i])
    counts = np.bincount(s[:, 1], minlength=5).astype(np.float64)
    assert _chi2(counts, second) < CHI2_999[3]
    # every category once: a permutation of the non-zero ones, zero weight last
    full = _t([0.5, 0.0, 0.5], device).multinomial(3).tolist()
    assert sorted(full[:2]) == [0, 2] and full[2] == 1


def test_multinomial_seeded_and_generator(device):
    p = _t([0.2, 0.3, 0.5], device)
    clgrad.manual_seed(3)
    a = p.multinomial(50, True).tolist()
    clgrad.manual_seed(3)
    b = clgrad.multinomial(p, 50, True).tolist()
    assert a == b
    g = clgrad.Generator().manual_seed(3)
    c = p.multinomial(50, True, generator=g).tolist()
    assert c == a                                   # same seed, same counter: same draws
    assert p.multinomial(1).shape == (1,)


def test_multinomial_errors(device):
    with pytest.raises(RuntimeError, match="element < 0"):
        _t([0.5, -0.1], device).multinomial(1)
    with pytest.raises(RuntimeError, match="inf"):
        _t([0.5, math.nan], device).multinomial(1)
    with pytest.raises(RuntimeError, match="sum of probabilities <= 0"):
        _t([[0.5, 0.5], [0.0, 0.0]], device).multinomial(1, True)
    with pytest.raises(RuntimeError, match="without replacement"):
        _t([0.5, 0.5], device).multinomial(3)
    with pytest.raises(RuntimeError, match="1 or 2 dim"):
        _t(np.ones((2, 2, 2)), device).multinomial(1)
    with pytest.raises(RuntimeError, match="floating"):
        _t([1, 2], device).multinomial(1)


# ---- searchsorted / bucketize -------------------------------------------------------------------
@pytest.mark.parametrize("right", [False, True])
def test_searchsorted_1d_and_rows(device, right):
    side = "right" if right else "left"
    seq = np.array([1.0, 2.0, 2.0, 3.5, 7.0])
    vals = np.array([[0.0, 2.0, 2.5], [7.0, 8.0, 3.5]])
    got = clgrad.searchsorted(_t(seq, device), _t(vals, device), right=right)
    np.testing.assert_array_equal(got.numpy(), np.searchsorted(seq, vals, side=side))
    rows = np.sort(np.random.default_rng(0).integers(0, 9, (3, 6)), axis=1)
    q = np.random.default_rng(1).integers(-1, 10, (3, 4))
    got = clgrad.searchsorted(_t(rows, device), _t(q, device), side=side)
    want = np.stack([np.searchsorted(r, v, side=side) for r, v in zip(rows, q)])
    np.testing.assert_array_equal(got.numpy(), want)
    # non-contiguous inputs and a scalar value
    st = _t(np.stack([seq, seq]), device)[:, ::2]
    got = clgrad.searchsorted(st, _t(vals, device).t().contiguous()[:2].t(), right=right)
    want = np.stack([np.searchsorted(seq[::2], v, side=side) for v in vals[:, :2]])
    np.testing.assert_array_equal(got.numpy(), want)
    assert clgrad.searchsorted(_t(seq, device), 2.0, right=right).item() == \
        np.searchsorted(seq, 2.0, side=side)
    assert clgrad.searchsorted(_t(seq, device), _t(vals, device), out_int32=True).dtype \
        is clgrad.int32


def test_bucketize(device):
    b = np.array([1, 3, 5, 7, 9])
    x = np.array([[3, 6, 9], [3, 6, 10]])
    for right in (False, True):
        got = clgrad.bucketize(_t(x, device), _t(b, device), right=right)
        np.testing.assert_array_equal(got.numpy(), np.digitize(x, b, right=not right))
    with pytest.raises(RuntimeError, match="1 dimension"):
        clgrad.bucketize(_t(x, device), _t(np.ones((2, 2)), device))
    with pytest.raises(RuntimeError, match="boundaries tensor"):
        clgrad.searchsorted(_t(np.ones((2, 3)), device), _t(np.ones((3, 1)), device))


# ---- scatter_reduce / index_reduce --------------------------------------------------------------
def _np_scatter_reduce(x, dim, index, src, reduce, include_self):
    out = x.astype(np.float64).copy()
    groups = {}
    for pos in np.ndindex(*index.shape):
        tgt = list(pos)
        tgt[dim] = index[pos]
        groups.setdefault(tuple(tgt), []).append(src[pos])
    for tgt, vals in groups.items():
        vals = list(vals) + ([out[tgt]] if include_self else [])
        if reduce == "sum":
            out[tgt] = np.sum(vals)
        elif reduce == "prod":
            out[tgt] = np.prod(vals)
        elif reduce == "mean":
            out[tgt] = np.mean(vals)
        elif reduce == "amax":
            out[tgt] = np.max(vals)
        else:
            out[tgt] = np.min(vals)
    return out


REDUCES = ["sum", "prod", "mean", "amax", "amin"]


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_matches_numpy_and_grad(device, reduce, include_self):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (4, 5))
    src = rng.uniform(-2, 2, (3, 5))
    index = rng.integers(0, 4, (3, 5))
    for dim in (0,):
        want = _np_scatter_reduce(x, dim, index, src, reduce, include_self)
        check_op([], lambda a, s, i: a.scatter_reduce(dim, i, s, reduce,
                                                      include_self=include_self),
                 lambda a, s, i: want, device=device, inputs=[x, src, index], atol=1e-5,
                 layouts=("contiguous", "permuted"))


def test_scatter_reduce_ties_zeros_and_dim1(device, fp64):
    # amax ties share the gradient; prod with one and with two zeros at a position
    x = np.array([[1.0, 0.0, 3.0, 0.0], [2.0, 5.0, -1.0, 0.0]])
    src = np.array([[1.0, 2.0, 0.0, 3.0], [5.0, 0.0, 0.0, 2.0]])
    index = np.array([[0, 0, 1, 2], [1, 1, 1, 0]])
    for reduce in REDUCES:
        for inc in (True, False):
            want = np.zeros_like(x)
            want = np.stack([_np_scatter_reduce(x[r:r + 1], 1, index[r:r + 1], src[r:r + 1],
                                                reduce, inc)[0] for r in range(2)])
            got = _t(x, fp64).scatter_reduce(1, _t(index, fp64), _t(src, fp64), reduce,
                                             include_self=inc)
            np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
            ok = gradcheck(lambda a, s: a.scatter_reduce(1, _t(index, fp64), s, reduce,
                                                         include_self=inc),
                           [_t(x, fp64, grad=True), _t(src, fp64, grad=True)], atol=1e-6)
            assert ok, (reduce, inc)


def test_scatter_reduce_integer_and_inplace(device):
    x = _t([5, 3, 7], device)
    out = x.scatter_reduce(0, _t([0, 0, 1], device), _t([2, 3, 4], device), "mean")
    assert out.tolist() == [3, 3, 7] and out.dtype is clgrad.int64
    y = _t([1.0, 2.0, 3.0], device)
    r = y.scatter_reduce_(0, _t([2, 2], device), _t([10.0, -4.0], device), "amax",
                          include_self=False)
    assert r is y and y.tolist() == [1.0, 2.0, 10.0]
    with pytest.raises(RuntimeError, match="reduce argument"):
        y.scatter_reduce(0, _t([0], device), _t([1.0], device), "max")
    # found by the kernel and raised at the next sync (runtime/faults.py)
    with pytest.raises(RuntimeError, match="out of bounds"):
        y.scatter_reduce(0, _t([3], device), _t([1.0], device), "sum").numpy()


def test_index_reduce(device):
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    src = np.arange(8, dtype=np.float64).reshape(2, 4) - 3
    idx = np.array([2, 2])
    for reduce in ("prod", "mean", "amax", "amin"):
        got = _t(x, device).index_reduce(0, _t(idx, device), _t(src, device), reduce)
        full = np.broadcast_to(idx[:, None], src.shape)
        np.testing.assert_allclose(got.numpy(), _np_scatter_reduce(x, 0, full, src, reduce,
                                                                   True), rtol=1e-6)


@pytest.mark.skipif(torch is None, reason="torch is not installed: parity test skipped")
def test_scatter_reduce_matches_torch(device):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (6, 3)).astype(np.float32)
    src = rng.uniform(-1, 1, (8, 3)).astype(np.float32)
    idx = rng.integers(0, 6, (8, 3))
    for reduce in REDUCES:
        for inc in (True, False):
            t = torch.tensor(x).scatter_reduce(0, torch.tensor(idx), torch.tensor(src), reduce,
                                               include_self=inc)
            c = _t(x, device).scatter_reduce(0, _t(idx, device), _t(src, device), reduce,
                                             include_self=inc)
            np.testing.assert_allclose(c.numpy(), t.numpy(), rtol=1e-5, atol=1e-6)


# ---- cummax / cummin / logcumsumexp ------------------------------------------------------------
def _np_cum(x, dim, kind):
    x = np.moveaxis(np.asarray(x, np.float64), dim, -1)
    vals = np.empty_like(x)
    idx = np.empty(x.shape, np.int64)
    for pos in np.ndindex(*x.shape[:-1]):
        best, at = x[pos + (0,)], 0
        for i, v in enumerate(x[pos]):
            if np.isnan(v) or (v >= best if kind == "max" else v <= best):
                best, at = v, i
            vals[pos + (i,)] = best
            idx[pos + (i,)] = at
    return np.moveaxis(vals, -1, dim), np.moveaxis(idx, -1, dim)


@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cummax_cummin(device, kind, dim):
    fn = clgrad.cummax if kind == "max" else clgrad.cummin
    check_op([(4, 5, 3)], lambda a: tuple(fn(a, dim)), lambda a: _np_cum(a, dim, kind),
             device=device)
    # ties take the later index, NaN sticks until the next NaN; integers; 0-d
    x = np.array([1.0, 3.0, 3.0, np.nan, 2.0, np.nan, 5.0])
    v, i = fn(_t(x, device), 0)
    wv, wi = _np_cum(x, 0, kind)
    np.testing.assert_array_equal(v.numpy(), wv)
    np.testing.assert_array_equal(i.numpy(), wi)
    xi = np.array([[3, 1, 1, 4], [0, 0, 9, -2]])
    v, i = fn(_t(xi, device), 1)
    wv, wi = _np_cum(xi, 1, kind)
    assert v.dtype is clgrad.int64
    np.testing.assert_array_equal(v.numpy(), wv)
    np.testing.assert_array_equal(i.numpy(), wi)
    v, i = fn(_t(2.5, device), 0)
    assert v.shape == () and v.item() == 2.5 and i.item() == 0
    assert fn(_t(np.zeros((0, 3)), device), 0).values.shape == (0, 3)


def _np_logcumsumexp(x, dim):
    return np.logaddexp.accumulate(np.asarray(x, np.float64), axis=dim)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_logcumsumexp(device, dim):
    check_op([(3, 6, 2)], lambda a: clgrad.logcumsumexp(a, dim),
             lambda a: _np_logcumsumexp(a, dim), device=device, low=-30, high=30, atol=1e-5,
             grad_atol=1e-5)
    x = np.array([-np.inf, 1000.0, 1000.0, -np.inf, np.inf])
    got = _t(x, device).logcumsumexp(0).numpy()
    np.testing.assert_allclose(got, [-np.inf, 1000.0, 1000.0 + np.log(2), 1000 + np.log(2),
                                     np.inf], rtol=1e-6)
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        _t([1, 2], device).logcumsumexp(0)


# ---- Tensor.unfold, view(dtype), movedim ---------------------------------------------------------
def _np_unfold(x, dim, size, step):
    x = np.asarray(x)
    n = x.shape[dim]
    wins = [np.take(x, range(s, s + size), axis=dim) for s in range(0, n - size + 1, step)]
    return np.moveaxis(np.stack(wins, axis=dim), dim + 1, -1)


@pytest.mark.parametrize("dim,size,step", [(0, 2, 1), (1, 3, 2), (-1, 2, 3), (1, 5, 1),
                                           (0, 1, 1)])
def test_tensor_unfold(device, dim, size, step):
    d = dim % 3
    check_op([(4, 5, 3)] if d != 2 else [(4, 5, 7)],
             lambda a: a.unfold(dim, size, step), lambda a: _np_unfold(a, d, size, step),
             device=device)
    x = clgrad.arange(10.0, device=device)
    u = x.unfold(0, 3, 2)
    assert u._buf is x._buf                               # a view, no copy
    with pytest.raises(RuntimeError, match="maximum size"):
        x.unfold(0, 11, 1)
    with pytest.raises(RuntimeError, match="step"):
        x.unfold(0, 2, 0)
    s = _t(3.0, device).unfold(0, 1, 1)
    assert s.shape == (1,) and s.tolist() == [3.0]


@pytest.mark.parametrize("src,dst", [("float32", "int32"), ("float32", "int16"),
                                     ("int16", "float32"), ("int64", "uint8"),
                                     ("float32", "uint8"), ("uint8", "int32")])
def test_view_dtype(device, src, dst):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 100, (3, 8)).astype(src)
    got = _t(a, device, src).view(getattr(clgrad, dst))
    np.testing.assert_array_equal(got.numpy(), a.view(dst))
    assert got.dtype is getattr(clgrad, dst)
    # a slice of rows keeps its offset; the data is shared
    got = _t(a, device, src)[1:].view(getattr(clgrad, dst))
    np.testing.assert_array_equal(got.numpy(), a[1:].view(dst))


def test_view_dtype_errors_and_sharing(device):
    x = _t([1.0, 2.0], device, "float32")
    y = x.view(clgrad.int32)
    x.add_(1.0)
    np.testing.assert_array_equal(y.numpy(), np.array([2.0, 3.0], np.float32).view(np.int32))
    with pytest.raises(RuntimeError, match="stride"):
        _t(np.ones((2, 2), np.float32), device).t().view(clgrad.int16)
    with pytest.raises(RuntimeError, match="divisible"):
        _t(np.ones(3, np.int16), device).view(clgrad.float32)
    with pytest.raises(RuntimeError, match="dim"):
        _t(1.0, device).view(clgrad.int16)


def test_movedim(device):
    a = np.arange(24.0).reshape(2, 3, 4)
    for s, d in [(0, -1), (-1, 0), ((0, 1), (2, 0)), (1, 1)]:
        got = clgrad.movedim(_t(a, device), s, d)
        np.testing.assert_array_equal(got.numpy(), np.moveaxis(a, s, d))


# ---- logaddexp / logaddexp2 / copysign (op-table records; tests/test_op_table.py runs their
# samples forward and through gradcheck): the edges here ---------------------------------------
def test_logaddexp_copysign_edges(device):
    a = np.array([1.0, -np.inf, np.inf, 2.0, 800.0, np.nan], np.float32)
    b = np.array([2.0, -np.inf, np.inf, -1000.0, 800.0, 1.0], np.float32)
    ta, tb = _t(a, device), _t(b, device)
    with np.errstate(invalid="ignore"):                 # numpy warns on the NaN it propagates
        want, want2 = np.logaddexp(a, b), np.logaddexp2(a, b)
    np.testing.assert_allclose(clgrad.logaddexp(ta, tb).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(clgrad.logaddexp2(ta, tb).numpy(), want2, rtol=1e-6)
    np.testing.assert_array_equal(np.signbit(clgrad.copysign(ta, -0.0).numpy()),
                                  np.ones(6, bool))
    got = clgrad.copysign(_t([1, -2, 3], device), _t([-0.0, 1.0, -1.0], device, "float32"))
    assert got.dtype is clgrad.float32 and got.tolist() == [-1.0, 2.0, -3.0]


def test_numpy_axis_and_keepdims_names(device):
    a = np.arange(12.0).reshape(3, 4)
    x = _t(a, device)
    np.testing.assert_allclose(x.sum(axis=1).numpy(), a.sum(axis=1))
    np.testing.assert_allclose(clgrad.mean(x, axis=0, keepdims=True).numpy(),
                               a.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(x.std(axis=0).numpy(), a.std(axis=0, ddof=1), rtol=1e-6)
    assert x.amax(axis=(0, 1)).item() == 11.0
    assert clgrad.argmax(x, axis=1).tolist() == [3, 3, 3]
    assert x.any(axis=0).shape == (4,) and x.max(axis=1, keepdims=True).values.shape == (3, 1)
    np.testing.assert_allclose(x.cumsum(axis=0).numpy(), a.cumsum(axis=0))
    with pytest.raises(TypeError, match="both 'axis' and 'dim'"):
        x.sum(dim=0, axis=1)
