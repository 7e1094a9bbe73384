"""The same autograd programs on PyTorch and clgrad: gradients and error messages agree.
Skipped (loudly) where torch cannot be imported; the suite's own oracles are numpy and
gradcheck."""
import numpy as np
import pytest

import clgrad

torch = pytest.importorskip("torch", reason="torch not importable: parity tests skipped")

RNG = np.random.default_rng(5)


def _both(arrays):
    cl = [clgrad.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    th = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    return cl, th


PROGRAMS = [
    lambda x, w: ((x @ w).relu() * x.sum()).mean(),
    lambda x, w: (x.exp() / (x.exp().sum() + 1)).sum() * w.tanh().sum(),
    lambda x, w: ((x * 2).sigmoid() - w.sum() * x).abs().sum(),
]


@pytest.mark.parametrize("k", range(len(PROGRAMS)))
def test_gradients_match_torch(k):
    xa, wa = RNG.uniform(-1, 1, (3, 4)), RNG.uniform(-1, 1, (4, 4))
    (x, w), (tx, tw) = _both([xa, wa])
    PROGRAMS[k](x, w).backward()
    PROGRAMS[k](tx, tw).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), atol=1e-12)


def test_second_order_and_inplace_match_torch():
    a, b = RNG.uniform(0.5, 1.5, 3), RNG.uniform(0.5, 1.5, 3)
    results = []
    for lib, (x, w) in ((clgrad, _both([a, b])[0]), (torch, _both([a, b])[1])):
        y = x * 1
        y.mul_(w)
        y.add_(1)
        g, = lib.autograd.grad((y * y * x).sum(), x, create_graph=True)
        g.sum().backward()
        results.append((g.detach().numpy(), x.grad.numpy(), w.grad.numpy()))
    for mine, theirs in zip(*results):
        np.testing.assert_allclose(mine, theirs, atol=1e-12)


@pytest.mark.parametrize("case", ["nonscalar", "twice", "modified", "leaf", "int"])
def test_error_messages_match_torch(case):
    def run(lib, make):
        x = make([1.0, 2.0])
        if case == "nonscalar":
            (x * 2).backward()
        elif case == "twice":
            y = (x * x).sum()
            y.backward()
            y.backward()
        elif case == "modified":
            y = x.sigmoid()
            y.mul_(2)
            y.sum().backward()
        elif case == "leaf":
            x.add_(1)
        else:
            lib.tensor([1, 2]).requires_grad_()

    msgs = []
    for lib in (clgrad, torch):
        with pytest.raises(RuntimeError) as err:
            run(lib, lambda v: lib.tensor(v, dtype=lib.float64, requires_grad=True))
        msgs.append(str(err.value))
    mine, theirs = msgs
    head = mine.split("[")[0].split(":")[0]
    assert head and head in theirs
