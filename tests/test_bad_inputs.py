"""A hypothesis sweep of bad and edge inputs over a representative set of the public API: odd
shapes (0-d, empty, size-1), dtypes, out-of-range indices, NaN/Inf, non-contiguous views and
tensors of two devices. Each call must either match PyTorch (the oracle here; the sweep skips
without it) or raise a Python exception that names the problem, as PyTorch raises one; never a
segfault, a NaN where PyTorch raises, or a raw pyopencl error. Where PyTorch refuses a dtype
or a call signature (NotImplementedError or TypeError: `abs` of bool, `zeros()` without a size)
and clgrad computes an answer, that is accepted as an extension, not a hole; a PyTorch
IndexError, ValueError or RuntimeError (bad values, indices, shapes, sizes) must be matched by
an exception. Deterministic (derandomize) and bounded (max_examples) for CI."""
import math

import numpy as np
import pytest
import pyopencl as cl

import clgrad
import clgrad.nn.functional as F

torch = pytest.importorskip("torch")
hyp = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SWEEP = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))

DTYPES = ["float32", "int64", "int32", "bool"]
SPECIAL = [0.0, -0.0, 1.0, -1.5, 3.0, float("nan"), float("inf"), float("-inf")]


@st.composite
def arrays(draw, max_rank=3, dtypes=DTYPES, max_side=4):
    rank = draw(st.integers(0, max_rank))
    shape = tuple(draw(st.integers(0, max_side)) for _ in range(rank))
    dtype = draw(st.sampled_from(dtypes))
    n = math.prod(shape)
    if dtype == "float32":
        vals = draw(st.lists(st.sampled_from(SPECIAL) | st.floats(-4, 4, width=32),
                             min_size=n, max_size=n))
    elif dtype == "bool":
        vals = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    else:
        vals = draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n))
    a = np.array(vals, dtype=dtype).reshape(shape)
    view = draw(st.sampled_from(["plain", "transposed", "strided"])) if rank else "plain"
    return a, view


def _views(a, view, mod):
    """The same values as a tensor of library `mod` (clgrad or torch), laid out as asked."""
    if view == "transposed":
        t = mod.tensor(np.ascontiguousarray(a.T)).t() if a.ndim == 2 else \
            mod.tensor(np.ascontiguousarray(np.moveaxis(a, 0, -1))).permute(
                a.ndim - 1, *range(a.ndim - 1))
    elif view == "strided":
        big = np.repeat(a, 2, axis=0)
        t = mod.tensor(big)[::2]
    else:
        t = mod.tensor(a)
    return t


def _outcome(fn, mod, args):
    try:
        out = fn(mod, *args)
        if isinstance(out, (tuple, list)):
            return [_host(o) for o in out], None
        return _host(out), None
    except Exception as e:            # noqa: BLE001 - the sweep compares exceptions
        return None, e


def _host(x):
    if hasattr(x, "detach"):
        x = x.detach()
        return x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    return np.asarray(x)


def _compare(name, fn, make_args):
    """Run fn on torch and on clgrad with equal inputs and hold clgrad to torch's outcome."""
    want, t_err = _outcome(fn, torch, make_args(torch))
    got, c_err = _outcome(fn, clgrad, make_args(clgrad))
    if c_err is not None:
        assert not isinstance(c_err, cl.Error) and "pyopencl" not in type(c_err).__module__, \
            f"{name}: a raw pyopencl error escaped: {c_err!r}"
        assert str(c_err), f"{name}: {type(c_err).__name__} without a message"
    if t_err is not None:
        if c_err is None and isinstance(t_err, (NotImplementedError, TypeError)):
            return                    # an extension (see the module docstring)
        assert c_err is not None, f"{name}: torch raised {t_err!r}, clgrad returned {got!r}"
        return
    assert c_err is None, f"{name}: clgrad raised {c_err!r} where torch returned {want!r}"
    ws = want if isinstance(want, list) else [want]
    gs = got if isinstance(got, list) else [got]
    for w, g in zip(ws, gs):
        assert tuple(g.shape) == tuple(w.shape), f"{name}: shape {g.shape} vs {w.shape}"
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=1e-4,
                                       atol=1e-5, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(g.astype(w.dtype), w, err_msg=name)


