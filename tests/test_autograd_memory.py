"""The tape's footprint: graphs free their buffers by reference counting alone (no cycles),
unsaved intermediates are not kept alive, and a training step moves no data to the host."""
import gc

import numpy as np
import pytest

import clgrad
from clgrad import runtime
from clgrad.runtime import lazy


@pytest.fixture
def held(device, no_gc):
    """no_gc, with the process-lifetime constants the tests' graphs use made beforehand:
    backward()'s implicit gradient 1 is cached per device, dtype and shape (autograd/engine.py's
    _seed), and made first inside a test it would count as memory that test's graph kept."""
    w = clgrad.zeros((), device=device, requires_grad=True)
    w.backward()
    del w


def allocated(device):
    # settled: pending (lazy) work holds its inputs until it runs or is dropped at the next flush
    lazy.flush()
    return clgrad.memory_stats(device)["allocated_bytes"]


def _mlp_params(device, seed=0):
    g = clgrad.Generator(device).manual_seed(seed) if hasattr(clgrad, "Generator") else None
    shapes = [(8, 32), (32,), (32, 4), (4,)]
    return [(clgrad.randn(*s, device=device, generator=g) * 0.3).requires_grad_()
            for s in shapes]


def _loss(params, x, y):
    w1, b1, w2, b2 = params
    h = (x @ w1 + b1).relu()                      # (16, 8) -> (16, 32)
    out = (h @ w2 + b2).tanh()                    # (16, 32) -> (16, 4)
    d = out - y
    return (d * d).mean()


def test_graph_freed_without_gc(device, held):
    base = allocated(device)
    params = _mlp_params(device)
    x, y = clgrad.randn(16, 8, device=device), clgrad.randn(16, 4, device=device)
    with_params = allocated(device)
    for _ in range(3):
        loss = _loss(params, x, y)
        loss.backward()
    del loss
    for p in params:
        p.grad = None
    assert allocated(device) == with_params
    # a graph dropped without any backward frees everything too
    loss = _loss(params, x, y)
    second, = clgrad.autograd.grad(loss, params[0], create_graph=True)
    del loss, second
    assert allocated(device) == with_params
    del params, x, y, p
    assert allocated(device) == base


def test_custom_function_and_hooks_leave_no_cycle(device, held):
    class Sq(clgrad.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            out = t * t
            ctx.save_for_backward(t, out)        # an output saved: held weakly
            return out, t

        @staticmethod
        def backward(ctx, g, g2):
            t, out = ctx.saved_tensors
            return g * 2 * t + g2

    base = allocated(device)
    x = clgrad.randn(100, device=device, requires_grad=True)
    a, b = Sq.apply(x)
    a.register_hook(lambda g: g * 1)
    (a.sum() + b.sum()).backward()
    x.grad = None
    del a, b
    a, b = Sq.apply(x)
    del a, b
    del x
    assert allocated(device) == base


def test_unsaved_intermediates_are_not_kept(device, held):
    x = clgrad.randn(4096, device=device, requires_grad=True)
    before = allocated(device)
    y = x
    for _ in range(20):
        y = y + 1.0                                # add saves nothing: only y stays alive
    nbytes = 4096 * 4
    assert allocated(device) - before <= 2 * nbytes
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(4096, np.float32))


def test_backward_frees_saved_tensors(device, held):
    x = clgrad.randn(4096, device=device, requires_grad=True)
    y = x
    for _ in range(10):
        y = (y * 1.0001).tanh()                    # tanh saves its output
    loss = y.sum()
    del y
    held = allocated(device)
    loss.backward()
    x.grad = None
    assert allocated(device) < held - 5 * 4096 * 4


def test_training_step_moves_no_data_to_host(device):
    params = _mlp_params(device, seed=1)
    x, y = clgrad.randn(16, 8, device=device), clgrad.randn(16, 4, device=device)
    lr = 0.05

    def step():
        loss = _loss(params, x, y)
        loss.backward()
        with clgrad.no_grad():
            for p in params:
                p.sub_(p.grad * lr)                # in-place SGD on the leaves
                p.grad.zero_()
        return loss

    first = step().item()
    step()                                         # warm-up: kernels built
    runtime.reset_stats()
    for _ in range(5):
        loss = step()
    s = runtime.stats()
    assert s["h2d"] == 0 and s["d2h"] == 0, s
    assert s["builds"] == 0, s
    last = loss.item()                             # the one read the user asks for
    s = runtime.stats()
    assert s["d2h"] == 1 and s["h2d"] == 0, s
    assert last < first


def _patterns(device):
    x = clgrad.randn(6, device=device, requires_grad=True)
    w = clgrad.randn(6, 6, device=device, requires_grad=True)
    y = (w @ x).tanh()
    y.retain_grad()
    y.register_hook(lambda g: g * 2)
    (y.sigmoid() * y).sum().backward()
    v = x * 2
    v[0] = 3.0                                   # setitem on a non-leaf
    v[1:3].mul_(w[0, 1:3])                       # in-place on a view
    v.mul_(w[1])                                 # keeps a copy of the old value
    v.sum().backward()
    g, = clgrad.autograd.grad((x.exp() * x).sum(), x, create_graph=True)
    g.sum().backward()
    s, = clgrad.autograd.grad((x * x).sum(), x)
    buf = clgrad.zeros(6, device=device)
    buf.copy_(x * 3)
    buf.sum().backward()


def test_no_reference_cycles(device):
    _patterns(device)                            # build kernels (pyopencl makes cycles then)
    gc.collect()
    gc.disable()
    old = gc.get_debug()
    try:
        _patterns(device)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        ours = [type(o).__name__ for o in gc.garbage
                if type(o).__module__.startswith("clgrad")]
        assert ours == []
    finally:
        gc.set_debug(old)
        gc.garbage.clear()
        gc.enable()


def test_gc_freeing_buffers_during_allocation_does_not_deadlock(device):
    # user-made cycles (a tensor referring to itself) are freed by gc, which can run inside the
    # pool's allocation and release buffers there; run in a child so a hang fails, not blocks
    import subprocess
    import sys
    code = (
        "import gc, clgrad\n"
        "gc.set_threshold(5)\n"
        "for i in range(1, 400):\n"
        "    t = clgrad.empty(64 * i)\n"           # new sizes: the pool allocates under its lock
        "    t.me = [t, [t]]\n"
        "print('done')\n")
    env = dict(__import__("os").environ, CLGRAD_DEVICE=device.spec)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=env, cwd=__import__("os").path.dirname(__import__("os").path.dirname(
                           __file__)))
    assert r.stdout.strip().endswith("done"), r.stderr[-2000:]
