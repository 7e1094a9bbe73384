"""Matrix products and einsum against numpy (float64), with gradcheck in float64."""
import numpy as np
import pytest

import clgrad
from clgrad.autograd import gradcheck, gradgradcheck
from helpers import check_op


MATMUL_SHAPES = [
    [(4,), (4,)],                 # dot
    [(4,), (4, 3)],               # vector @ matrix
    [(3, 4), (4,)],               # matrix @ vector
    [(2, 3, 4), (4,)],            # batch @ vector
    [(4,), (2, 4, 3)],            # vector @ batch
    [(3, 4), (4, 5)],
    [(2, 3, 4), (2, 4, 5)],
    [(2, 1, 3, 4), (5, 4, 2)],    # broadcast batch dims
    [(3, 4), (2, 4, 5)],          # 2-D broadcast against a batch
    [(1, 4), (4, 1)],
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_cases(device, shapes):
    check_op(shapes, lambda a, b: a @ b, lambda a, b: a @ b, device=device, atol=1e-5)


def test_matmul_float32_256(device):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal((256, 256)).astype(np.float32)
    got = (clgrad.tensor(a, device=device) @ clgrad.tensor(b, device=device)).numpy()
    # float32 sums of 256 products of N(0,1) values: errors ~1e-5 relative to entries ~16
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, atol=2e-4, rtol=1e-4)


def test_matmul_edge_cases(device):
    z = clgrad.ones(0, 3, device=device) @ clgrad.ones(3, 2, device=device)
    assert z.shape == (0, 2)
    k0 = clgrad.ones(2, 0, device=device) @ clgrad.ones(0, 3, device=device)
    np.testing.assert_array_equal(k0.numpy(), np.zeros((2, 3)))
    ints = clgrad.tensor([[1, 2], [3, 4]], device=device)
    np.testing.assert_array_equal((ints @ ints).numpy(), [[7, 10], [15, 22]])
    assert (ints @ ints).dtype is clgrad.int64
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        clgrad.ones(2, 3, device=device) @ clgrad.ones(2, 3, device=device)
    with pytest.raises(RuntimeError, match="both arguments to matmul need to be at least 1D"):
        clgrad.ones(2, device=device) @ clgrad.tensor(2.0, device=device)
    with pytest.raises(RuntimeError, match="inconsistent tensor size"):
        clgrad.ones(2, device=device) @ clgrad.ones(3, device=device)
    with pytest.raises(RuntimeError, match="same dtype"):
        clgrad.ones(2, 2, device=device) @ clgrad.ones(2, 2, dtype=clgrad.float64, device=device)


def test_named_products(device):
    check_op([(3, 4), (4, 5)], lambda a, b: a.mm(b), lambda a, b: a @ b, device=device)
    check_op([(2, 3, 4), (2, 4, 5)], lambda a, b: clgrad.bmm(a, b), lambda a, b: a @ b,
             device=device)
    check_op([(3, 4), (4,)], lambda a, b: clgrad.mv(a, b), lambda a, b: a @ b, device=device)
    check_op([(5,), (5,)], lambda a, b: a.dot(b), lambda a, b: a @ b, device=device)
    check_op([(3,), (4,)], lambda a, b: clgrad.outer(a, b), np.outer, device=device)
    check_op([(3,), (4,)], lambda a, b: a.ger(b), np.outer, device=device)
    check_op([(3, 4), (4, 5)], lambda a, b: a.inner(b.mT), lambda a, b: a @ b, device=device)
    with pytest.raises(RuntimeError, match="self must be a matrix"):
        clgrad.ones(3, device=device).mm(clgrad.ones(3, 3, device=device))
    with pytest.raises(RuntimeError, match="batch1 must be a 3D tensor"):
        clgrad.ones(3, 3, device=device).bmm(clgrad.ones(3, 3, 3, device=device))
    with pytest.raises(RuntimeError, match="1D tensors expected"):
        clgrad.ones(3, 1, device=device).dot(clgrad.ones(3, device=device))
    with pytest.raises(RuntimeError, match="Expected 1-D arguments"):
        clgrad.ones(3, 1, device=device).outer(clgrad.ones(3, device=device))