def _unary_ops():
    return {
        "neg": lambda m, x: -x, "abs": lambda m, x: x.abs(), "exp": lambda m, x: x.exp(),
        "relu": lambda m, x: m.relu(x), "sum": lambda m, x: x.sum(),
        "sum0": lambda m, x: x.sum(0), "mean": lambda m, x: x.mean(),
        "max": lambda m, x: x.max(), "argmax": lambda m, x: x.argmax(),
        "max0": lambda m, x: x.max(0)[0], "softmax": lambda m, x: x.softmax(-1),
        "log_softmax": lambda m, x: x.log_softmax(0), "cumsum": lambda m, x: x.cumsum(0),
        "sort": lambda m, x: x.sort(-1)[0], "norm": lambda m, x: x.norm(),
        "reshape": lambda m, x: x.reshape(-1, 2), "flip": lambda m, x: x.flip(0),
        "contiguous": lambda m, x: x.contiguous(), "float": lambda m, x: x.float(),
        "long": lambda m, x: x.long(), "isnan": lambda m, x: x.isnan(),
        "clamp": lambda m, x: x.clamp(-1, 1), "sqrt": lambda m, x: x.sqrt(),
        "nonzero": lambda m, x: x.nonzero(), "any": lambda m, x: x.any(),
        "std": lambda m, x: x.float().std(), "topk": lambda m, x: x.topk(2, -1)[0],
    }


@SWEEP
@given(a=arrays(), op=st.sampled_from(sorted(_unary_ops())))
def test_unary_sweep(a, op):
    arr, view = a
    fn = _unary_ops()[op]
    _compare(f"{op}{arr.shape}{arr.dtype}/{view}", fn, lambda m: (_views(arr, view, m),))


def _binary_ops():
    return {
        "add": lambda m, x, y: x + y, "mul": lambda m, x, y: x * y, "sub": lambda m, x, y: x - y,
        "div": lambda m, x, y: x / y, "floordiv": lambda m, x, y: x // y,
        "remainder": lambda m, x, y: x % y, "maximum": lambda m, x, y: m.maximum(x, y),
        "eq": lambda m, x, y: x == y, "lt": lambda m, x, y: x < y,
        "matmul": lambda m, x, y: x @ y, "cat": lambda m, x, y: m.cat([x, y]),
        "stack": lambda m, x, y: m.stack([x, y]),
        "where": lambda m, x, y: m.where(x > 0, x, y),
    }


@SWEEP
@given(a=arrays(dtypes=["float32", "int64"]), b=arrays(dtypes=["float32", "int64"]),
       op=st.sampled_from(sorted(_binary_ops())))
def test_binary_sweep(a, b, op):
    (x, xv), (y, yv) = a, b
    fn = _binary_ops()[op]
    _compare(f"{op}{x.shape}{x.dtype}/{xv},{y.shape}{y.dtype}/{yv}", fn,
             lambda m: (_views(x, xv, m), _views(y, yv, m)))


@st.composite
def indexing(draw):
    shape = tuple(draw(st.integers(0, 4)) for _ in range(draw(st.integers(1, 3))))
    x = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    n = draw(st.integers(0, 4))
    idx = np.array(draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n)), dtype=np.int64)
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return x, idx, dim


