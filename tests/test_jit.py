"""clgrad.jit: a captured training step replays to the same losses and parameters as eager steps,
reads new inputs, scheduler learning rates and random draws anew, and falls back to eager (with a
warning) where a replay would be wrong."""
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import clgrad
import clgrad.nn as nn
import clgrad.nn.functional as F
from clgrad import runtime
from clgrad.utils.data import DataLoader, TensorDataset

D_IN, D_H, D_OUT, B = 12, 16, 5, 8


def _model(device, dropout=0.0):
    clgrad.manual_seed(0)
    layers = [nn.Linear(D_IN, D_H), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(D_H, D_H), nn.ReLU(), nn.Linear(D_H, D_OUT)]
    return nn.Sequential(*layers).to(device)


def _batches(device, n, batch=B, seed=1):
    rng = np.random.default_rng(seed)
    return [(clgrad.tensor(rng.standard_normal((batch, D_IN), dtype=np.float32), device=device),
             clgrad.tensor(rng.integers(0, D_OUT, batch), device=device)) for _ in range(n)]


def _trainer(device, opt_name, dropout=0.0, schedule=False, zero_inside=True):
    model = _model(device, dropout)
    if opt_name == "sgd":
        opt = clgrad.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    else:
        opt = clgrad.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    sched = clgrad.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) if schedule else None

    def step(x, y):
        if zero_inside:
            opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, sched, step


def _train(device, jitted, batches, **kw):
    model, opt, sched, step = _trainer(device, **kw)
    f = clgrad.jit(step) if jitted else step
    clgrad.manual_seed(42)
    losses = []
    for x, y in batches:
        if not kw.get("zero_inside", True):
            opt.zero_grad()
        losses.append(f(x, y).item())
        if sched is not None:
            sched.step()
    params = [p.detach().numpy() for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.numpy() for p in model.parameters()]
    return losses, params, grads, opt, f


def _same(a, b):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-6)
    for x, y in zip(a[1], b[1]):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opt_name,dropout,schedule", [
    ("sgd", 0.0, True), ("adamw", 0.0, True), ("adamw", 0.3, False), ("sgd", 0.25, True)])
def test_jit_matches_eager(device, opt_name, dropout, schedule):
    batches = _batches(device, 7)
    kw = dict(opt_name=opt_name, dropout=dropout, schedule=schedule)
    eager = _train(device, False, batches, **kw)
    runtime.reset_stats()
    jit = _train(device, True, batches, **kw)
    assert runtime.stats()["replays"] == 5             # calls 3..7
    _same(eager, jit)
    assert len(set(jit[0])) == len(jit[0])             # every step saw its own batch
    for g1, g2 in zip(eager[2], jit[2]):
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)
    # host-side optimizer state moved on at each replay, as eager steps move it
    st_e, st_j = eager[3].state_dict()["state"], jit[3].state_dict()["state"]
    if opt_name == "adamw":
        assert st_j[0]["step"].item() == st_e[0]["step"].item() == 7


@pytest.mark.parametrize("name,kw", [
    ("Adam", dict(lr=0.01, amsgrad=True)), ("Adamax", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.01)), ("RAdam", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)), ("Adagrad", dict(lr=0.1)),
    ("Adadelta", dict(lr=0.5)), ("Rprop", dict(lr=0.01)), ("ASGD", dict(lr=0.01, t0=2))])
def test_every_fused_optimizer_replays_its_steps(device, name, kw):
    """Step-dependent scalars (bias corrections, NAdam's momentum product, ASGD's averaging)
    and a scheduler's learning rate reach each replay."""
    batches = _batches(device, 6)
    results = []
    for jitted in (False, True):
        model = _model(device)
        opt = getattr(clgrad.optim, name)(model.parameters(), **kw)
        sched = clgrad.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        f = clgrad.jit(step) if jitted else step
        losses = []
        for x, y in batches:
            losses.append(f(x, y).item())
            sched.step()
        state = [{k: (v.numpy() if isinstance(v, clgrad.Tensor) else v) for k, v in st.items()}
                 for st in opt.state_dict()["state"].values()]
        results.append((losses, [p.detach().numpy() for p in model.parameters()], state))
    _same(results[0], results[1])
    for a, b in zip(results[0][2], results[1][2]):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_dropout_stream_continues_as_eager(device):
    batches = _batches(device, 5)
    _train(device, False, batches, opt_name="adamw", dropout=0.5)
    eager_state = clgrad.get_rng_state()
    _train(device, True, batches, opt_name="adamw", dropout=0.5)
    assert clgrad.get_rng_state() == eager_state


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_outside_the_step(device, set_to_none):
    batches = _batches(device, 5)
    results = []
    for jitted in (False, True):
        model, opt, _, step = _trainer(device, "sgd", zero_inside=False)
        f = clgrad.jit(step) if jitted else step
        losses = []
        for x, y in batches:
            opt.zero_grad(set_to_none=set_to_none)
            losses.append(f(x, y).item())
        results.append((losses, [p.detach().numpy() for p in model.parameters()],
                        [p.grad.numpy() for p in model.parameters()]))
    _same(*results)
    for g1, g2 in zip(results[0][2], results[1][2]):
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)