def test_add_products(device):
    check_op([(3, 5), (3, 4), (4, 5)], lambda c, a, b: clgrad.addmm(c, a, b),
             lambda c, a, b: c + a @ b, device=device)
    check_op([(5,), (3, 4), (4, 5)], lambda c, a, b: c.addmm(a, b, beta=0.5, alpha=-2),
             lambda c, a, b: 0.5 * c - 2 * (a @ b), device=device)
    check_op([(3,), (3, 4), (4,)], lambda c, a, b: clgrad.addmv(c, a, b, alpha=3),
             lambda c, a, b: c + 3 * (a @ b), device=device)
    check_op([(3, 4), (3,), (4,)], lambda c, a, b: clgrad.addr(c, a, b, beta=2),
             lambda c, a, b: 2 * c + np.outer(a, b), device=device)
    check_op([(2, 3, 5), (2, 3, 4), (2, 4, 5)],
             lambda c, a, b: clgrad.baddbmm(c, a, b, beta=0.5, alpha=2),
             lambda c, a, b: 0.5 * c + 2 * (a @ b), device=device)
    check_op([(3, 5), (2, 3, 4), (2, 4, 5)], lambda c, a, b: clgrad.addbmm(c, a, b),
             lambda c, a, b: c + (a @ b).sum(0), device=device)
    # beta=0 ignores the input, NaN included, but keeps it in the graph with zero gradient
    nan = clgrad.full((3, 5), float("nan"), dtype=clgrad.float64, device=device,
                      requires_grad=True)
    a = clgrad.ones(3, 4, dtype=clgrad.float64, device=device)
    out = clgrad.addmm(nan, a, a.mT.matmul(clgrad.ones(3, 5, dtype=clgrad.float64,
                                                         device=device)), beta=0)
    assert out.isfinite().all().item()
    out.sum().backward()
    np.testing.assert_array_equal(nan.grad.numpy(), np.zeros((3, 5)))
    with pytest.raises(RuntimeError, match="expanded size"):
        clgrad.addmm(clgrad.ones(4, device=device), clgrad.ones(3, 4, device=device),
                     clgrad.ones(4, 5, device=device))


EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),                      # implicit output
    ("ba", [(2, 3)]),                                 # implicit output sorts: a transpose
    ("ii->i", [(3, 3)]),                              # diagonal
    ("ii", [(3, 3)]),                                 # trace
    ("iij->j", [(3, 3, 2)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("...i,...i->...", [(2, 3, 4), (3, 4)]),
    ("i...->...", [(3, 2, 2)]),
    ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ijk->", [(2, 3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("i,i,i->i", [(3,), (3,), (3,)]),
    ("ij,ij->ij", [(1, 3), (2, 3)]),                  # size-1 dims broadcast
    ("b i j, b j -> b i", [(2, 3, 4), (2, 4)]),       # spaces are ignored
]


@pytest.mark.parametrize("eq,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(device, eq, shapes):
    check_op(shapes, lambda *x: clgrad.einsum(eq, *x),
             lambda *a: np.einsum(eq.replace(" ", ""), *a) if "ij,ij" not in eq
             else a[0] * a[1], device=device, atol=1e-5, layouts=("contiguous", "permuted"))


def test_einsum_api_and_errors(device):
    a = clgrad.ones(2, 3, device=device)
    b = clgrad.ones(3, 4, device=device)
    np.testing.assert_array_equal(clgrad.einsum("ij,jk->ik", [a, b]).numpy(), np.full((2, 4), 3))
    with pytest.raises(RuntimeError, match="more operands"):
        clgrad.einsum("ij->ij", a, b)
    with pytest.raises(RuntimeError, match="does not match the number of dimensions"):
        clgrad.einsum("ijk->i", a)
    with pytest.raises(RuntimeError, match="appears more than once in the output"):
        clgrad.einsum("ij->ii", a)
    with pytest.raises(RuntimeError, match="does not appear in the equation"):
        clgrad.einsum("ij->k", a)
    with pytest.raises(RuntimeError, match="do not broadcast"):
        clgrad.einsum("ij,ij->i", a, b)


def test_tensordot(device):
    check_op([(2, 3, 4), (3, 4, 5)], lambda a, b: clgrad.tensordot(a, b),
             lambda a, b: np.tensordot(a, b), device=device)
    check_op([(2, 3, 4), (4, 3, 5)], lambda a, b: clgrad.tensordot(a, b, ([1, 2], [1, 0])),
             lambda a, b: np.tensordot(a, b, ([1, 2], [1, 0])), device=device)
    check_op([(2, 3), (4,)], lambda a, b: clgrad.tensordot(a, b, 0),
             lambda a, b: np.tensordot(a, b, 0), device=device)


def test_matmul_double_backward(device):
    rng = np.random.default_rng(1)
    a = clgrad.tensor(rng.standard_normal((2, 3)), requires_grad=True, device=device)
    b = clgrad.tensor(rng.standard_normal((3, 2)), requires_grad=True, device=device)

    def f(x, y):
        with clgrad.enable_grad():     # gradgradcheck's probes run under no_grad
            return (x @ y).tanh()
    assert gradgradcheck(f, [a, b])
    assert gradcheck(lambda x, y: clgrad.einsum("ij,jk->ik", x, y), [a, b])
