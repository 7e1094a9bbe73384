"""Fusion of elementwise chains (docs/architecture.md, "Fusion"): pending results launch as one
generated kernel per chain, equal to the unfused results bit for bit, through autograd, in-place
writes, views of every layout, 0-d and empty tensors, and under clgrad.jit."""
import contextlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import clgrad
import clgrad.nn.functional as F
from clgrad import bench, runtime
from clgrad.autograd import gradcheck
from clgrad.runtime import lazy

from helpers import LAYOUTS, make

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def fusion(flag):
    old = lazy.set_enabled(flag)
    try:
        yield
    finally:
        lazy.set_enabled(old)


def _run(fn, arrays, layout, device, grad=False):
    """fn on tensors made from `arrays` (float32 ones require grad when `grad`): the numpy
    results and, with grad, the inputs' gradients of the sum of the first result."""
    ts = [make(a, a.dtype, device, layout, requires_grad=grad and a.dtype == np.float32)
          for a in arrays]
    if grad:
        ts = [t.detach().requires_grad_() if t.requires_grad else t for t in ts]
    out = fn(*ts)
    outs = out if isinstance(out, tuple) else (out,)
    res = [o.detach().numpy() for o in outs]
    if grad:
        outs[0].sum().backward()
        res += [t.grad.numpy() for t in ts if t.requires_grad]
    return res


def _same(fn, arrays, device, layout="contiguous", grad=False):
    """fn fused and unfused: identical bits; returns the fused run's stats."""
    with fusion(False):
        want = _run(fn, arrays, layout, device, grad)
    runtime.reset_stats()
    with fusion(True):
        got = _run(fn, arrays, layout, device, grad)
    st = runtime.stats()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    return st


def _f32(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2, 2, s).astype(np.float32) for s in shapes]


