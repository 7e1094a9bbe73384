"""Several Python threads using clgrad at once get the numbers they would get one after another.

Each thread trains its own model on its own data (no shared generator): the kernels they launch
are the same program objects, so setting a kernel's arguments and enqueueing it must be one
step (tests/test_threads.py failed in about half of the trials before that)."""
import threading

import numpy as np
import pytest

import clgrad


def _train(device, seed, steps=30):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    x = clgrad.tensor(rng.standard_normal((64, 16)).astype(f32), device=device)
    y = clgrad.tensor(rng.standard_normal((64, 4)).astype(f32), device=device)
    m = clgrad.nn.Linear(16, 4, device=device)
    with clgrad.no_grad():
        m.weight.copy_(clgrad.tensor(rng.standard_normal((4, 16)).astype(f32), device=device))
        m.bias.copy_(clgrad.tensor(rng.standard_normal(4).astype(f32), device=device))
    opt = clgrad.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    return m.weight.detach().numpy(), m.bias.detach().numpy()


def test_threads_training_their_own_models_match_sequential_runs(device):
    seeds = range(4)
    want = {s: _train(device, s) for s in seeds}
    for _ in range(4):
        got, errors = {}, []

        def work(s):
            try:
                got[s] = _train(device, s)
            except Exception as e:    # noqa: BLE001 - surfaced below
                errors.append(e)
        threads = [threading.Thread(target=work, args=(s,)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for s in seeds:
            np.testing.assert_array_equal(got[s][0], want[s][0])
            np.testing.assert_array_equal(got[s][1], want[s][1])


def test_reading_a_buffer_another_thread_just_launched(device):
    """A thread reads a pending tensor's buffer while another thread's flush launches it: its
    normal attribute lookup fails, then the flush sets the buffer and clears the pending node,
    then the fallback runs. The fallback must find the buffer (CI once saw AttributeError)."""
    from clgrad.array import Array
    a = clgrad.tensor([1.0, 2.0], device=device)
    b = a + 1                           # pending
    assert b.__dict__.get("_lazy") is not None
    b.numpy()                           # the "other thread's" flush: _buf set, _lazy cleared
    assert b.__dict__.get("_lazy") is None
    # the state the first thread's __getattr__ sees after its failed lookup
    assert Array.__getattr__(b, "_buf") is b.__dict__["_buf"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        Array.__getattr__(b, "nope")
