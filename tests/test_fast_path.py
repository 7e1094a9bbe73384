"""The eager fast path: a repeated op reuses its plan (kernel, argument layout, launch size), the
flat kernel serves contiguous operands, and neither changes a result."""
import importlib

import numpy as np
import pytest

import clgrad
from clgrad import ops, runtime
from clgrad.ops import base

red = importlib.import_module("clgrad.ops.reduce")     # clgrad.ops.reduce is also a function


def _t(a, device, **kw):
    return clgrad.tensor(np.asarray(a, dtype=np.float32), device=device, **kw)


def _kernel_names(fn):
    with runtime.program.capture_sources() as got:
        base._ew_plans.clear()
        base._launches.clear()
        runtime.codegen._memo.clear()
        fn()
    return [name for name, _, _ in got]


def test_contiguous_operands_use_the_flat_kernel(device):
    a, b = _t(np.arange(12).reshape(3, 4), device), _t(np.ones((3, 4)), device)
    # (reading `_buf` launches a pending result: a chain of one runs the op's own kernel)
    assert _kernel_names(lambda: (a + b)._buf) == ["ew_add_f32_flat"]
    # a 0-d tensor broadcast over the output is still one contiguous run for the others
    assert _kernel_names(lambda: (a * _t(2.0, device))._buf) == ["ew_mul_f32_flat"]
    # a transposed operand needs the strided kernel
    bt = b.t().contiguous()
    clgrad.synchronize(device)   # launch the pending copy before counting kernels
    assert _kernel_names(lambda: (a.t() + bt)._buf) == ["ew_add_f32"]


@pytest.mark.parametrize("case", ["offset", "scalar_tensor", "single", "row_broadcast",
                                  "transposed", "sliced"])
def test_flat_and_strided_kernels_agree_with_numpy(device, case):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    y = rng.standard_normal((6, 8)).astype(np.float32)
    X, Y = _t(x, device), _t(y, device)
    if case == "offset":            # contiguous views that start inside their buffers
        got, want = X[2:] - Y[1:5], x[2:] - y[1:5]
    elif case == "scalar_tensor":
        got, want = X * _t(3.0, device), x * np.float32(3.0)
    elif case == "single":
        got, want = X[1:2, 3:4] + Y[4:5, 5:6], x[1:2, 3:4] + y[4:5, 5:6]
    elif case == "row_broadcast":
        got, want = X + Y[0], x + y[0]
    elif case == "transposed":
        got, want = X.t() * Y.t(), x.T * y.T
    else:
        got, want = X[:, ::2] + Y[:, 1::2], x[:, ::2] + y[:, 1::2]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)


def test_repeated_op_reuses_its_plan_with_new_values(device):
    x = _t(np.arange(16), device)
    first = x * 2.0
    first._buf
    runtime.reset_stats()
    n_plans = len(base._ew_plans)
    outs = []
    for s in (3.0, 4.0, 5):
        outs.append(x * s)
        outs[-1]._buf            # launch each alone (together they would fuse into one)
    st = runtime.stats()
    assert st["launches"] == 3 and st["builds"] == 0
    # float and int scalars promote alike here but are separate plans (the type is in the key)
    assert len(base._ew_plans) == n_plans + 1
    for s, o in zip((3.0, 4.0, 5), outs):
        np.testing.assert_array_equal(o.numpy(), np.arange(16, dtype=np.float32) * s)
    np.testing.assert_array_equal(first.numpy(), np.arange(16, dtype=np.float32) * 2)


def test_plan_key_tells_views_and_dtypes_apart(device):
    base_arr = np.arange(20, dtype=np.float32)
    x = _t(base_arr, device)
    for i in range(4):            # same shape and strides, new offset each time
        np.testing.assert_array_equal((x[i:i + 8] + 1).numpy(), base_arr[i:i + 8] + 1)
    xi = clgrad.tensor(np.arange(8), device=device)
    r = xi + 1
    assert r.dtype == clgrad.int64
    np.testing.assert_array_equal(r.numpy(), np.arange(8) + 1)
    r = xi + 0.5                  # int tensor + float scalar: promoted, a separate plan
    assert r.dtype == clgrad.float32
    np.testing.assert_allclose(r.numpy(), np.arange(8) + 0.5)
    clgrad.set_default_dtype(clgrad.float64)
    try:
        assert (xi + 0.5).dtype == clgrad.float64
    finally:
        clgrad.set_default_dtype(clgrad.float32)


def test_errors_are_raised_on_every_call(device):
    a, b = _t(np.ones(3), device), _t(np.ones(4), device)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="broadcast"):
            a + b
    out = _t(np.ones(3), device)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
            ops.ew(ops.ADD, a, a, out=_t(np.ones(4), device))
    ops.ew(ops.ADD, a, a, out=out)
    np.testing.assert_array_equal(out.numpy(), np.full(3, 2.0, np.float32))


def test_in_place_through_the_plan_bumps_the_version(device):
    x = _t(np.ones(4), device)
    v = x._version
    for _ in range(3):
        x.add_(1.0)
    assert x._version == v + 3
    np.testing.assert_array_equal(x.numpy(), np.full(4, 4.0, np.float32))


def test_reduce_plan_reused_across_calls(device):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 7)).astype(np.float32)
    x = _t(a, device)
    x.sum(1)
    runtime.reset_stats()
    n = len(red._reduce_plans)
    for _ in range(3):
        np.testing.assert_allclose(x.sum(1).numpy(), a.sum(1), rtol=1e-5, atol=1e-5)
    assert len(red._reduce_plans) == n and runtime.stats()["builds"] == 0
    # an int input is cast to the accumulator first: still one plan, correct each time
    xi = clgrad.tensor(np.arange(10).reshape(2, 5), device=device)
    for _ in range(2):
        np.testing.assert_array_equal(xi.sum(0).numpy(), np.arange(10).reshape(2, 5).sum(0))
    h = _t(a, device).half()
    for _ in range(2):
        np.testing.assert_allclose(h.mean().numpy(), a.astype(np.float16).mean(), rtol=1e-2)


def test_backward_repeated_matches_numpy(device):
    a = np.linspace(-1, 1, 16).astype(np.float32)
    x = _t(a, device, requires_grad=True)
    for _ in range(3):
        x.grad = None
        (x * x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 * a, rtol=1e-6)
