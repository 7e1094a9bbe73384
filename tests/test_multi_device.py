"""Several devices in one process: tensors moving between devices of different platforms, the
error for ops that mix devices, and nn.DataParallel matching a single-device run.

These tests need two devices; they use the first two of CLGRAD_TEST_DEVICES when it names two,
else the first two devices of the machine (here: Intel's CPU runtime and PoCL)."""
import copy
import os

import numpy as np
import pytest

import clgrad
from clgrad import nn, runtime
from clgrad.runtime import memory


def _two_devices():
    spec = os.environ.get("CLGRAD_TEST_DEVICES", "")
    named = [runtime.get_device(s) for s in spec.split(",") if s.strip()]
    devs = named if len(set(named)) >= 2 else runtime.devices()
    return list(dict.fromkeys(devs))[:2]


DEVS = _two_devices()
pytestmark = pytest.mark.skipif(len(DEVS) < 2, reason=f"needs two OpenCL devices; this machine "
                                f"shows {len(DEVS)}")


@pytest.fixture
def devs():
    return DEVS


def _mlp(seed=0):
    clgrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def test_to_another_platform_copies_through_the_host_and_counts_it(devs):
    a, b = devs
    x = clgrad.tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device=a,
                      requires_grad=True)
    memory.reset_stats()
    y = x.to(b)
    s = memory.stats()
    assert y.device == b and x.device == a
    assert (s["d2d"], s["d2h"], s["h2d"]) == (1, 1, 1) and s["d2d_bytes"] == 48
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
    assert x.to(a) is x and x.to(str(a)) is x          # no copy onto the same device
    (y * y).sum().backward()                            # the gradient moves back
    assert x.grad.device == a
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy(), rtol=1e-6)


def test_to_keeps_views_dtypes_and_modules(devs):
    a, b = devs
    base = clgrad.tensor(np.arange(24, dtype=np.float32).reshape(4, 6), device=a)
    v = base[1:, ::2].t()                                # a strided, non-contiguous view
    np.testing.assert_array_equal(v.to(b).numpy(), v.numpy())
    i = clgrad.tensor([3, -1, 7], dtype=clgrad.int64, device=a).to(b, clgrad.int32)
    assert i.dtype == clgrad.int32 and i.device == b and i.tolist() == [3, -1, 7]
    m = _mlp().to(b)
    assert {p.device for p in m.parameters()} == {b}
    x = clgrad.randn(5, 6, device=b)
    assert m(x).device == b


@pytest.mark.parametrize("op", ["add", "matmul", "cat", "where", "linear"])
def test_ops_mixing_devices_name_both(devs, op):
    a, b = devs
    x = clgrad.ones(2, 2, device=a)
    y = clgrad.ones(2, 2, device=b)
    calls = {"add": lambda: x + y, "matmul": lambda: x @ y, "cat": lambda: clgrad.cat([x, y]),
             "where": lambda: clgrad.where(x > 0, x, y),
             "linear": lambda: nn.functional.linear(x, y)}
    with pytest.raises(RuntimeError, match="same device") as err:
        calls[op]()
    assert str(a) in str(err.value) and str(b) in str(err.value)


def _step_both(dp, single, x, y, steps, lr=0.1):
    opt_dp = clgrad.optim.SGD(dp.parameters(), lr=lr, momentum=0.9)
    opt_1 = clgrad.optim.SGD(single.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        for net, opt in ((dp, opt_dp), (single, opt_1)):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(x), y)
            loss.backward()
            opt.step()
    return loss


def test_data_parallel_matches_one_device(devs):
    a, b = devs
    model = _mlp().to(a)
    single = copy.deepcopy(model)
    dp = nn.DataParallel(model, device_ids=[a, b])
    clgrad.manual_seed(1)
    x = clgrad.randn(13, 6, device=a)
    y = clgrad.randn(13, 3, device=a)
    out = dp(x)
    assert out.device == a and out.shape == (13, 3)
    assert len(dp.balance) == 2 and abs(sum(dp.balance) - 1) < 1e-12
    loss = nn.functional.mse_loss(out, y)
    loss.backward()
    ref = nn.functional.mse_loss(single(x), y)
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-6)
    for (name, p), q in zip(model.named_parameters(), single.parameters()):
        assert p.grad.device == a, name
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    # training steps: the replicas pick up each update of the first device's parameters
    for p in list(model.parameters()) + list(single.parameters()):
        p.grad = None
    _step_both(dp, single, x, y, steps=3)
    for p, q in zip(model.parameters(), single.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_data_parallel_splits_as_balanced_and_gathers_structures(devs):
    a, b = devs

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x, scale=1.0, *, extra):
            return {"y": self.lin(x) * scale, "pair": (x.sum(1), extra * 2)}

    clgrad.manual_seed(0)
    m = Two().to(a)
    seen = []
    m.lin.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].device,
                                                                     inp[0].shape[0])))
    dp = nn.DataParallel(m, device_ids=[a, b], balance=[3, 1])
    x = clgrad.randn(8, 4, device=a, requires_grad=True)
    e = clgrad.randn(8, 5, device=a)
    out = dp(x, 2.0, extra=e)
    assert dp.balance == [0.75, 0.25]
    # the first device's replica is the module itself; the other's hooks were copied with it
    assert sorted(seen, key=lambda s: s[0].index) == sorted([(a, 6), (b, 2)],
                                                            key=lambda s: s[0].index)
    ref = m(x, 2.0, extra=e)
    np.testing.assert_allclose(out["y"].detach().numpy(), ref["y"].detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["pair"][0].detach().numpy(), ref["pair"][0].detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(out["pair"][1].numpy(), ref["pair"][1].numpy())
    out["y"].sum().backward()                      # the input's gradient is gathered back too
    assert x.grad.device == a
    np.testing.assert_allclose(x.grad.numpy(), np.tile(2 * m.lin.weight.detach().numpy().sum(0),
                                                       (8, 1)), rtol=1e-5)


def test_data_parallel_small_batch_and_errors(devs):
    a, b = devs
    m = _mlp().to(a)
    dp = nn.DataParallel(m, device_ids=[a, b], balance="equal")
    x = clgrad.randn(1, 6, device=a)                 # fewer rows than devices: one device runs
    np.testing.assert_allclose(dp(x).detach().numpy(), m(x).detach().numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match=f"on device {b}"):
        nn.DataParallel(_mlp().to(a), device_ids=[b, a])
    with pytest.raises(ValueError, match="one non-negative share per device"):
        nn.DataParallel(m, device_ids=[a, b], balance=[1])
    assert list(dp.state_dict())[0] == "module.0.weight"
