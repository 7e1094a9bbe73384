"""autocast x clgrad.jit: a training step captured under autocast (float16, bfloat16) replays to
the same losses and weights as the same step run eagerly under autocast; a GradScaler step, whose
skip decision reads one flag on the host, keeps running eagerly and stays correct, and with the
scaler's step outside the jitted function the rest is captured."""
import warnings

import numpy as np
import pytest

import clgrad
import clgrad.nn as nn
import clgrad.nn.functional as F
from clgrad import runtime

STEPS = 6


class Net(nn.Module):
    """A matmul (low precision), a norm and a softmax loss (float32) and an elementwise tail."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 24)
        self.norm = nn.LayerNorm(24)
        self.fc2 = nn.Linear(24, 5)

    def forward(self, x):                    # (B, 12) -> (B, 5)
        return self.fc2(F.gelu(self.norm(self.fc1(x))))


class ConvNet(nn.Module):
    """A convolution (low precision), pooling and batch norm (float32)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):                    # (B, 1, 8, 8) -> (B, 5)
        h = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)     # (B, 4, 3, 3)
        return self.fc(h.flatten(1))


MODELS = {"mlp": (Net, (12,)), "conv": (ConvNet, (1, 8, 8))}


def _batches(device, shape=(12,), n=STEPS):
    rng = np.random.default_rng(3)
    return [(clgrad.tensor(rng.standard_normal((8,) + shape, dtype=np.float32), device=device),
             clgrad.tensor(rng.integers(0, 5, 8), device=device)) for _ in range(n)]


def _run(device, low, batches, jitted, scaler=False, make=Net):
    clgrad.manual_seed(0)
    model = make().to(device)
    opt = clgrad.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gs = clgrad.amp.GradScaler(init_scale=2.0 ** 10) if scaler else None

    def step(x, y):
        opt.zero_grad()
        with clgrad.autocast("cl", dtype=low):
            out = model(x)
            loss = F.cross_entropy(out, y)
        if gs is None:
            loss.backward()
            opt.step()
        else:
            gs.scale(loss).backward()
            gs.step(opt)
            gs.update()
        return loss, out
    f = clgrad.jit(step) if jitted else step
    losses, dtypes = [], set()
    for x, y in batches:
        loss, out = f(x, y)
        dtypes.add((loss.dtype, out.dtype))
        losses.append(loss.item())
    return np.array(losses), [p.detach().numpy() for p in model.parameters()], dtypes, f


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("low", ["float16", "bfloat16"])
def test_jit_under_autocast_matches_eager(device, low, model):
    low = getattr(clgrad, low)
    make, shape = MODELS[model]
    batches = _batches(device, shape)
    eager, w_eager, dt_eager, _ = _run(device, low, batches, jitted=False, make=make)
    runtime.reset_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # no fallback to eager
        jit, w_jit, dt_jit, f = _run(device, low, batches, jitted=True, make=make)
    assert f.captured == 1 and runtime.stats()["replays"] == STEPS - 2
    assert dt_eager == dt_jit == {(clgrad.float32, low)}    # the loss float32, the logits low
    assert len(set(jit.tolist())) == STEPS                  # each replay saw its own batch
    # the replay launches the very kernels of the recorded eager step, on the same data
    np.testing.assert_allclose(jit, eager, rtol=1e-6, atol=1e-6)
    for a, b in zip(w_jit, w_eager):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_jit_with_grad_scaler_stays_eager_and_correct(device):
    batches = _batches(device)
    eager, w_eager, _, _ = _run(device, clgrad.float16, batches, jitted=False, scaler=True)
    with pytest.warns(UserWarning, match="read device data on the host 1 time"):
        jit, w_jit, _, f = _run(device, clgrad.float16, batches, jitted=True, scaler=True)
    assert f.captured == 0
    np.testing.assert_allclose(jit, eager, rtol=1e-6, atol=1e-6)
    for a, b in zip(w_jit, w_eager):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_jit_forward_backward_with_scaler_step_outside(device):
    # the documented split: capture forward + scaled backward, step the scaler eagerly after
    batches = _batches(device)
    runs = []
    for jitted in (False, True):
        clgrad.manual_seed(0)
        model = Net().to(device)
        opt = clgrad.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        gs = clgrad.amp.GradScaler(init_scale=2.0 ** 10)

        def forward_backward(x, y):
            opt.zero_grad()
            with clgrad.autocast("cl", dtype=clgrad.float16):
                loss = F.cross_entropy(model(x), y)
            gs.scale(loss).backward()
            return loss
        f = clgrad.jit(forward_backward) if jitted else forward_backward
        losses = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for x, y in batches:
                loss = f(x, y)
                gs.step(opt)
                gs.update()
                losses.append(loss.item())
        if jitted:
            assert f.captured == 1
        runs.append((np.array(losses), [p.detach().numpy() for p in model.parameters()],
                     gs.get_scale()))
    (eager, w_eager, s_eager), (jit, w_jit, s_jit) = runs
    np.testing.assert_allclose(jit, eager, rtol=1e-6, atol=1e-6)
    for a, b in zip(w_jit, w_eager):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert s_jit == s_eager