def _index_ops():
    return {
        "index_select": lambda m, x, i, d: x.index_select(d, i),
        "getitem": lambda m, x, i, d: x[i],
        "gather": lambda m, x, i, d: x.gather(d, i.reshape((1,) * (x.ndim - 1) + (-1,))
                                              if x.ndim else i),
        "take": lambda m, x, i, d: x.take(i),
        "embedding": lambda m, x, i, d: m.nn.functional.embedding(i, x.reshape(x.shape[0], -1))
        if x.ndim >= 2 else m.nn.functional.embedding(i, x.reshape(-1, 1)),
        "cross_entropy": lambda m, x, i, d: m.nn.functional.cross_entropy(
            x.reshape(-1, x.shape[-1])[: len(i)], i[: x.reshape(-1, x.shape[-1]).shape[0]])
        if x.numel() else m.nn.functional.cross_entropy(x.reshape(0, 1), i[:0]),
        "scatter_add": lambda m, x, i, d: m.zeros(5).scatter_add(0, i, m.ones(len(i))),
        "index_add": lambda m, x, i, d: m.zeros(4, 2).index_add(0, i, m.ones(len(i), 2)),
    }


@SWEEP
@given(case=indexing(), op=st.sampled_from(sorted(_index_ops())))
def test_index_sweep(case, op):
    x, idx, dim = case
    fn = _index_ops()[op]
    _compare(f"{op}{x.shape} idx={idx.tolist()} dim={dim}", fn,
             lambda m: (m.tensor(x), m.tensor(idx), dim))


@SWEEP
@given(shape=st.lists(st.integers(-3, 5) | st.sampled_from([2 ** 40, 2 ** 62]), max_size=3),
       fn=st.sampled_from(["zeros", "ones", "empty", "full", "randn", "arange"]))
def test_creation_sweep(shape, fn):
    def make(m):
        if fn == "full":
            return m.full(tuple(shape), 1.5)
        if fn == "arange":
            return m.arange(shape[0] if shape else 0)
        t = getattr(m, fn)(*shape)
        return t.shape if fn in ("empty", "randn") else t
    _compare(f"{fn}{shape}", lambda m: make(m), lambda m: ())


def _two_devices():
    devs = clgrad.runtime.devices()
    return devs[:2] if len(devs) >= 2 else None


@pytest.mark.parametrize("op", ["add", "matmul", "cat", "where", "gather", "index_select",
                                "getitem", "cross_entropy", "embedding", "linear", "scatter_add"])
def test_mixed_devices_raise_naming_both(op):
    devs = _two_devices()
    if devs is None:
        pytest.skip("needs two OpenCL devices (Intel's runtime and PoCL)")
    a, b = devs
    x = clgrad.ones(2, 3, device=a)
    y = clgrad.ones(2, 3, device=b)
    i = clgrad.tensor([0, 1], device=b)
    calls = {
        "add": lambda: x + y, "matmul": lambda: x @ y.t(), "cat": lambda: clgrad.cat([x, y]),
        "where": lambda: clgrad.where(x > 0, x, y), "gather": lambda: x.gather(1, i.reshape(2, 1)),
        "index_select": lambda: x.index_select(0, i), "embedding": lambda: F.embedding(i, x),
        "getitem": lambda: x[i], "cross_entropy": lambda: F.cross_entropy(x, i),
        "linear": lambda: F.linear(x, y),
        "scatter_add": lambda: x.scatter_add(1, i.reshape(2, 1), x),
    }
    with pytest.raises((RuntimeError, ValueError)) as e:
        calls[op]()
    msg = str(e.value)
    assert a.spec in msg and b.spec in msg, msg


def test_copy_between_devices_is_allowed():
    # as in PyTorch, copy_ and .to() move data between devices (through the host)
    devs = _two_devices()
    if devs is None:
        pytest.skip("needs two OpenCL devices (Intel's runtime and PoCL)")
    a, b = devs
    x = clgrad.zeros(2, 3, device=a)
    x.copy_(clgrad.arange(6, dtype=clgrad.float32, device=b).reshape(2, 3))
    np.testing.assert_array_equal(x.numpy(), np.arange(6).reshape(2, 3))
