"""clgrad.linalg.svd / svdvals (one-sided Jacobi on the device) and the norms built on them:
U S Vh reconstruction, orthonormal factors and singular values against numpy in float64,
gradients by gradcheck on sign-invariant functions of the factors, torch where installed."""
import math

import numpy as np
import pytest

import clgrad
from clgrad.autograd import gradcheck

try:
    import torch
except ImportError:          # pragma: no cover - torch is a dev extra
    torch = None

SHAPES = [(4, 3), (3, 5), (6, 6), (7, 1), (1, 7), (3, 2, 8, 5), (2, 5, 9), (1, 1)]
TOL = {"float32": 2e-5, "float64": 1e-12}


def _check_factors(a, U, S, Vh, full, tol):
    m, n = a.shape[-2:]
    k = min(m, n)
    u, s, vh = (t.numpy().astype(np.float64) for t in (U, S, Vh))
    assert u.shape == a.shape[:-2] + ((m, m) if full else (m, k))
    assert vh.shape == a.shape[:-2] + ((n, n) if full else (k, n))
    assert s.shape == a.shape[:-2] + (k,)
    scale = max(1.0, np.abs(a).max())
    np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False), atol=tol * scale * 10)
    assert np.all(np.diff(s, axis=-1) <= 0), "singular values must be descending"
    rec = (u[..., :k] * s[..., None, :]) @ vh[..., :k, :]
    np.testing.assert_allclose(rec, a, atol=tol * scale * 10)
    np.testing.assert_allclose(np.swapaxes(u, -1, -2) @ u, np.broadcast_to(
        np.eye(u.shape[-1]), u.shape[:-2] + (u.shape[-1],) * 2), atol=tol * 10)
    np.testing.assert_allclose(vh @ np.swapaxes(vh, -1, -2), np.broadcast_to(
        np.eye(vh.shape[-2]), vh.shape[:-2] + (vh.shape[-2],) * 2), atol=tol * 10)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("full", [False, True])
def test_svd_against_numpy(device, shape, dtype, full):
    if dtype == "float64" and not device.has_fp64:
        pytest.skip("no cl_khr_fp64")
    a = np.random.default_rng(len(shape) * 7 + shape[-1]).standard_normal(shape)
    a = a.astype(dtype).astype(np.float64)
    A = clgrad.tensor(a, dtype=getattr(clgrad, dtype), device=device)
    U, S, Vh = clgrad.linalg.svd(A, full_matrices=full)
    assert U.dtype is A.dtype and S.dtype is A.dtype
    _check_factors(a, U, S, Vh, full, TOL[dtype])
    np.testing.assert_allclose(clgrad.linalg.svdvals(A).numpy(), S.numpy(), rtol=1e-5,
                               atol=TOL[dtype])
    # the sign convention: the largest entry of each left singular vector is positive (for a
    # wide matrix U comes from the transposed problem's V, so check the side the kernel fixed)
    side = U.numpy() if shape[-2] >= shape[-1] else np.swapaxes(Vh.numpy(), -1, -2)
    top = np.take_along_axis(side, np.abs(side).argmax(-2)[..., None, :], -2)
    assert np.all(top >= 0)


