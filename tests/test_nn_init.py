"""nn.init and default initialisation: moments and bounds follow PyTorch's formulas."""
import math

import numpy as np
import pytest

import clgrad
import clgrad.nn as nn
from clgrad.nn import init


def _stats(t):
    a = t.detach().numpy().astype(np.float64).ravel()
    return a, a.mean(), a.std()


def test_calculate_gain_and_fans():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("selu") == 0.75
    assert init.calculate_gain("conv2d") == 1
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("foo")
    assert init._calculate_fan_in_and_fan_out(clgrad.empty(8, 4, 3, 3)) == (36, 72)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(clgrad.empty(3))


def test_uniform_normal_family(device):
    t = clgrad.empty(200, 100, device=device)
    a, m, s = _stats(init.uniform_(t, -2, 3))
    assert a.min() >= -2 and a.max() < 3 and abs(m - 0.5) < 0.05
    a, m, s = _stats(init.normal_(t, 1.0, 2.0))
    assert abs(m - 1) < 0.05 and abs(s - 2) < 0.05
    a, m, s = _stats(init.xavier_uniform_(t, gain=2.0))
    bound = 2.0 * math.sqrt(6 / 300)
    assert a.max() <= bound and a.min() >= -bound and abs(s - bound / math.sqrt(3)) < 0.005
    a, m, s = _stats(init.xavier_normal_(t))
    assert abs(s - math.sqrt(2 / 300)) < 0.003
    a, m, s = _stats(init.kaiming_uniform_(t, a=0, mode="fan_out", nonlinearity="relu"))
    bound = math.sqrt(2) * math.sqrt(3 / 200)
    assert a.max() <= bound and abs(s - bound / math.sqrt(3)) < 0.003
    a, m, s = _stats(init.kaiming_normal_(t, nonlinearity="relu"))
    assert abs(s - math.sqrt(2 / 100)) < 0.003
    a, m, s = _stats(init.trunc_normal_(t, mean=0.5, std=1.0, a=-1.0, b=1.5))
    assert a.min() >= -1.0 and a.max() <= 1.5
    # moments of N(0.5, 1) truncated to [-1, 1.5]
    from math import erf, exp, pi, sqrt
    al, be = -1.5, 1.0
    phi = lambda z: exp(-z * z / 2) / sqrt(2 * pi)  # noqa: E731
    Phi = lambda z: 0.5 * (1 + erf(z / sqrt(2)))  # noqa: E731
    Z = Phi(be) - Phi(al)
    mean = 0.5 + (phi(al) - phi(be)) / Z
    assert abs(m - mean) < 0.02
    init.constant_(t, 0.25)
    assert (t.numpy() == 0.25).all()
    init.zeros_(t)
    assert (t.numpy() == 0).all()
    init.ones_(t)
    assert (t.numpy() == 1).all()


def test_eye_dirac_orthogonal(device):
    e = init.eye_(clgrad.empty(3, 4, device=device))
    np.testing.assert_array_equal(e.numpy(), np.eye(3, 4))
    d = init.dirac_(clgrad.empty(2, 2, 3, 3, device=device)).numpy()
    assert d[0, 0, 1, 1] == 1 and d[1, 1, 1, 1] == 1 and d.sum() == 2
    for shape in [(6, 4), (4, 6), (5, 2, 3)]:
        w = init.orthogonal_(clgrad.empty(*shape, device=device), gain=2.0).numpy()
        q = w.reshape(shape[0], -1)
        gram = q @ q.T if q.shape[0] <= q.shape[1] else q.T @ q
        np.testing.assert_allclose(gram, 4 * np.eye(gram.shape[0]), atol=1e-4)


def test_init_is_seeded_on_device(device):
    clgrad.manual_seed(7)
    a = nn.Linear(5, 4).to(device).weight.detach().numpy()
    clgrad.manual_seed(7)
    b = nn.Linear(5, 4).to(device).weight.detach().numpy()
    np.testing.assert_array_equal(a, b)


def test_default_inits():
    clgrad.manual_seed(0)
    lin = nn.Linear(400, 300)
    a, m, s = _stats(lin.weight)
    bound = 1 / math.sqrt(400)       # kaiming_uniform_(a=sqrt(5)) gives exactly 1/sqrt(fan_in)
    assert a.max() <= bound and a.min() >= -bound and abs(s - bound / math.sqrt(3)) < 2e-4
    b, _, _ = _stats(lin.bias)
    assert b.max() <= bound and b.min() >= -bound
    bil = nn.Bilinear(50, 30, 20)
    a, _, s = _stats(bil.weight)
    assert a.max() <= 1 / math.sqrt(50) and abs(s - 1 / math.sqrt(150)) < 2e-3
    emb = nn.Embedding(300, 100, padding_idx=2)
    a, m, s = _stats(emb.weight)
    assert abs(m) < 0.02 and abs(s - 1) < 0.02
    assert (emb.weight.detach().numpy()[2] == 0).all()
    bn = nn.BatchNorm2d(5)
    assert (bn.weight.detach().numpy() == 1).all() and (bn.bias.detach().numpy() == 0).all()
    assert (bn.running_var.numpy() == 1).all() and bn.num_batches_tracked.item() == 0
    ln = nn.LayerNorm(6)
    assert (ln.weight.detach().numpy() == 1).all() and (ln.bias.detach().numpy() == 0).all()
    assert (nn.PReLU().weight.detach().numpy() == 0.25).all()
