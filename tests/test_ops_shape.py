"""Shape, join, gather/scatter, mask, triangle, pad and sort ops against numpy, with gradcheck."""
import numpy as np
import pytest

import clgrad
from clgrad.autograd import gradcheck
from helpers import check_op, make

I64 = np.int64


def ints(arr):
    return np.asarray(arr, dtype=I64)


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, size=shape)


# ---- joins and splits ------------------------------------------------------------------------
@pytest.mark.parametrize("shapes,dim", [
    ([(2, 3), (2, 1), (2, 4)], 1), ([(2, 3), (1, 3)], 0), ([(2, 3), (2, 2)], -1),
    ([(2, 0, 3), (2, 2, 3)], 1), ([(4,), (0,)], 0), ([(0,), (2, 3)], 1), ([(1, 1), (1, 1)], 0)])
def test_cat(device, shapes, dim):
    def ref(*a):
        a = [x for x in a if not (x.ndim == 1 and x.shape[0] == 0)]
        return np.concatenate(a, dim)
    check_op(shapes, lambda *t: clgrad.cat(t, dim), ref, device=device)


def test_cat_aliases_and_dtypes(device):
    a = clgrad.tensor([[1, 2]], device=device)
    b = clgrad.tensor([[0.5, 1.5]], device=device)
    out = clgrad.concat([a, b], dim=0)
    assert out.dtype is clgrad.float32
    np.testing.assert_array_equal(out.numpy(), [[1, 2], [0.5, 1.5]])
    c = clgrad.concatenate([a, a], 1)
    assert c.dtype is clgrad.int64 and c.shape == (1, 4)
    m = clgrad.cat([clgrad.tensor([True], device=device), clgrad.tensor([False], device=device)])
    assert m.dtype is clgrad.bool and m.numpy().tolist() == [True, False]


def test_cat_errors(device):
    a = clgrad.zeros(2, 3, device=device)
    with pytest.raises(RuntimeError, match="expected a non-empty list of Tensors"):
        clgrad.cat([])
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 0. "
                                           "Expected size 3 but got size 4 for tensor number 1"):
        clgrad.cat([a, clgrad.zeros(2, 4, device=device)])
    with pytest.raises(RuntimeError, match="Tensors must have same number of dimensions: got 2 "
                                           "and 3"):
        clgrad.cat([a, clgrad.zeros(2, 3, 1, device=device)])
    with pytest.raises(RuntimeError, match="zero-dimensional tensor"):
        clgrad.cat([clgrad.tensor(1.0, device=device)])
    with pytest.raises(IndexError, match="Dimension out of range"):
        clgrad.cat([a, a], 2)


@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_stack(device, dim):
    check_op([(2, 3), (2, 3), (2, 3)], lambda *t: clgrad.stack(t, dim),
             lambda *a: np.stack(a, dim), device=device)


def test_stack_family(device):
    check_op([(3,), (3,)], lambda a, b: clgrad.hstack([a, b]), lambda a, b: np.hstack([a, b]),
             device=device)
    check_op([(2, 3), (2, 1)], lambda a, b: clgrad.hstack([a, b]),
             lambda a, b: np.hstack([a, b]), device=device)
    check_op([(3,), (2, 3)], lambda a, b: clgrad.vstack([a, b]), lambda a, b: np.vstack([a, b]),
             device=device)
    check_op([(2, 3), (2, 3)], lambda a, b: clgrad.dstack([a, b]),
             lambda a, b: np.dstack([a, b]), device=device)
    check_op([()], lambda a: clgrad.stack([a, a]), lambda a: np.stack([a, a]), device=device)
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got "
                                           r"\[2\] at entry 0 and \[3\] at entry 1"):
        clgrad.stack([clgrad.zeros(2, device=device), clgrad.zeros(3, device=device)])


@pytest.mark.parametrize("arg,dim", [(2, 0), ([1, 3, 1], 1), (4, -1), (5, 1), ([0, 5], 1)])
def test_split(device, arg, dim):
    def ref(a):
        if isinstance(arg, int):
            return tuple(np.split(a, range(arg, a.shape[dim], arg), axis=dim))
        return tuple(np.split(a, np.cumsum(arg)[:-1], axis=dim))
    check_op([(3, 5)], lambda t: t.split(arg, dim), ref, device=device)
    check_op([(3, 5)], lambda t: clgrad.split(t, arg, dim), ref, device=device, grad=False,
             layouts=("contiguous",))


