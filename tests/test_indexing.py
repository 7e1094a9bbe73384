"""Advanced indexing (integer/bool tensors and lists mixed with slices, None and ...) for reading
and assignment, index_put(_), against numpy, with gradcheck."""
import numpy as np
import pytest

import clgrad
from clgrad.autograd import gradcheck
from helpers import check_op

I64 = np.int64
I1 = np.array([[0, 2], [1, -1]], dtype=I64)
I2 = np.array([1, 3], dtype=I64)


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, size=shape)


# each case: an index built from the index arrays passed in (tensors on clgrad, arrays on numpy)
READ_CASES = {
    "list": lambda i, j, k, n: [1, 0, 1],
    "first_dim": lambda i, j, k, n: k,
    "second_dim": lambda i, j, k, n: (slice(None), k),
    "adjacent_pair": lambda i, j, k, n: (slice(None), i, j),
    "separated": lambda i, j, k, n: (k, slice(None), j),
    "ellipsis": lambda i, j, k, n: (Ellipsis, j),
    "none_and_slice": lambda i, j, k, n: (None, k[0], slice(1, 3), None),
    "negative": lambda i, j, k, n: (slice(None), slice(None), n),
    "step_slice": lambda i, j, k, n: (slice(None, None, 2), slice(None), j),
    "empty": lambda i, j, k, n: (slice(None), i[:0]),
}
K = np.array([[0, 1], [1, 1]], dtype=I64)
NEG = np.array([-1, -4, 0], dtype=I64)


@pytest.mark.parametrize("case", list(READ_CASES))
def test_read(device, case):
    make_idx = READ_CASES[case]
    to_t = (lambda ix: tuple(ix) if isinstance(ix, tuple) else ix)
    check_op(None, lambda x, *ix: x[to_t(make_idx(*ix))],
             lambda x, *ix: x[to_t(make_idx(*ix))], device=device,
             inputs=[rnd(2, 3, 4, 5), I1, I2, K, NEG])


def test_read_int_with_tensor_follows_torch(device):
    # PyTorch applies an int as a select first, so the remaining tensor index stays in place
    # (numpy would move the advanced dims to the front): x[0, :, j] has shape (4, 2)
    check_op(None, lambda x, j: x[0, :, j], lambda x, j: x[0][:, j], device=device,
             inputs=[rnd(1, 9, 4), I2])
    check_op(None, lambda x, j: x[:, 1, j], lambda x, j: x[:, 1][:, j], device=device,
             inputs=[rnd(9, 2, 4), I2], grad=False)


# shapes keep gradcheck's output above 16 elements (its cheap random-projection mode)
MASK = np.random.default_rng(7).uniform(size=(4, 5)) < 0.6


def test_read_bool(device):
    check_op(None, lambda x, m: x[m], lambda x, m: x[m], device=device,
             inputs=[rnd(4, 5), MASK])
    check_op(None, lambda x, m: x[m], lambda x, m: x[m], device=device,
             inputs=[rnd(4, 5, 2), MASK], grad=False)
    check_op(None, lambda x, m: x[:, m[0]], lambda x, m: x[:, m[0]], device=device,
             inputs=[rnd(6, 5), MASK])
    check_op(None, lambda x, m: x[m[:, 1], 1:], lambda x, m: x[m[:, 1], 1:], device=device,
             inputs=[rnd(4, 5), MASK], grad=False)
    check_op(None, lambda x, m: x[m], lambda x, m: x[m], device=device,
             inputs=[rnd(4, 5), np.zeros((4, 5), bool)], grad=False)


def test_read_python_bool_and_0d(device):
    x = clgrad.tensor(rnd(2, 3), device=device)
    assert x[True].shape == (1, 2, 3) and x[False].shape == (0, 2, 3)
    assert x[clgrad.tensor(True, device=device)].shape == (1, 2, 3)
    np.testing.assert_allclose(x[None, True, 1].numpy(), rnd(2, 3)[None, True, 1], rtol=1e-6)
    s = clgrad.tensor(5.0, device=device)
    assert s[True].shape == (1,) and s[None, False].shape == (1, 0)
    np.testing.assert_allclose(x[np.array([1, 0])].numpy(), rnd(2, 3)[[1, 0]], rtol=1e-6)


