"""Device out of memory (runtime/memory.py): a failed allocation empties the pool and retries,
then raises clgrad.OutOfMemoryError naming the device and the sizes; the process keeps working,
and a training step that fails with it leaves model and optimizer as they were. Real OOM on a
CPU device is impractical here, so the allocator is made to fail from its k-th call on, for
every k a training step reaches."""
import gc

import numpy as np
import pytest

import clgrad
import clgrad.nn as nn
import clgrad.nn.functional as F
from clgrad import runtime
from clgrad.runtime import memory


def _setup(device):
    clgrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).to(device)
    opt = clgrad.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    x = clgrad.tensor(rng.standard_normal((8, 6)).astype(np.float32), device=device)
    y = clgrad.tensor(rng.integers(0, 3, 8), device=device)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, step


def _snapshot(model, opt):
    params = [p.detach().numpy().copy() for p in model.parameters()]
    state = opt.state_dict()["state"]
    st = {k: {n: (v.numpy().copy() if hasattr(v, "numpy") else v) for n, v in s.items()}
          for k, s in state.items()}
    return params, st


def _same(a, b):
    pa, sa = a
    pb, sb = b
    assert len(pa) == len(pb) and all(np.array_equal(x, y) for x, y in zip(pa, pb))
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].keys() == sb[k].keys()
        for n in sa[k]:
            assert np.array_equal(np.asarray(sa[k][n]), np.asarray(sb[k][n])), (k, n)


class _FailFrom:
    """Pool._raw_alloc that fails from its k-th call on (the retry after emptying too)."""

    def __init__(self, pool, k):
        self.real, self.k, self.calls, self.failed = pool._raw_alloc, k, 0, 0

    def __call__(self, size):
        self.calls += 1
        if self.calls >= self.k:
            self.failed += 1
            raise memory.cl.MemoryError("injected", memory.cl.status_code.MEM_OBJECT_ALLOCATION_FAILURE,
                                        "")
        return self.real(size)


def _fresh_pool(device):
    gc.collect()                     # tensors of an earlier model go back to the pool first
    runtime.empty_cache(device)


@pytest.mark.parametrize("warm_steps", [0, 1])
def test_failed_step_changes_nothing_and_the_next_one_runs(device, monkeypatch, warm_steps):
    pool = memory.pool(device)
    model, opt, step = _setup(device)
    for _ in range(warm_steps):
        step()
    _fresh_pool(device)
    ref_loss = step().item()
    ref_after = _snapshot(model, opt)
    k = 0
    while True:                      # the k-th new allocation of the step fails, k = 1, 2, ...
        k += 1
        model, opt, step = _setup(device)
        for _ in range(warm_steps):
            step()
        before = _snapshot(model, opt)
        _fresh_pool(device)
        fail = _FailFrom(pool, k)
        monkeypatch.setattr(pool, "_raw_alloc", fail)
        try:
            step()
            clgrad.synchronize(device)
        except clgrad.OutOfMemoryError as e:
            err = e
        else:
            err = None
        monkeypatch.setattr(pool, "_raw_alloc", fail.real)
        if err is None:
            assert fail.failed == 0 and k > 3          # past the step's last allocation
            break
        assert fail.failed == 2                  # tried, emptied the pool, tried once more
        assert isinstance(err, RuntimeError) and device.spec in str(err) and "bytes" in str(err)
        _same(_snapshot(model, opt), before)     # nothing moved
        # the process keeps working: the same step now runs and gives the reference result
        assert step().item() == ref_loss, k
        _same(_snapshot(model, opt), ref_after)


def test_oom_message_names_device_and_sizes(device, monkeypatch):
    pool = memory.pool(device)
    runtime.empty_cache(device)
    monkeypatch.setattr(pool, "_raw_alloc", _FailFrom(pool, 1))
    with pytest.raises(clgrad.OutOfMemoryError,
                       match=rf"Could not allocate 4194304 bytes on {device.spec} .*bytes are in "
                             r"use by tensors of \d+ bytes of device memory"):
        clgrad.empty(1 << 20, device=device)
    monkeypatch.undo()
    assert issubclass(clgrad.OutOfMemoryError, RuntimeError)
    assert clgrad.ones(4, device=device).sum().item() == 4.0