def test_split_errors(device):
    x = clgrad.zeros(3, 5, device=device)
    with pytest.raises(RuntimeError, match=r"split_with_sizes expects split_sizes to sum exactly "
                                           r"to 5 \(input tensor's size at dimension 1\), but got "
                                           r"split_sizes=\[2, 2\]"):
        x.split([2, 2], 1)


@pytest.mark.parametrize("chunks,n", [(2, 5), (3, 6), (4, 3), (2, 1)])
def test_chunk(device, chunks, n):
    size = -(-n // chunks)
    check_op([(n, 2)], lambda t: t.chunk(chunks),
             lambda a: tuple(np.split(a, range(size, n, size))), device=device)
    assert len(clgrad.chunk(clgrad.zeros(n, device=device), chunks)) == len(range(0, n, size))


def test_tensor_split_unbind(device):
    check_op([(7, 2)], lambda t: t.tensor_split(3), lambda a: tuple(np.array_split(a, 3)),
             device=device)
    check_op([(7, 2)], lambda t: t.tensor_split([1, 5]), lambda a: tuple(np.split(a, [1, 5])),
             device=device)
    check_op([(3, 2)], lambda t: t.unbind(1), lambda a: tuple(a[:, i] for i in range(2)),
             device=device)
    check_op([(3, 2)], lambda t: clgrad.unbind(t, -2), lambda a: tuple(a), device=device)


# ---- flip, roll, repeat -----------------------------------------------------------------------
@pytest.mark.parametrize("dims", [(0,), (1,), (0, 1), (-1,), ()])
def test_flip(device, dims):
    check_op([(3, 4)], lambda t: t.flip(dims), lambda a: np.flip(a, dims) if dims else a,
             device=device)


def test_flip_variants(device):
    check_op([(2, 3, 4)], lambda t: clgrad.flip(t, [0, 2]), lambda a: np.flip(a, (0, 2)),
             device=device)
    check_op([(2, 3)], lambda t: t.fliplr(), np.fliplr, device=device)
    check_op([(2, 3)], lambda t: clgrad.flipud(t), np.flipud, device=device)
    check_op([()], lambda t: t.flip(()), lambda a: a, device=device)
    b = clgrad.tensor([True, False, False], device=device)
    assert b.flip(0).numpy().tolist() == [False, False, True]


@pytest.mark.parametrize("shifts,dims", [(1, 0), (-2, 1), (5, 1), ((1, 2), (0, 1)), (3, None),
                                         (0, 0)])
def test_roll(device, shifts, dims):
    check_op([(3, 4)], lambda t: t.roll(shifts, dims), lambda a: np.roll(a, shifts, dims),
             device=device)


@pytest.mark.parametrize("reps", [(2, 1), (1, 3), (2, 2, 2), (3, 0)])
def test_repeat_tile(device, reps):
    check_op([(2, 3)], lambda t: t.repeat(*reps), lambda a: np.tile(a, reps), device=device)
    check_op([(2, 3)], lambda t: clgrad.tile(t, reps), lambda a: np.tile(a, reps), device=device)
    check_op([(3,)], lambda t: t.tile((2,)), lambda a: np.tile(a, 2), device=device)
    with pytest.raises(RuntimeError, match="Number of dimensions of repeat dims can not be "
                                           "smaller than number of dimensions of tensor"):
        clgrad.zeros(2, 3, device=device).repeat(2)


def test_repeat_interleave(device):
    check_op([(2, 3)], lambda t: t.repeat_interleave(2), lambda a: np.repeat(a, 2),
             device=device)
    check_op([(2, 3)], lambda t: t.repeat_interleave(3, dim=1),
             lambda a: np.repeat(a, 3, axis=1), device=device)
    reps = ints([2, 0, 3])
    check_op(None, lambda t, r: t.repeat_interleave(r, dim=-1),
             lambda a, r: np.repeat(a, r, axis=-1), device=device,
             inputs=[rnd(2, 3), reps])
    check_op(None, lambda t, r: clgrad.repeat_interleave(t, r, 0, output_size=5),
             lambda a, r: np.repeat(a, r, axis=0), device=device, inputs=[rnd(3, 2), reps])
    r = clgrad.repeat_interleave(clgrad.tensor(reps, device=device))
    np.testing.assert_array_equal(r.numpy(), [0, 0, 2, 2, 2])


# ---- gather / scatter family ----------------------------------------------------------------
# (negative indices are out of range here, as in PyTorch: tests/test_faults.py)
@pytest.mark.parametrize("dim,idx", [(0, [[0, 2, 1, 0], [2, 2, 0, 1]]),
                                     (1, [[3, 0], [1, 1], [2, 0]]), (-1, [[3, 0, 0]]),
                                     (1, [[0], [1]])])
def test_gather(device, dim, idx):
    check_op(None, lambda t, i: t.gather(dim, i),
             lambda a, i: np.take_along_axis(a[:i.shape[0]] if dim else a[:, :i.shape[1]], i, dim),
             device=device, inputs=[rnd(3, 4), ints(idx)])


def test_gather_int_bool_0d(device):
    x = clgrad.tensor([[1, 2, 3], [4, 5, 6]], device=device)
    i = clgrad.tensor([[2, 0], [1, 1]], device=device)
    np.testing.assert_array_equal(x.gather(1, i).numpy(), [[3, 1], [5, 5]])
    b = clgrad.tensor([True, False], device=device)
    assert b.gather(0, clgrad.tensor([1, 1, 0], device=device)).numpy().tolist() == \
        [False, False, True]
    s = clgrad.tensor(3.5, device=device)
    assert s.gather(0, clgrad.tensor(0, device=device)).item() == 3.5
    e = clgrad.zeros(3, 0, device=device).gather(1, clgrad.zeros(3, 0, dtype=clgrad.int64,
                                                                  device=device))
    assert e.shape == (3, 0)


def test_gather_errors(device):
    x = clgrad.zeros(2, 3, device=device)
    clgrad.runtime.reset_stats()
    y = x.gather(1, clgrad.tensor([[0, 3]], device=device))
    assert clgrad.runtime.stats().get("d2h", 0) == 0        # no read per op: the next sync raises
    with pytest.raises(RuntimeError, match="index 3 is out of bounds for dimension 1 with size 3"):
        y.numpy()
    with pytest.raises(RuntimeError, match="index -4 is out of bounds for dimension 1"):
        x.gather(1, clgrad.tensor([[-4]], device=device))
        clgrad.synchronize(device)
    with pytest.raises(RuntimeError, match="Index tensor must have the same number of dimensions"):
        x.gather(1, clgrad.tensor([0], device=device))
    with pytest.raises(RuntimeError, match="Size does not match at dimension 0"):
        x.gather(1, clgrad.zeros(3, 1, dtype=clgrad.int64, device=device))
    with pytest.raises(RuntimeError, match="Expected dtype int64 for index"):
        x.gather(1, clgrad.zeros(2, 1, device=device))


def test_gather_double_backward(fp64):
    x = clgrad.tensor(rnd(3, 4), dtype=clgrad.float64, device=fp64, requires_grad=True)
    i = clgrad.tensor([[0, 0, 3], [1, 2, 2], [3, 3, 3]], device=fp64)
    go = clgrad.tensor(rnd(3, 3, seed=2), dtype=clgrad.float64, device=fp64)

    def first(t):
        # autograd.gradgradcheck runs its inner grad under no_grad; build the graph here instead
        with clgrad.enable_grad():
            y = t.gather(1, i)
            (g,) = clgrad.autograd.grad([(y * y * go).sum()], [t], create_graph=True)
        return g
    assert gradcheck(first, [x])


def _np_scatter(a, dim, idx, src, mode="set"):
    out = a.copy()
    for pos in np.ndindex(*idx.shape):
        dst = list(pos)
        dst[dim] = idx[pos]
        v = src[pos] if isinstance(src, np.ndarray) else src
        if mode == "add":
            out[tuple(dst)] += v
        elif mode == "multiply":
            out[tuple(dst)] *= v
        else:
            out[tuple(dst)] = v
    return out


IDX = ints([[0, 1, 2, 0], [2, 0, 1, 1]])            # a permutation per column: no duplicates


def test_scatter(device):
    check_op(None, lambda t, s, i: t.scatter(0, i, s),
             lambda a, s, i: _np_scatter(a, 0, i, s), device=device,
             inputs=[rnd(3, 6), rnd(2, 5, seed=1), IDX])
    check_op(None, lambda t, i: t.scatter(0, i, 1.5), lambda a, i: _np_scatter(a, 0, i, 1.5),
             device=device, inputs=[rnd(3, 6), IDX])
    check_op(None, lambda t, s, i: clgrad.scatter(t, 1, i, s, reduce="add"),
             lambda a, s, i: _np_scatter(a, 1, i, s, "add"), device=device,
             inputs=[rnd(2, 9), rnd(2, 4, seed=1), ints([[0, 0, 2, 0], [1, 1, 1, 1]])])
    check_op(None, lambda t, s, i: t.scatter(1, i, s, reduce="multiply"),
             lambda a, s, i: _np_scatter(a, 1, i, s, "multiply"), device=device, grad=False,
             inputs=[rnd(2, 3), rnd(2, 4, seed=1), ints([[0, 0, 2, 0], [1, 1, 1, 1]])])


def test_scatter_add_duplicates(device):
    idx = ints([[0, 0, 2, 0, 0], [1, 1, 1, 1, 2]])
    check_op(None, lambda t, s, i: t.scatter_add(1, i, s),
             lambda a, s, i: _np_scatter(a, 1, i, s, "add"), device=device,
             inputs=[rnd(2, 3), rnd(2, 5, seed=1), idx])
    check_op(None, lambda t, s, i: clgrad.scatter_add(t, -1, i, s),
             lambda a, s, i: _np_scatter(a, 1, i, s, "add"), device=device,
             inputs=[rnd(2, 3), rnd(3, 6, seed=1), idx])
    x = clgrad.zeros(4, dtype=clgrad.int64, device=device)
    x.scatter_add_(0, clgrad.tensor([1, 1, 3, 1], device=device),
                   clgrad.tensor([1, 2, 3, 4], device=device))
    np.testing.assert_array_equal(x.numpy(), [0, 7, 0, 3])


def test_scatter_inplace(device):
    x = clgrad.zeros(3, 3, device=device)
    x.scatter_(1, clgrad.tensor([[2], [0], [1]], device=device), 1.0)
    np.testing.assert_array_equal(x.numpy(), np.eye(3)[[2, 0, 1]])
    with pytest.raises(RuntimeError, match="index 3 is out of bounds for dimension 1 with size 3"):
        x.scatter_(1, clgrad.tensor([[3], [0], [1]], device=device), 1.0)
        clgrad.synchronize(device)


# negative indices are out of range for gather and index_select, as in PyTorch (test_faults.py)
@pytest.mark.parametrize("dim,idx", [(0, [2, 0, 0, 1]), (1, [3, 1]), (-1, []), (1, [1])])
def test_index_select(device, dim, idx):
    check_op(None, lambda t, i: t.index_select(dim, i), lambda a, i: np.take(a, i, dim),
             device=device, inputs=[rnd(3, 4), ints(idx)])
    check_op(None, lambda t, i: clgrad.index_select(t, dim, i), lambda a, i: np.take(a, i, dim),
             device=device, inputs=[rnd(3, 4), ints(idx)], grad=False, layouts=("sliced",))


def test_index_select_errors_and_0d(device):
    x = clgrad.zeros(3, device=device)
    with pytest.raises(IndexError, match="index out of range in self"):
        x.index_select(0, clgrad.tensor([3], device=device)).numpy()
    with pytest.raises(IndexError, match="Index is supposed to be a vector"):
        x.index_select(0, clgrad.tensor([[0]], device=device))
    s = clgrad.tensor(2.0, device=device)
    assert s.index_select(0, clgrad.tensor([0], device=device)).numpy().tolist() == [2.0]


def _np_index_add(a, dim, idx, src, alpha=1.0):
    out = np.moveaxis(a.copy(), dim, 0)
    s = np.moveaxis(src, dim, 0)
    for k, i in enumerate(idx):
        out[i] += alpha * s[k]
    return np.moveaxis(out, 0, dim)


def test_index_add_copy_fill(device):
    idx = ints([1, 0, 1])
    check_op(None, lambda t, s, i: t.index_add(1, i, s, alpha=2.0),
             lambda a, s, i: _np_index_add(a, 1, i, s, 2.0), device=device,
             inputs=[rnd(6, 3), rnd(6, 3, seed=1), idx])
    check_op(None, lambda t, s, i: clgrad.index_add(t, 0, i, s),
             lambda a, s, i: _np_index_add(a, 0, i, s), device=device,
             inputs=[rnd(2, 9), rnd(3, 9, seed=1), idx], grad=False)

    def np_copy(a, s, i):
        out = a.copy()
        out[i] = s
        return out
    check_op(None, lambda t, s, i: t.index_copy(0, i, s), np_copy, device=device,
             inputs=[rnd(4, 5), rnd(2, 5, seed=1), ints([3, 1])])

    def np_fill(a, i):
        out = a.copy()
        out[:, i] = -1.0
        return out
    check_op(None, lambda t, i: t.index_fill(1, i, -1.0), np_fill, device=device,
             inputs=[rnd(5, 4), ints([0, 2, 2])])
    x = clgrad.zeros(2, 3, dtype=clgrad.int32, device=device)
    x.index_fill_(1, clgrad.tensor([2], device=device), 7)
    x.index_add_(0, clgrad.tensor([1], device=device),
                 clgrad.ones(1, 3, dtype=clgrad.int32, device=device))
    np.testing.assert_array_equal(x.numpy(), [[0, 0, 7], [1, 1, 8]])


def test_take_and_take_along_dim(device):
    check_op(None, lambda t, i: t.take(i), lambda a, i: np.take(a, i), device=device,
             inputs=[rnd(3, 4), ints([[0, 11], [-1, 5]])])
    check_op(None, lambda t, i: clgrad.take_along_dim(t, i, 1),
             lambda a, i: np.take_along_axis(a, np.broadcast_to(i, (3, 2)), 1), device=device,
             inputs=[rnd(3, 4), ints([[3, 0]])])
    check_op(None, lambda t, i: t.take_along_dim(i),
             lambda a, i: np.take_along_axis(a.reshape(-1), i.reshape(-1), 0), device=device,
             inputs=[rnd(3, 4), ints([[3, 0], [11, 2]])])
    with pytest.raises(IndexError, match="out of range: tried to access index 12 on a tensor of "
                                         "12 elements."):
        clgrad.zeros(3, 4, device=device).take(clgrad.tensor([12], device=device)).numpy()


# ---- masks ------------------------------------------------------------------------------------
MASK = np.random.default_rng(7).uniform(size=(4, 5)) < 0.6


def test_masked_fill(device):
    check_op(None, lambda t, m: t.masked_fill(m, 0.5), lambda a, m: np.where(m, 0.5, a),
             device=device, inputs=[rnd(4, 5), MASK])
    check_op(None, lambda t, m: clgrad.masked_fill(t, m, -1.0),
             lambda a, m: np.where(m, -1.0, a), device=device, inputs=[rnd(4, 5), MASK[0]])
    check_op(None, lambda t, v, m: t.masked_fill(m, v), lambda a, v, m: np.where(m, v, a),
             device=device, inputs=[rnd(4, 5), rnd(), MASK])
    x = clgrad.tensor([1, 2, 3], device=device)
    x.masked_fill_(clgrad.tensor([True, False, True], device=device), 9)
    assert x.numpy().tolist() == [9, 2, 9] and x.dtype is clgrad.int64
    with pytest.raises(RuntimeError, match="only supports boolean masks"):
        x.masked_fill(clgrad.tensor([1, 0, 1], device=device), 0)
    with pytest.raises(RuntimeError, match=r"The size of the mask \(\[2, 3\]\) must be "
                                           r"broadcastable to the size of self \(\[3\]\)"):
        x.masked_fill(clgrad.ones(2, 3, dtype=clgrad.bool, device=device), 0)


def test_masked_fill_inplace_grad(fp64):
    a = clgrad.tensor(rnd(4, 5), dtype=clgrad.float64, device=fp64, requires_grad=True)
    m = clgrad.tensor(MASK, device=fp64)

    def f(t):
        y = t * 1.0
        y.masked_fill_(m, 2.0)
        return y * t
    assert gradcheck(f, [a])


def test_masked_select_scatter(device):
    check_op(None, lambda t, m: t.masked_select(m), lambda a, m: a[m], device=device,
             inputs=[rnd(4, 5), MASK])
    check_op(None, lambda t, m: clgrad.masked_select(t, m),
             lambda a, m: np.broadcast_to(a, (4, 5))[m], device=device,
             inputs=[rnd(1, 5), MASK], grad=False)
    check_op(None, lambda t, m: t.masked_select(m), lambda a, m: a[m], device=device,
             inputs=[rnd(4, 5), np.zeros((4, 5), bool)])

    def np_ms(a, s, m):
        out = a.copy()
        out[m] = s.reshape(-1)[:m.sum()]
        return out
    check_op(None, lambda t, s, m: t.masked_scatter(m, s), np_ms, device=device,
             inputs=[rnd(4, 5), rnd(3, 5, seed=1), MASK])


@pytest.mark.parametrize("shape", [(3, 4), (5,), (2, 0), (2, 3, 2)])
def test_nonzero(device, shape):
    a = (np.random.default_rng(1).uniform(size=shape) < 0.5).astype(np.int32)
    t = make(a, "int32", device, "permuted")
    np.testing.assert_array_equal(t.nonzero().numpy(), np.argwhere(a))
    np.testing.assert_array_equal(clgrad.argwhere(t).numpy(), np.argwhere(a))
    for got, want in zip(clgrad.nonzero(t, as_tuple=True), np.nonzero(a)):
        np.testing.assert_array_equal(got.numpy(), want)
    assert t.nonzero().dtype is clgrad.int64
    clgrad.runtime.reset_stats()
    t.nonzero()
    assert clgrad.runtime.stats().get("d2h", 0) <= 1     # only the count comes back


def test_nonzero_0d(device):
    assert clgrad.tensor(3.0, device=device).nonzero().shape == (1, 0)
    assert clgrad.tensor(0.0, device=device).nonzero().shape == (0, 0)
    f = clgrad.tensor([0.0, -1.5, np.nan], device=device)
    np.testing.assert_array_equal(f.nonzero().numpy(), [[1], [2]])


# ---- triangles, diagonals --------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 1, -1, 5, -4])
def test_tril_triu(device, k):
    check_op([(3, 4)], lambda t: t.tril(k), lambda a: np.tril(a, k), device=device)
    check_op([(2, 3, 3)], lambda t: clgrad.triu(t, k), lambda a: np.triu(a, k), device=device)
    x = clgrad.ones(3, 3, dtype=clgrad.int32, device=device)
    assert x.tril(k).dtype is clgrad.int32
    np.testing.assert_array_equal(x.tril(k).numpy(), np.tril(np.ones((3, 3)), k))
    y = clgrad.tensor(rnd(3, 3), device=device)
    y.triu_(k)
    np.testing.assert_allclose(y.numpy(), np.triu(rnd(3, 3), k), rtol=1e-6)


@pytest.mark.parametrize("k", [0, 1, -2])
def test_diag(device, k):
    check_op([(3,)], lambda t: t.diag(k), lambda a: np.diag(a, k), device=device)
    check_op([(3, 4)], lambda t: clgrad.diag(t, k), lambda a: np.diag(a, k), device=device)


@pytest.mark.parametrize("off,d1,d2", [(0, 0, 1), (1, 0, 2), (-1, 2, 0), (0, -1, -2), (7, 0, 1)])
def test_diagonal(device, off, d1, d2):
    check_op([(4, 5, 6)], lambda t: t.diagonal(off, d1, d2),
             lambda a: np.diagonal(a, off, d1, d2), device=device)


def test_diagonal_is_view_and_diag_embed(device):
    x = clgrad.zeros(3, 3, device=device)
    d = x.diagonal()
    d.fill_(1.0)
    np.testing.assert_array_equal(x.numpy(), np.eye(3))

    def np_embed(a, off=0):
        n = a.shape[-1] + abs(off)
        out = np.zeros(a.shape[:-1] + (n, n))
        for i in range(a.shape[-1]):
            r, c = (i, i + off) if off >= 0 else (i - off, i)
            out[..., r, c] = a[..., i]
        return out
    check_op([(2, 3)], lambda t: t.diag_embed(), np_embed, device=device)
    check_op([(2, 3)], lambda t: clgrad.diag_embed(t, 1), lambda a: np_embed(a, 1), device=device)
    check_op([(2, 3)], lambda t: t.diag_embed(0, 0, 2),
             lambda a: np.moveaxis(np_embed(a), (1, 2), (0, 2)), device=device)
    with pytest.raises(RuntimeError, match="diagonal dimensions cannot be identical"):
        x.diagonal(0, 1, 1)


# ---- pad and one_hot --------------------------------------------------------------------------
@pytest.mark.parametrize("pad", [(1, 2), (0, 1, 2, 0), (-1, 2), (1, 1, -1, 0)])
def test_pad_constant(device, pad):
    def ref(a, value=0.0):
        width = [(0, 0)] * a.ndim
        crop = [slice(None)] * a.ndim
        for i in range(len(pad) // 2):
            d = a.ndim - 1 - i
            lo, hi = pad[2 * i], pad[2 * i + 1]
            width[d] = (max(lo, 0), max(hi, 0))
            crop[d] = slice(max(-lo, 0), a.shape[d] - max(-hi, 0))
        return np.pad(a[tuple(crop)], width, constant_values=value)
    check_op([(2, 3, 4)], lambda t: clgrad.pad(t, pad), ref, device=device)
    check_op([(2, 3)], lambda t: clgrad.pad(t, pad, value=2.5), lambda a: ref(a, 2.5),
             device=device)


@pytest.mark.parametrize("mode,npmode", [("reflect", "reflect"), ("replicate", "edge"),
                                         ("circular", "wrap")])
@pytest.mark.parametrize("pad", [(1, 2), (2, 0, 1, 1)])
def test_pad_modes(device, mode, npmode, pad):
    def ref(a):
        width = [(0, 0)] * a.ndim
        for i in range(len(pad) // 2):
            width[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        return np.pad(a, width, mode=npmode)
    check_op([(1, 3, 4)], lambda t: clgrad.pad(t, pad, mode=mode), ref, device=device)


def test_pad_errors(device):
    x = clgrad.zeros(1, 3, device=device)
    with pytest.raises(RuntimeError, match="Padding length must be divisible by 2"):
        clgrad.pad(x, (1,))
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding "
                                           "input dimension"):
        clgrad.pad(x, (3, 0), mode="reflect")


def test_one_hot(device):
    t = clgrad.tensor([[0, 2], [1, 0]], device=device)
    np.testing.assert_array_equal(clgrad.one_hot(t).numpy(), np.eye(3, dtype=I64)[t.numpy()])
    np.testing.assert_array_equal(clgrad.one_hot(t, 4).numpy(), np.eye(4, dtype=I64)[t.numpy()])
    assert clgrad.one_hot(t).dtype is clgrad.int64
    with pytest.raises(RuntimeError, match="one_hot is only applicable to index tensor"):
        clgrad.one_hot(clgrad.zeros(2, device=device))


# ---- sort family ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((3, 5), -1), ((4, 3), 0), ((2, 3, 7), 1), ((9,), 0),
                                       ((2, 0), 1), ((1, 1), 0)])
@pytest.mark.parametrize("descending", [False, True])
def test_sort(device, shape, dim, descending):
    def ref(a):
        idx = np.argsort(-a if descending else a, axis=dim, kind="stable")
        return np.take_along_axis(a, idx, dim), idx
    check_op([shape], lambda t: t.sort(dim, descending), ref, device=device)
    check_op([shape], lambda t: clgrad.argsort(t, dim, descending),
             lambda a: ref(a)[1], device=device, grad=False, layouts=("permuted",))


def test_sort_stable_nan_and_dtypes(device):
    v = np.array([2.0, np.nan, 1.0, 2.0, -np.inf, np.nan, 1.0])
    t = clgrad.tensor(v, device=device)
    vals, idx = clgrad.sort(t, stable=True)
    np.testing.assert_array_equal(idx.numpy(), [4, 2, 6, 0, 3, 1, 5])
    vals, idx = t.sort(descending=True)
    np.testing.assert_array_equal(idx.numpy(), [1, 5, 0, 3, 2, 6, 4])
    i = clgrad.tensor([3, 1, 3, 0, 1], dtype=clgrad.int32, device=device)
    v, ix = i.sort()
    assert v.dtype is clgrad.int32 and v.numpy().tolist() == [0, 1, 1, 3, 3]
    assert ix.numpy().tolist() == [3, 1, 4, 0, 2]
    b = clgrad.tensor([True, False, True], device=device)
    assert b.sort().values.numpy().tolist() == [False, True, True]
    h = clgrad.tensor([0.5, -1.0, 2.0], dtype=clgrad.float16, device=device)
    assert h.sort().values.dtype is clgrad.float16
    assert h.sort().values.numpy().tolist() == [-1.0, 0.5, 2.0]
    s = clgrad.tensor(4.0, device=device)
    assert s.sort().values.item() == 4.0 and s.sort().indices.item() == 0
    assert clgrad.msort(clgrad.tensor([[2.0], [1.0]], device=device)).numpy().tolist() == \
        [[1.0], [2.0]]


@pytest.mark.parametrize("k,dim,largest", [(2, -1, True), (1, 0, False), (3, 1, False),
                                           (0, 1, True)])
def test_topk(device, k, dim, largest):
    def ref(a):
        idx = np.argsort(-a if largest else a, axis=dim, kind="stable")
        idx = np.take(idx, range(k), axis=dim)
        return np.take_along_axis(a, idx, dim), idx
    check_op([(3, 4)], lambda t: t.topk(k, dim, largest), ref, device=device)
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        clgrad.topk(clgrad.zeros(3, device=device), 4)


def test_kthvalue(device):
    def ref(a, k, keep):
        idx = np.argsort(a, axis=1, kind="stable")[:, k - 1:k]
        v = np.take_along_axis(a, idx, 1)
        return (v, idx) if keep else (v[:, 0], idx[:, 0])
    check_op([(3, 5)], lambda t: t.kthvalue(2, 1), lambda a: ref(a, 2, False), device=device)
    check_op([(3, 5)], lambda t: clgrad.kthvalue(t, 5, -1, True), lambda a: ref(a, 5, True),
             device=device)
    with pytest.raises(RuntimeError, match="kthvalue\\(\\): selected number k out of range"):
        clgrad.zeros(3, device=device).kthvalue(4)


def test_sort_large_row(device):
    a = np.random.default_rng(3).integers(-50, 50, size=(2, 1000)).astype(np.float32)
    v, i = clgrad.tensor(a, device=device).sort(1)
    np.testing.assert_array_equal(i.numpy(), np.argsort(a, 1, kind="stable"))
    np.testing.assert_array_equal(v.numpy(), np.sort(a, 1))


def test_nonzero_many_blocks(device):
    # over 4096 elements the compaction walks several elements per block
    a = np.random.default_rng(4).uniform(size=(101, 99)) < 0.3
    t = clgrad.tensor(a, device=device)
    np.testing.assert_array_equal(t.nonzero().numpy(), np.argwhere(a))
    x = np.random.default_rng(5).standard_normal((101, 99)).astype(np.float32)
    np.testing.assert_array_equal(clgrad.tensor(x, device=device).masked_select(t).numpy(), x[a])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_moves_no_data(device, mode):
    # the gather positions are computed on the device: a pad in a training step copies nothing
    x = clgrad.randn(2, 3, 5, 6, device=device)
    clgrad.nn.functional.pad(x, (2, 1, 1, 2), mode=mode)
    clgrad.runtime.reset_stats()
    clgrad.nn.functional.pad(x, (2, 1, 1, 2), mode=mode)
    s = clgrad.runtime.stats()
    assert s["h2d"] == 0 and s["d2h"] == 0, s