def test_read_int_and_bool_dtypes(device):
    a = np.arange(12).reshape(3, 4)
    x = clgrad.tensor(a, device=device)
    np.testing.assert_array_equal(x[[2, 0], [1, 1]].numpy(), a[[2, 0], [1, 1]])
    b = clgrad.tensor(a % 3 == 0, device=device)
    assert b[:, [0, 3]].dtype is clgrad.bool
    np.testing.assert_array_equal(b[:, [0, 3]].numpy(), (a % 3 == 0)[:, [0, 3]])
    i32 = clgrad.tensor([2, 1], dtype=clgrad.int32, device=device)
    np.testing.assert_array_equal(x[i32].numpy(), a[[2, 1]])
    u8 = clgrad.tensor([1, 0, 1], dtype=clgrad.uint8, device=device)
    np.testing.assert_array_equal(x[u8].numpy(), a[[0, 2]])


def test_read_errors(device):
    x = clgrad.zeros(3, 4, device=device)
    clgrad.runtime.reset_stats()
    y = x[[0, 3]]                      # the kernel sets the device's error flag, nothing waits
    assert clgrad.runtime.stats()["d2h"] == 0
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        y.numpy()                      # ... and the next sync raises
    assert clgrad.runtime.stats()["d2h"] == 1 and clgrad.runtime.stats()["flag_reads"] == 1
    with pytest.raises(IndexError, match="index -5 is out of bounds for dimension 1 with size 4"):
        x[:, clgrad.tensor([-5], device=device)]
        clgrad.synchronize(device)
    with pytest.raises(IndexError, match=r"The shape of the mask \[2\] at index 0 does not match "
                                         r"the shape of the indexed tensor \[3, 4\] at index 0"):
        x[clgrad.tensor([True, False], device=device)]
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or "
                                         "bool tensors"):
        x[clgrad.tensor([0.0], device=device)]
    with pytest.raises(IndexError, match="too many indices for tensor of dimension 2"):
        x[[0], [0], [0]]
    with pytest.raises(IndexError, match=r"shape mismatch: indexing tensors could not be "
                                         r"broadcast together with shapes \[2\], \[3\]"):
        x[[0, 1], [0, 1, 2]]


def test_read_grad_duplicates(fp64):
    x = clgrad.tensor(rnd(3, 4), dtype=clgrad.float64, device=fp64, requires_grad=True)
    i = clgrad.tensor([[0, 0], [2, 0]], device=fp64)
    assert gradcheck(lambda t: t[i, 1:] * t[i, 1:], [x])
    y = x[[1, 1, 1]].sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.eye(3)[[1]].T.repeat(4, 1) * 3)


# ---- assignment -------------------------------------------------------------------------------
def _set(x, idx, v):
    y = x * 1
    y[idx] = v
    return y


def _np_set(x, idx, v):
    y = x.copy()
    y[idx] = v
    return y


def test_setitem_scalar_and_broadcast(device):
    check_op(None, lambda x, i: _set(x, i, 2.5), lambda x, i: _np_set(x, i, 2.5),
             device=device, inputs=[rnd(4, 5), np.array([2, 0], I64)])
    check_op(None, lambda x, v, i: _set(x, (slice(None), i), v),
             lambda x, v, i: _np_set(x, (slice(None), i), v), device=device,
             inputs=[rnd(4, 5), rnd(2, seed=1), np.array([3, 1], I64)])
    check_op(None, lambda x, v, i, j: _set(x, (i, j), v),
             lambda x, v, i, j: _np_set(x, (i, j), v), device=device,
             inputs=[rnd(4, 5), rnd(2, 1, seed=1), np.array([[0], [2]], I64),
                     np.array([0, 3], I64)], grad=False)
    check_op(None, lambda x, v, i: _set(x, (Ellipsis, i), v),
             lambda x, v, i: _np_set(x, (Ellipsis, i), v), device=device,
             inputs=[rnd(2, 3, 4), rnd(1, 3, 1, seed=1), np.array([3], I64)])


def test_setitem_mask(device):
    n = int(MASK.sum())
    check_op(None, lambda x, m: _set(x, m, -1.0), lambda x, m: _np_set(x, m, -1.0),
             device=device, inputs=[rnd(4, 5), MASK])
    check_op(None, lambda x, v, m: _set(x, m, v), lambda x, v, m: _np_set(x, m, v),
             device=device, inputs=[rnd(4, 5), rnd(n, seed=1), MASK])
    check_op(None, lambda x, v, m: _set(x, m[:, 0], v), lambda x, v, m: _np_set(x, m[:, 0], v),
             device=device, inputs=[rnd(4, 5), rnd(5, seed=1), MASK], grad=False)


