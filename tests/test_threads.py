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