def test_svd_non_contiguous_and_special(device):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((5, 7))
    A = clgrad.tensor(a.T.copy(), dtype=clgrad.float32, device=device).T     # a strided view
    _check_factors(a.astype(np.float32).astype(np.float64), *clgrad.linalg.svd(A, False), False,
                   TOL["float32"])
    # rank-deficient: the null directions still get orthonormal vectors
    r = np.zeros((5, 3))
    r[:, 0], r[:, 1] = 1.0, 2.0
    U, S, Vh = clgrad.linalg.svd(clgrad.tensor(r, dtype=clgrad.float32, device=device))
    _check_factors(r, U, S, Vh, True, TOL["float32"])
    # all zeros, and matrices with a zero side
    U, S, Vh = clgrad.linalg.svd(clgrad.zeros(3, 4, device=device))
    _check_factors(np.zeros((3, 4)), U, S, Vh, True, TOL["float32"])
    for shape in ((0, 3), (2, 0, 4), (0, 0)):
        U, S, Vh = clgrad.linalg.svd(clgrad.zeros(*shape, device=device))
        m, n = shape[-2:]
        assert tuple(S.shape) == shape[:-2] + (0,)
        assert tuple(U.shape) == shape[:-2] + (m, m) and tuple(Vh.shape) == shape[:-2] + (n, n)
        np.testing.assert_array_equal(U.numpy(), np.broadcast_to(np.eye(m), U.shape))
    assert tuple(clgrad.linalg.svd(clgrad.zeros(2, 0, 4, device=device), False).U.shape) \
        == (2, 0, 0)
    # an empty batch
    assert tuple(clgrad.linalg.svdvals(clgrad.zeros(0, 3, 2, device=device)).shape) == (0, 2)
    # huge and tiny entries: squared norms would overflow / underflow in float32 unscaled
    b = rng.standard_normal((5, 4))
    for scale in (1e30, 1e-30):
        U, S, Vh = clgrad.linalg.svd(clgrad.tensor(b * scale, dtype=clgrad.float32,
                                                   device=device), False)
        np.testing.assert_allclose(S.numpy(), np.linalg.svd(b * scale, compute_uv=False),
                                   rtol=1e-5)
        _check_factors(b, U, S / scale, Vh, False, TOL["float32"])
    # repeated and widely spread singular values
    d = np.diag([1e3, 1.0, 1.0, 1e-3])
    q1, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    q2, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    a = q1 @ d @ q2
    _check_factors(a, *clgrad.linalg.svd(clgrad.tensor(a, device=device).double()), True,
                   TOL["float64"]) if device.has_fp64 else None


def test_svd_errors(device):
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        clgrad.linalg.svd(clgrad.zeros(3, device=device))
    with pytest.raises(NotImplementedError, match="float32 and float64"):
        clgrad.linalg.svdvals(clgrad.zeros(3, 3, dtype=clgrad.int64, device=device))
    with pytest.raises(NotImplementedError, match="driver"):
        clgrad.linalg.svd(clgrad.zeros(3, 3, device=device), driver="gesvd")


def test_old_interface(device):
    a = np.random.default_rng(2).standard_normal((5, 3))
    A = clgrad.tensor(a, device=device)
    U, S, V = A.svd()
    assert tuple(U.shape) == (5, 3) and tuple(V.shape) == (3, 3)
    np.testing.assert_allclose(((U * S) @ V.mT).numpy(), a, atol=1e-5)
    U, S, V = clgrad.svd(A, some=False)
    assert tuple(U.shape) == (5, 5)
    U, S, V = clgrad.svd(A, compute_uv=False)
    assert not U.numpy().any() and tuple(V.shape) == (3, 3)


# ---- gradients: functions of the factors that a sign flip of a singular pair leaves alone --------
def _sign_free(U, S, Vh):
    k = S.shape[-1]
    return (((U[..., :k] * U[..., :k]) * S.unsqueeze(-2)).sum(-1), S, (Vh[..., :k, :] ** 2) * 2,
            U[..., :k] @ Vh[..., :k, :])


@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (3, 3), (2, 4, 3)], ids=str)
@pytest.mark.parametrize("full", [False, True])
def test_svd_gradients(fp64, shape, full):
    # distinct singular values (gradients of the vectors are undefined at repeated ones)
    a = np.random.default_rng(sum(shape)).standard_normal(shape)
    A = clgrad.tensor(a, dtype=clgrad.float64, device=fp64, requires_grad=True)
    assert gradcheck(lambda x: _sign_free(*clgrad.linalg.svd(x, full_matrices=full)), [A])
    assert gradcheck(lambda x: clgrad.linalg.svd(x, full_matrices=full).S, [A])
    assert gradcheck(lambda x: clgrad.linalg.svdvals(x), [A])
    # only U, only Vh
    assert gradcheck(lambda x: clgrad.linalg.svd(x, False).U.abs().sum(-2) ** 2, [A]) \
        if shape[-1] <= shape[-2] else True
    assert gradcheck(lambda x: (clgrad.linalg.svd(x, False).Vh ** 2), [A])
    U, S, Vh = clgrad.linalg.svd(A)
    assert S.grad_fn.name() == "LinalgSvdBackward0"