def test_setitem_inplace_views_and_dtypes(device):
    base = clgrad.zeros(3, 5, device=device)
    view = base[:, 1::2]                       # non-contiguous target
    view[[0, 2], [1, 1]] = clgrad.tensor([7.0, 8.0], device=device)
    want = np.zeros((3, 5))
    want[[0, 2], [3, 3]] = [7.0, 8.0]
    np.testing.assert_array_equal(base.numpy(), want)
    x = clgrad.zeros(4, dtype=clgrad.int32, device=device)
    x[clgrad.tensor([1, 3], device=device)] = 9
    assert x.numpy().tolist() == [0, 9, 0, 9]
    b = clgrad.zeros(3, dtype=clgrad.bool, device=device)
    b[[0, 2]] = True
    assert b.numpy().tolist() == [True, False, True]
    h = clgrad.zeros(3, dtype=clgrad.float16, device=device)
    h[[1]] = 0.5
    assert h.numpy().tolist() == [0.0, 0.5, 0.0]
    e = clgrad.zeros(3, device=device)
    e[[]] = 1.0
    assert e.numpy().tolist() == [0.0, 0.0, 0.0]


def test_setitem_errors(device):
    x = clgrad.zeros(3, 4, device=device)
    with pytest.raises(RuntimeError, match=r"shape mismatch: value tensor of shape \[3\] cannot "
                                           r"be broadcast to indexing result of shape \[2, 4\]"):
        x[[0, 1]] = clgrad.zeros(3, device=device)
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
        x[:, [4]] = 1.0
        clgrad.synchronize(device)
    leaf = clgrad.zeros(3, requires_grad=True, device=device)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        leaf[[0]] = 1.0


def test_index_put(device):
    def np_put(x, v, i, j, acc):
        y = x.copy()
        if acc:
            np.add.at(y, (i, j), v)
        else:
            y[i, j] = v
        return y
    i, j = np.array([0, 2, 0, 0], I64), np.array([1, 3, 1, 1], I64)
    check_op(None, lambda x, v, i, j: x.index_put((i, j), v, accumulate=True),
             lambda x, v, i, j: np_put(x, v, i, j, True), device=device,
             inputs=[rnd(3, 4), rnd(4, seed=1), i, j])
    check_op(None, lambda x, v, i, j: clgrad.index_put(x, (i, j), v),
             lambda x, v, i, j: np_put(x, v, i, j, False), device=device,
             inputs=[rnd(3, 4), rnd(1, seed=1), i[:2], j[:2]])
    y = clgrad.zeros(3, 4, device=device)
    y.index_put_((clgrad.tensor(i, device=device), clgrad.tensor(j, device=device)),
                 clgrad.tensor([1.0, 2.0, 4.0, 8.0], device=device), accumulate=True)
    want = np.zeros((3, 4))
    np.add.at(want, (i, j), [1.0, 2.0, 4.0, 8.0])
    np.testing.assert_array_equal(y.numpy(), want)
    # duplicates without accumulate: deterministically the last one written wins
    z = clgrad.zeros(2, device=device)
    z.index_put_((clgrad.tensor([1, 1, 1], device=device),),
                 clgrad.tensor([3.0, 4.0, 5.0], device=device))
    assert z.numpy().tolist() == [0.0, 5.0]


def test_index_put_grad_inplace(fp64):
    x = clgrad.tensor(rnd(3, 4), dtype=clgrad.float64, device=fp64, requires_grad=True)
    v = clgrad.tensor(rnd(2, seed=1), dtype=clgrad.float64, device=fp64, requires_grad=True)
    i = clgrad.tensor([2, 0], device=fp64)

    def f(t, w):
        y = t * 2
        y.index_put_((i, clgrad.tensor([1, 1], device=fp64)), w * w, accumulate=True)
        y[:, [0]] = w.sum()
        return y * t
    assert gradcheck(f, [x, v])


def test_large_scatter_is_deterministic(device):
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 50, size=3000)
    vals = rng.standard_normal(3000).astype(np.float32)
    outs = []
    for _ in range(2):
        y = clgrad.zeros(50, device=device)
        y.index_put_((clgrad.tensor(idx, device=device),), clgrad.tensor(vals, device=device),
                     accumulate=True)
        outs.append(y.numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    want = np.zeros(50)
    np.add.at(want, idx, vals.astype(np.float64))
    np.testing.assert_allclose(outs[0], want, atol=1e-5)


def test_double_backward_through_index_and_put(fp64):
    x = clgrad.tensor(rnd(4, 5), dtype=clgrad.float64, device=fp64, requires_grad=True)
    i = clgrad.tensor([3, 0, 3], device=fp64)

    def first(t):
        # autograd.gradgradcheck runs its inner grad under no_grad; build the graph here instead
        with clgrad.enable_grad():
            y = t[i] * t[i]
            z = clgrad.zeros(4, 5, dtype=clgrad.float64, device=fp64).index_put(
                (i,), y, accumulate=True)
            (g,) = clgrad.autograd.grad([(z * t).sum()], [t], create_graph=True)
        return g
    assert gradcheck(first, [x])