def test_replay_counts_and_no_host_traffic(device):
    model, opt, _, step = _trainer(device, "adamw")
    f = clgrad.jit(step)
    batches = _batches(device, 4)
    f(*batches[0])
    runtime.reset_stats()
    f(*batches[1])                                     # the recorded call
    recorded = runtime.stats()["launches"]
    assert f.captured == 1 and f.launches() == recorded > 0
    for x, y in batches[2:]:
        runtime.reset_stats()
        loss = f(x, y)
        s = runtime.stats()
        assert s["replays"] == 1
        assert s["launches"] == s["replay_launches"] == recorded
        assert s["d2h"] == s["h2d"] == 0 and s["builds"] == 0
        assert loss.shape == () and not loss.requires_grad


def test_shape_change_warns_and_runs_eagerly(device):
    batches = _batches(device, 4)
    small = _batches(device, 1, batch=3, seed=9)[0]
    seq = batches[:3] + [small] + batches[3:]
    eager = _train(device, False, seq, opt_name="sgd")
    model, opt, _, step = _trainer(device, "sgd")
    f = clgrad.jit(step)
    clgrad.manual_seed(42)
    losses = []
    for i, (x, y) in enumerate(seq):
        if i == 3:
            runtime.reset_stats()
            with pytest.warns(UserWarning, match=r"args\[0\] is a tensor of shape \[3, 12\].*"
                                                 r"captured call's args\[0\] is a tensor of "
                                                 r"shape \[8, 12\]"):
                losses.append(f(x, y).item())
            assert runtime.stats()["replays"] == 0
        else:
            losses.append(f(x, y).item())
    np.testing.assert_allclose(losses, eager[0], rtol=1e-6, atol=1e-6)
    for a, b in zip(eager[1], [p.detach().numpy() for p in model.parameters()]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_one_capture_per_signature(device):
    model, opt, _, step = _trainer(device, "sgd")
    f = clgrad.jit(step, max_captures=2)
    big, small = _batches(device, 3), _batches(device, 3, batch=3, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for (x, y), (xs, ys) in zip(big, small):
            f(x, y)
            f(xs, ys)
    assert f.captured == 2
    with pytest.warns(UserWarning, match="shape"):
        f(*_batches(device, 1, batch=5)[0])


def test_item_inside_warns_and_stays_eager(device):
    model, opt, _, step = _trainer(device, "sgd")
    seen = []

    def logging_step(x, y):
        loss = step(x, y)
        seen.append(loss.item())
        return loss
    f = clgrad.jit(logging_step)
    batches = _batches(device, 4)
    f(*batches[0])
    with pytest.warns(UserWarning, match=r"read device data on the host.*\.item\(\)"):
        f(*batches[1])
    runtime.reset_stats()
    for x, y in batches[2:]:
        f(x, y)
    assert runtime.stats()["replays"] == 0 and f.captured == 0
    assert len(seen) == 4
    eager = _train(device, False, batches, opt_name="sgd")
    np.testing.assert_allclose(seen, eager[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_feeds_a_jitted_step(device, workers):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, D_IN), dtype=np.float32)
    y = rng.integers(0, D_OUT, 40)
    results = []
    for jitted in (False, True):
        model, opt, _, step = _trainer(device, "adamw")
        f = clgrad.jit(step) if jitted else step
        # worker threads upload batches while the step records: their transfers and launches
        # are not the step's
        dl = DataLoader(TensorDataset(x, y), batch_size=B, shuffle=True, generator=7,
                        device=device, num_workers=workers)
        runtime.reset_stats()
        losses = [f(xb, yb).item() for _ in range(2) for xb, yb in dl]
        results.append((losses, [p.detach().numpy() for p in model.parameters()]))
        if jitted:
            assert runtime.stats()["replays"] == 2 * len(dl) - 2
    _same(*results)


def test_inputs_and_outputs_storage(device):
    """The caller's input tensors are never written by replays; the returned tensors are the
    capture's: the next replay overwrites them (documented, as for CUDA graphs)."""
    model, opt, _, step = _trainer(device, "sgd")
    f = clgrad.jit(step)
    batches = _batches(device, 5)
    kept = batches[1][0].numpy().copy()
    f(*batches[0])
    f(*batches[1])
    out3 = f(*batches[2])
    v3 = out3.item()
    out4 = f(*batches[3])
    assert out3.item() == out4.item() != v3
    np.testing.assert_array_equal(batches[1][0].numpy(), kept)


def test_pinned_buffers_stay_out_of_the_pool(device):
    """A tensor allocated after the capture never shares memory with it."""
    model, opt, _, step = _trainer(device, "adamw")
    f = clgrad.jit(step)
    batches = _batches(device, 6)
    f(*batches[0])
    f(*batches[1])
    bystanders = [clgrad.full((n,), 7.0, device=device)
                  for n in (D_H, D_H * D_IN, D_OUT, B * D_H, B * D_OUT, B, 1, D_H * D_H)
                  for _ in range(3)]
    for x, y in batches[2:]:
        f(x, y)
    for t in bystanders:
        np.testing.assert_array_equal(t.numpy(), np.full(t.shape, 7.0, np.float32))
    used = runtime.memory_stats(device)["allocated_bytes"]
    f.reset()
    assert runtime.memory_stats(device)["allocated_bytes"] < used


def test_structured_inputs_and_outputs(device):
    model, opt, _, step = _trainer(device, "sgd")

    @clgrad.jit
    def f(batch, *, scale):
        out = model(batch["x"]) * scale
        loss = F.cross_entropy(out, batch["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss, "logits": [out.detach()]}
    ref_model, ref_opt, _, _ = _trainer(device, "sgd")
    for x, y in _batches(device, 4):
        r = f({"x": x, "y": y}, scale=2.0)
        ref = F.cross_entropy(ref_model(x) * 2.0, y)
        ref_opt.zero_grad()
        ref.backward()
        ref_opt.step()
        np.testing.assert_allclose(r["loss"].item(), ref.item(), rtol=1e-6)
        assert r["logits"][0].shape == (B, D_OUT)
    assert f.captured == 1
    with pytest.warns(UserWarning, match="scale= is 3.0.*scale= is 2.0"):
        f({"x": x, "y": y}, scale=3.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_captures"):
        clgrad.jit(lambda: None, max_captures=0)


def test_inputs_sliced_from_a_device_dataset(device):
    """Batches that are views into one big device tensor: each replay reads its own slice, and
    the capture's input copy spans the captured view, not the whole dataset."""
    rng = np.random.default_rng(4)
    n = 1024 * B
    X = clgrad.tensor(rng.standard_normal((n, D_IN), dtype=np.float32), device=device)
    Y = clgrad.tensor(rng.integers(0, D_OUT, n), device=device)
    slices = [(X[i * B:(i + 1) * B], Y[i * B:(i + 1) * B]) for i in range(5)]
    eager = _train(device, False, slices, opt_name="sgd")
    before = runtime.memory_stats(device)["allocated_bytes"]
    model, opt, _, step = _trainer(device, "sgd")
    f = clgrad.jit(step)
    clgrad.manual_seed(42)
    losses = [f(x, y).item() for x, y in slices]
    _same(eager, (losses, [p.detach().numpy() for p in model.parameters()]))
    assert runtime.memory_stats(device)["allocated_bytes"] - before < X.nbytes // 4


def test_other_threads_are_not_recorded(device):
    """Transfers and launches of another thread (a loader worker) while the step records belong
    to that thread: the capture neither falls back nor replays them."""
    model, opt, _, step = _trainer(device, "sgd")
    made = []

    def worker():
        t = clgrad.tensor(np.arange(4, dtype=np.float32), device=device)
        made.append((t + 1).numpy())

    def busy_step(x, y):
        th = threading.Thread(target=worker)
        th.start()
        th.join()
        return step(x, y)
    f = clgrad.jit(busy_step)
    batches = _batches(device, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses = [f(x, y).item() for x, y in batches]
    assert f.captured == 1 and len(made) == 2
    assert f.launches() == _count_launches(device, batches[0])
    eager = _train(device, False, batches, opt_name="sgd")
    np.testing.assert_allclose(losses, eager[0], rtol=1e-6, atol=1e-6)


def _count_launches(device, batch):
    model, opt, _, step = _trainer(device, "sgd")
    step(*batch)
    runtime.reset_stats()
    step(*batch)
    return runtime.stats()["launches"]


def test_tools_bench_jit_runs(device):
    tool = Path(__file__).resolve().parent.parent / "tools" / "bench_jit.py"
    r = subprocess.run([sys.executable, str(tool), "--device", device.spec, "--rounds", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "launches per step" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["replay", "set+enqueue", "eager"]


def test_gradient_accumulation_over_jitted_calls(device):
    """A jitted forward+backward called twice per optimizer step, zeroed outside with
    set_to_none=False (docs/jit.md says why not True)."""
    batches = _batches(device, 8)
    results = []
    for jitted in (False, True):
        model, opt, _, _ = _trainer(device, "adamw")

        def fwd_bwd(x, y):
            loss = F.cross_entropy(model(x), y) / 2
            loss.backward()
            return loss
        f = clgrad.jit(fwd_bwd) if jitted else fwd_bwd
        opt.zero_grad(set_to_none=False)
        losses = []
        for i, (x, y) in enumerate(batches):
            losses.append(f(x, y).item())
            if i % 2 == 1:
                opt.step()
                opt.zero_grad(set_to_none=False)
        results.append((losses, [p.detach().numpy() for p in model.parameters()]))
        if jitted:
            assert f.captured == 1
    _same(*results)


def test_recorded_step_reuses_its_own_temporaries(device):
    """A temporary the recorded step freed backs its later temporaries (as the pool does for
    eager steps), so a capture of a long chain holds a few temporaries, not one per op."""
    n = 1 << 16
    x = clgrad.ones(n, device=device)

    def chain(x):
        h = x
        for _ in range(20):
            h = (h * 1.5).relu()          # each result frees the one before
        return h
    f = clgrad.jit(chain)
    f(x)
    before = runtime.memory_stats(device)["allocated_bytes"]
    f(x)
    held = runtime.memory_stats(device)["allocated_bytes"] - before
    assert f.captured == 1 and held <= 6 * 4 * n
    np.testing.assert_allclose(f(x * 2).numpy(), np.full(n, 2 * 1.5 ** 20, np.float32),
                               rtol=1e-5)


def test_method_decorator_captures_per_instance(device):
    class Trainer:
        def __init__(self):
            self.model, self.opt, _, self.step_fn = _trainer(device, "sgd")

        @clgrad.jit(max_captures=2)
        def step(self, x, y):
            return self.step_fn(x, y)
    a, b = Trainer(), Trainer()
    batches = _batches(device, 4)
    la = [a.step(x, y).item() for x, y in batches]
    lb = [b.step(x, y).item() for x, y in batches]
    assert la == lb and Trainer.step.captured == 2
    eager = _train(device, False, batches, opt_name="sgd")
    np.testing.assert_allclose(la, eager[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", ["lstm", "vae"])
def test_ported_example_steps_replay_like_eager(device, case):
    """The scoreboard's LSTM language model (2 layers, clip_grad_norm_, Adam) and VAE (randn in
    the step, BCE + KL, Adam): replays give the eager losses and parameters, batch after batch."""
    from dataclasses import replace

    from clgrad import bench
    sizes = replace(bench.QUICK, lstm=(16, 8, 12, 2, 5, 3), vae=(24, 12, 4, 6))
    build = {"lstm": bench._lstm_step, "vae": bench._vae_step}[case]
    rng = np.random.default_rng(7)
    if case == "lstm":
        V, _, _, _, T, Bt = sizes.lstm
        batches = [tuple(clgrad.tensor(rng.integers(0, V, (Bt, T)), device=device)
                         for _ in range(2)) for _ in range(6)]
    else:
        batches = [(clgrad.tensor(rng.random((sizes.vae[3], sizes.vae[0]), dtype=np.float32),
                                  device=device),) for _ in range(6)]

    def train(jitted):
        clgrad.manual_seed(0)
        _, step, _ = build(clgrad, sizes, device)
        f = clgrad.jit(step) if jitted else step
        clgrad.manual_seed(42)
        losses = [f(*b).item() for b in batches]
        return losses, [p.detach().numpy() for p in step.model.parameters()]

    runtime.reset_stats()
    eager = train(False)
    jit = train(True)
    assert runtime.stats()["replays"] == 4
    assert len(set(jit[0])) == len(jit[0])
    _same(eager, jit)
