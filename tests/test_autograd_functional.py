"""clgrad.autograd.functional: jacobian, hessian, vjp, jvp, hvp, vhp against closed forms."""
import numpy as np
import pytest

import clgrad
from clgrad.autograd import functional as AF

RNG = np.random.default_rng(4)


def T(a, device, requires_grad=False):
    return clgrad.tensor(np.asarray(a, dtype=np.float64), dtype="float64", device=device,
                         requires_grad=requires_grad)


def close(t, ref, atol=1e-12):
    np.testing.assert_allclose(t.detach().numpy(), np.asarray(ref), atol=atol, rtol=1e-10)


def test_jacobian_single_and_tuples(fp64):
    a, b = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    J = AF.jacobian(lambda x: x.exp() * x, T(a, fp64))
    assert J.shape == (3, 3) and not J.requires_grad
    close(J, np.diag(np.exp(a) * (a + 1)))
    (Jx, Jy), (Kx, Ky) = AF.jacobian(lambda x, y: (x * y, (x * x).sum() + y.sum()),
                                     (T(a, fp64), T(b, fp64)))
    close(Jx, np.diag(b))
    close(Jy, np.diag(a))
    assert Kx.shape == (3,) and Ky.shape == (3,)
    close(Kx, 2 * a)
    close(Ky, np.ones(3))
    M = RNG.uniform(-1, 1, (2, 3))
    J = AF.jacobian(lambda x: T(M, fp64) @ x.reshape(3, 1), T(a, fp64))
    assert J.shape == (2, 1, 3)
    close(J.reshape(2, 3), M)


def test_jacobian_strict_and_unused(fp64):
    x = T([1.0, 2.0], fp64)
    J = AF.jacobian(lambda t: T([3.0], fp64) * 1, x)
    close(J, np.zeros((1, 2)))
    with pytest.raises(RuntimeError, match="does not require gradients"):
        AF.jacobian(lambda t: T([3.0], fp64) * 1, x, strict=True)


def test_hessian(fp64):
    a = RNG.uniform(-1, 1, 3)
    H = AF.hessian(lambda x: (x * x * x).sum() + x[0] * x[1], T(a, fp64))
    ref = np.diag(6 * a)
    ref[0, 1] = ref[1, 0] = 1
    close(H, ref)


def test_vjp_jvp_hvp(fp64):
    a, v = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    out, g = AF.vjp(lambda x: x.sin() * 2, T(a, fp64), T(v, fp64))
    close(out, 2 * np.sin(a))
    close(g, 2 * np.cos(a) * v)
    M = RNG.uniform(-1, 1, (2, 3))
    out, jv = AF.jvp(lambda x: (T(M, fp64) @ x).tanh(), T(a, fp64), T(v, fp64))
    close(jv, (1 - np.tanh(M @ a) ** 2) * (M @ v), atol=1e-12)
    out, hv = AF.hvp(lambda x: (x * x * x).sum(), T(a, fp64), T(v, fp64))
    close(out, (a ** 3).sum())
    close(hv, 6 * a * v)
    out, vh = AF.vhp(lambda x: (x * x * x).sum(), T(a, fp64), T(v, fp64))
    close(vh, 6 * a * v)


def test_functional_create_graph(fp64):
    a = RNG.uniform(0.5, 1.5, 2)
    x = T(a, fp64, True)
    J = AF.jacobian(lambda t: t * t * t, x, create_graph=True)
    assert J.requires_grad
    J.sum().backward()                      # d/dx of sum(diag(3 x^2)) = 6 x
    close(x.grad, 6 * a)