def test_norm_gradients(fp64):
    a = np.random.default_rng(9).standard_normal((3, 4, 5))
    A = clgrad.tensor(a, dtype=clgrad.float64, device=fp64, requires_grad=True)
    for ord in (2, -2, "nuc"):
        assert gradcheck(lambda x: clgrad.linalg.matrix_norm(x, ord), [A])
    assert gradcheck(lambda x: clgrad.linalg.cond(x), [A])


@pytest.mark.parametrize("ord", [2, -2, "nuc"])
def test_matrix_norms(device, ord):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    A = clgrad.tensor(a, device=device)
    want = np.linalg.norm(a.astype(np.float64), ord, axis=(-2, -1))
    np.testing.assert_allclose(clgrad.linalg.matrix_norm(A, ord).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(clgrad.linalg.norm(A[0, 0], ord).numpy(),
                               np.linalg.norm(a[0, 0].astype(np.float64), ord), rtol=1e-5)
    # other dims, keepdim
    want = np.linalg.norm(a.astype(np.float64), ord, axis=(0, 2), keepdims=True)
    got = clgrad.linalg.matrix_norm(A, ord, dim=(0, 2), keepdim=True)
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(clgrad.linalg.norm(A, ord, dim=(2, 0)).numpy(),
                               np.linalg.norm(a.astype(np.float64), ord, axis=(2, 0)),
                               rtol=1e-5)


def test_tensor_norm_nuc(device):
    a = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    A = clgrad.tensor(a, device=device)
    np.testing.assert_allclose(A.norm("nuc").numpy(), np.linalg.norm(a.astype(float), "nuc"),
                               rtol=1e-5)
    np.testing.assert_allclose(clgrad.norm(A, "nuc", dim=(1, 0), keepdim=True).numpy(),
                               np.linalg.norm(a.astype(float), "nuc", keepdims=True), rtol=1e-5)
    with pytest.raises(RuntimeError, match="2-tuple"):
        clgrad.ones(2, 2, 2, device=device).norm("nuc")


def test_cond(device):
    a = np.random.default_rng(6).standard_normal((3, 4, 4)).astype(np.float32)
    A = clgrad.tensor(a, device=device)
    np.testing.assert_allclose(clgrad.linalg.cond(A).numpy(), np.linalg.cond(a.astype(float)),
                               rtol=1e-4)
    np.testing.assert_allclose(clgrad.linalg.cond(A, -2).numpy(),
                               np.linalg.cond(a.astype(float), -2), rtol=1e-4)
    with pytest.raises(NotImplementedError, match="inverse"):
        clgrad.linalg.cond(A, "fro")


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_torch_parity(fp64):
    rng = np.random.default_rng(8)
    for shape in ((5, 3), (3, 6), (2, 4, 4)):
        a = rng.standard_normal(shape)
        ta = torch.tensor(a, requires_grad=True)
        ca = clgrad.tensor(a, device=fp64, requires_grad=True)
        outs = []
        for lib, x in ((torch, ta), (clgrad, ca)):
            U, S, Vh = lib.linalg.svd(x, full_matrices=False)
            f = (U * U * S.unsqueeze(-2)).sum() + (U @ Vh).sum() + S.sum() * 0.5 + \
                lib.linalg.matrix_norm(x, "nuc").sum() + lib.linalg.matrix_norm(x, 2).sum()
            f.backward()
            outs.append((f.item(), S.detach().numpy(), x.grad.numpy()))
        (tf, ts, tg), (cf, cs, cg) = outs
        assert math.isclose(tf, cf, rel_tol=1e-10)
        np.testing.assert_allclose(cs, ts, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cg, tg, rtol=1e-7, atol=1e-9)