def _chain(a, b):
    return ((a * 2 + b).relu() - b.exp() * 0.5).tanh() * a + b.sigmoid()


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 5), (3, 1)),
                                    ((), ()), ((5,), ()), ((0, 3), (3,)), ((1,), (1,)),
                                    ((4, 3, 2), (4, 3, 2))])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_chain_equals_unfused(device, shapes, layout):
    _same(_chain, _f32(*shapes), device, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_chain_gradients_equal_unfused(device, layout):
    _same(_chain, _f32((6, 5), (5,)), device, layout, grad=True)
    _same(lambda a, b: F.gelu(a * b + 1) * a.tanh(), _f32((4, 7), (4, 7)), device, layout,
          grad=True)


def test_one_shape_chain_is_one_launch(device):
    st = _same(lambda a, b: (((a + b) * a - 1).abs() + 2).sqrt(), _f32((64,), (64,)), device)
    assert st["launches"] == 1 and st["fused"] == 1 and st["fused_ops"] == 6


def test_gradient_path_fuses(device):
    # ReLU backward's mask times the incoming gradient, with the chain's own gradient ops
    x = clgrad.tensor(_f32((256,))[0], device=device, requires_grad=True)
    for flag in (False, True):
        with fusion(flag):
            x.grad = None
            ((x * 3).relu() * x).sum().backward()
            runtime.reset_stats()
            x.grad = None
            y = ((x * 3).relu() * x).sum()
            y.backward()
            st = runtime.stats()
            if flag:
                assert st["fused"] >= 1 and st["launches"] < unfused
            else:
                unfused = st["launches"]


def test_dtypes_mix(device):
    rng = np.random.default_rng(2)
    i = rng.integers(-5, 6, (3, 4)).astype(np.int64)
    f = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
    _same(lambda a: (a + 3) * a - (a // 2), [i], device)
    _same(lambda a, b: clgrad.where(a > 0, b * 2, b - 1) + (a < 0), [f, f[::-1].copy()], device)
    _same(lambda a, b: ((a > b) & (b > 0)) | (a == 0), [f, -f], device)
    _same(lambda a, b: (a * b + 1) / (b.abs() + 1), [i, f], device)
    if device.has_fp64:
        d = rng.uniform(-1, 1, (5,))
        _same(lambda a: (a * a).exp() - a.float().double(), [d], device)


def test_fp64_chain_gradcheck(fp64):
    x = clgrad.tensor(np.linspace(-1, 1, 7), dtype=clgrad.float64, device=fp64,
                      requires_grad=True)
    assert gradcheck(lambda t: ((t * 2).tanh() + t.exp() * t).sigmoid(), (x,))


def test_pending_reads_inputs_as_they_were(device):
    a = np.arange(6, dtype=np.float32)
    x = clgrad.tensor(a, device=device)
    y = x * 2 + 1                             # pending
    x.add_(10)                                # an in-place write launches it first
    np.testing.assert_array_equal(y.numpy(), a * 2 + 1)
    z = x * 3
    x.data = clgrad.tensor(np.zeros(6, np.float32), device=device)
    np.testing.assert_array_equal(z.numpy(), (a + 10) * 3)
    w = x + 1
    x.copy_(clgrad.tensor(np.ones(6, np.float32), device=device))
    np.testing.assert_array_equal(w.numpy(), np.ones(6, np.float32))
    # a pending write goes to the memory the tensor had when it was asked for
    p = clgrad.tensor(np.zeros(6, np.float32), device=device)
    old = p.detach()
    p.copy_(clgrad.tensor(a, device=device))
    p.data = clgrad.tensor(np.full(6, 7, np.float32), device=device)
    np.testing.assert_array_equal(old.numpy(), a)
    np.testing.assert_array_equal(p.numpy(), np.full(6, 7, np.float32))


def test_unused_chain_never_launches_and_frees_its_inputs(device):
    x = clgrad.tensor(np.ones(1000, np.float32), device=device)
    runtime.reset_stats()
    y = (x * 2).exp() + 1
    del y
    assert runtime.stats()["launches"] == 0


def test_long_chain_is_split(device):
    def long(a):
        for k in range(40):
            a = a * 1.01 + 0.001 * k
        return a
    st = _same(long, _f32((33,)), device)
    assert 1 < st["launches"] <= 80 // 16 + 2


def test_shape_change_in_a_chain(device):
    # a pending result read by an op of another shape is stored first (its own kernel)
    _same(lambda a, b: ((a + 1) * b).exp() + (a * 2), _f32((3, 1), (1, 4)), device, grad=True)
    # ... also when nothing else holds it
    _same(lambda a, b: ((a + 1) * b).exp() + (a * 2), _f32((3, 1), (1, 4)), device)


def test_saved_output_dropped_before_launch(device):
    a = _f32((16,))[0]
    for flag in (False, True):
        with fusion(flag):
            x = clgrad.tensor(a, device=device, requires_grad=True)
            loss = (x.exp() * 3).sum()        # exp's output is saved weakly, never held
            loss.backward()
            if flag:
                np.testing.assert_array_equal(x.grad.numpy(), ref)
            else:
                ref = x.grad.numpy()


def _steps(device, only, jitted, n=4):
    clgrad.manual_seed(0)
    sizes = bench.Sizes(mlp=(32, 64, 64, 10), mlp_batch=16, cnn_batch=4,
                        gpt=(32, 2, 16, 4, 1, 16))
    rng = np.random.default_rng(3)
    if only == "mlp":
        model = bench.mlp(clgrad, sizes.mlp, device)
        x = clgrad.tensor(rng.standard_normal((16, 32), dtype=np.float32), device=device)
        y = clgrad.tensor(rng.integers(0, 10, 16), device=device)
        opt = clgrad.optim.Adam(model.parameters(), lr=1e-3)
    elif only == "cnn":
        model = bench.lenet(clgrad, device)
        x = clgrad.tensor(rng.standard_normal((4, 1, 28, 28), dtype=np.float32), device=device)
        y = clgrad.tensor(rng.integers(0, 10, 4), device=device)
        opt = clgrad.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        C, H, T, B, nl, V = sizes.gpt
        model = bench.gpt(clgrad, C, H, T, nl, V, device)
        x = clgrad.tensor(rng.integers(0, V, (B, T)), device=device)
        y = clgrad.tensor(rng.integers(0, V, (B * T,)), device=device)
        opt = clgrad.optim.AdamW(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y)
        loss.backward()
        opt.step()
        return loss
    f = clgrad.jit(step) if jitted else step
    return [f(x, y).item() for _ in range(n)]


@pytest.mark.parametrize("model", ["mlp", "cnn", "gpt"])
def test_jit_with_fusion_matches_eager_unfused(device, model):
    with fusion(False):
        want = _steps(device, model, jitted=False)
    with fusion(True):
        got = _steps(device, model, jitted=True)
        eager = _steps(device, model, jitted=False)
    assert got == want and eager == want


def test_pending_writes_launch_together_in_order(device):
    a = np.arange(5, dtype=np.float32)
    arena = clgrad.zeros(20, device=device)
    p = clgrad.tensor(a, device=device)
    q = clgrad.tensor(a * 10, device=device)
    arena._buf
    runtime.reset_stats()
    arena[0:5].copy_(p)                  # three writes into one buffer, disjoint: one launch
    arena[5:10].copy_(q * 2)
    arena[10:20].fill_(3)
    st = runtime.stats()
    assert st["launches"] == 1 and st["fused"] == 1
    want = np.concatenate([a, a * 20, np.full(10, 3, np.float32)])
    np.testing.assert_array_equal(arena.numpy(), want)
    arena[0:5].copy_(q)                  # overlapping writes: the later one wins
    arena[2:7].copy_(p)
    r = arena + 1                        # and a read after them sees both
    want[0:5], want[2:7] = a * 10, a
    np.testing.assert_array_equal(r.numpy(), want + 1)
    np.testing.assert_array_equal(arena.numpy(), want)


def test_many_live_results(device):
    x = clgrad.tensor(np.arange(16, dtype=np.float32), device=device)
    runtime.reset_stats()
    outs = [x * k + k for k in range(200)]
    got = [o.numpy() for o in outs]
    assert runtime.stats()["launches"] < 200
    for k, g in enumerate(got):
        np.testing.assert_array_equal(g, np.arange(16, dtype=np.float32) * k + k)
    with fusion(False):
        want = [(x * k + k).numpy() for k in range(200)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def _epilogue_folds(device):
    """Whether a ReLU of a fresh product folds into the GEMM's epilogue on this device (the CPU
    kernel family has the epilogue flag)."""
    from clgrad.runtime import gemm
    return gemm.family_for(device, clgrad.float32) == "cpu"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_of_product_equals_unfused(device, layout):
    x, w, b = _f32((6, 5), (5, 7), (7,), seed=4)
    _same(lambda x, w, b: F.relu(F.linear(x, w.t(), b)), [x, w, b], device, layout, grad=True)
    _same(lambda x, w: (x @ w).relu() * 2 - x.sum(), [x, w], device, layout, grad=True)
    xb, wb = _f32((3, 6, 5), (5, 4), seed=5)
    _same(lambda x, w: (x @ w).relu(), [xb, wb], device, layout, grad=True)


def test_relu_folds_into_the_product(device):
    x, w, b = (clgrad.tensor(a, device=device) for a in _f32((8, 5), (7, 5), (7,), seed=6))
    F.linear(x, w, b)._buf                            # builds what the timed run launches
    runtime.reset_stats()
    y = F.relu(F.linear(x, w, b))
    got = y.numpy()
    st = runtime.stats()
    want = np.maximum(x.numpy() @ w.numpy().T + b.numpy(), 0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if _epilogue_folds(device):
        assert st["launches"] == 1 and st["fused"] == 1 and st["fused_ops"] == 2
    else:
        assert st["launches"] == 2


def test_held_product_is_not_folded(device):
    xa, wa = _f32((4, 3), (3, 5), seed=7)
    x, w = clgrad.tensor(xa, device=device), clgrad.tensor(wa, device=device)
    c = x @ w                               # held: its own values must survive the ReLU
    r = c.relu()
    d = c * 3                               # and a second reader
    np.testing.assert_array_equal(r.numpy(), np.maximum(c.numpy(), 0))
    np.testing.assert_array_equal(d.numpy(), c.numpy() * np.float32(3))
    e = (x @ w).relu()
    x.add_(1)                               # a write into an input waits for the product
    np.testing.assert_array_equal(e.numpy(), r.numpy())


def test_relu_backward_folds_into_the_product(device):
    x, w1, w2 = _f32((6, 5), (5, 8), (8, 3), seed=9)
    st = _same(lambda x, w1, w2: F.relu(x @ w1) @ w2, [x, w1, w2], device, grad=True)
    # forward: the ReLU; backward: the mask on g @ w2^T (fused_ops - fused counts both)
    if _epilogue_folds(device):
        assert st["fused_ops"] - st["fused"] >= 2


def test_views_of_a_pending_product(device):
    """A view of a pending product (a transpose, a reshape) stays pending; whichever is read
    first launches the product once, and every view then shares its buffer."""
    xa, wa = _f32((4, 3), (3, 5), seed=11)
    x, w = clgrad.tensor(xa, device=device), clgrad.tensor(wa, device=device)
    with fusion(False):
        c0 = (x @ w).numpy()
    c = x @ w
    v = c.t()
    if _epilogue_folds(device):
        assert v._lazy is not None
    r = v.reshape(-1)                       # a view of the view
    e = v * 2                               # an elementwise reader of the view
    np.testing.assert_array_equal(e.numpy(), c0.T * np.float32(2))
    np.testing.assert_array_equal(r.numpy(), c0.T.reshape(-1))
    np.testing.assert_array_equal(c.numpy(), c0)
    x @ w                                   # (builds nothing new below)
    runtime.reset_stats()
    c = x @ w
    v = c.mT
    v._buf                                  # the view launched first: the product, once
    assert runtime.stats()["launches"] == 1 and c._buf is v._buf
    np.testing.assert_array_equal(v.numpy(), c0.T)
    c = x @ w
    c._buf
    assert c.t()._lazy is None              # a view of a launched product is a plain view
    c = x @ w
    v = c.t()
    c.add_(1)                               # a write into the product shows through its view
    np.testing.assert_array_equal(v.numpy(), c0.T + np.float32(1))
    v = (x @ w).t()                         # the product's own tensor gone: the view holds it
    np.testing.assert_array_equal(v.contiguous().numpy(), c0.T)


def _kernel_names(monkeypatch):
    from clgrad.runtime import program
    names, call = [], program.Kernel.__call__

    def named(self, global_size, local_size, *args):
        if lazy.pending and lazy.owner is None:
            lazy.realize()
        names.append(self.cl_kernel.function_name)
        return call(self, global_size, local_size, *args)
    monkeypatch.setattr(program.Kernel, "__call__", named)
    return names


@pytest.mark.parametrize("set_to_none", [True, False])
def test_weight_gradients_launch_into_grad_slots(device, monkeypatch, set_to_none):
    """Under an optimizer (its flat .grad arena), a Linear's weight and bias gradients are GEMMs
    that write straight into their .grad slots: no copy kernel, the same bits as unfused, and
    the slots stay the arena's memory. With .grad zeroed in place they are added instead."""
    def run(flag):
        clgrad.manual_seed(0)
        with fusion(flag):
            m = clgrad.nn.Sequential(clgrad.nn.Linear(6, 8), clgrad.nn.ReLU(),
                                     clgrad.nn.Linear(8, 3)).to(device)
            opt = clgrad.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
            x = clgrad.tensor(_f32((5, 6), seed=12)[0], device=device)
            names = []
            for i in range(3):
                opt.zero_grad(set_to_none=set_to_none)
                if i == 2:
                    names = _kernel_names(monkeypatch)
                F.cross_entropy(m(x), clgrad.tensor([0, 2, 1, 1, 0], device=device)).backward()
                opt.step()
                monkeypatch.undo()
            bufs = {p.grad._buf for p in m.parameters()}
            return [p.detach().numpy() for p in m.parameters()], names, len(bufs)
    want, _, _ = run(False)
    got, names, n_bufs = run(True)
    for g, w_ in zip(got, want):
        np.testing.assert_array_equal(g, w_)
    assert n_bufs == 1                      # every .grad is a view of the one arena
    if _epilogue_folds(device) and set_to_none:
        assert not any("copy" in n for n in names), names


def test_pending_reduction_reads_in_order(device):
    a = _f32((4, 6), seed=10)[0]
    x = clgrad.tensor(a, device=device)
    y = x * 2                               # pending
    s = x.sum(1)                            # a pending reduction ...
    s._buf                                  # ... launched alone:
    assert y._lazy is not None              # the chain beside it stays pending
    np.testing.assert_array_equal(s.numpy(), a.sum(1, dtype=np.float32))
    x.copy_(clgrad.tensor(a + 1, device=device))   # a pending write into its input
    t = x.sum(0)
    r = y + s.sum()
    np.testing.assert_array_equal(t.numpy(), (a + 1).sum(0, dtype=np.float32))
    np.testing.assert_array_equal(r.numpy(), a * 2 + a.sum(1, dtype=np.float32).sum())
    with fusion(False):
        want = (clgrad.tensor(a, device=device).sum(1) * 3).numpy()
    np.testing.assert_array_equal((clgrad.tensor(a, device=device).sum(1) * 3).numpy(), want)


def test_relu_of_product_gradcheck(fp64):
    rng = np.random.default_rng(8)
    x = clgrad.tensor(rng.uniform(-1, 1, (4, 3)), dtype=clgrad.float64, device=fp64,
                      requires_grad=True)
    w = clgrad.tensor(rng.uniform(-1, 1, (5, 3)), dtype=clgrad.float64, device=fp64,
                      requires_grad=True)
    b = clgrad.tensor(rng.uniform(-1, 1, (5,)), dtype=clgrad.float64, device=fp64,
                      requires_grad=True)
    f = lambda x, w, b: F.relu(F.linear(x, w, b)) * F.linear(x, w, b)  # noqa: E731
    assert gradcheck(f, (x, w, b))
    assert clgrad.autograd.gradgradcheck(f, (x, w, b))


# launches one step saves with fusion at bench.QUICK sizes on the CPU kernel family (Intel's
# runtime and pip's PoCL alike): elementwise chains, ReLUs and ReLU backward masks folded into a
# GEMM epilogue, and gradients that a GEMM or a sum writes straight into the optimizer's .grad
# slots (MLP 25 -> 15, LeNet 50 -> 37, Transformer 134 -> 101). Other devices fold no epilogue:
# there the chains alone save launches. tools/fusion_launches.py prints the full-size figures.
STEP_SAVINGS = {"mlp": 10, "cnn": 13, "gpt": 33}


def _third_step(device, model):
    clgrad.manual_seed(0)
    (_, step), = bench.training_cases(clgrad, bench.QUICK, device, model)
    step()
    step()
    runtime.reset_stats()
    loss = step()
    st = runtime.stats()
    return st["launches"], st["fused"], st["fused_ops"], loss


@pytest.mark.parametrize("model", ["mlp", "cnn", "gpt"])
def test_launches_per_step(device, model):
    counts = {}
    for flag in (False, True):
        with fusion(flag):
            counts[flag] = _third_step(device, model)
    saved = counts[False][0] - counts[True][0]
    if _epilogue_folds(device):
        assert saved == STEP_SAVINGS[model]
    else:
        assert saved > 0
    assert counts[True][2] - counts[True][1] == saved          # fused_ops - fused
    assert counts[True][3] == counts[False][3]                 # the same loss, bit for bit


def test_fusion_launches_tool(device):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "fusion_launches.py"), "--quick",
                        "--device", device.spec], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:4]]
    assert [row[0] for row in rows] == ["mlp", "cnn", "gpt"]
    assert all(int(row[2]) < int(row[1]) and row[-1] == "True" for row in rows)
