"""When the backward walk hands a leaf its gradient: as soon as no node left in the walk feeds
that leaf (PyTorch's AccumulateGrad timing), so post-accumulate hooks run while the rest of the
backward pass is still to come. Order is checked with node pre-hooks, never with clocks."""
import numpy as np

import clgrad
from clgrad import nn
from clgrad.autograd import grad

RNG = np.random.default_rng(7)


def T(a, device, requires_grad=False):
    return clgrad.tensor(np.asarray(a, dtype=np.float64), dtype="float64", device=device,
                         requires_grad=requires_grad)


def close(t, ref, atol=1e-12, rtol=1e-10):
    np.testing.assert_allclose(t.detach().numpy(), np.asarray(ref), atol=atol, rtol=rtol)


def test_leaf_hooks_fire_before_nodes_further_down(fp64):
    a, b = RNG.uniform(-1, 1, 4), RNG.uniform(-1, 1, 4)
    x, w = T(a, fp64, True), T(b, fp64, True)
    events = []
    h = (x * 2).exp()                       # x -> mul -> exp -> (mul with w) -> sum
    y = h * w
    h.grad_fn.register_prehook(lambda g: events.append("exp node"))
    h.grad_fn.next_functions[0][0].register_prehook(lambda g: events.append("x*2 node"))
    w.register_post_accumulate_grad_hook(lambda t: events.append(("w", t.grad.numpy().copy())))
    x.register_post_accumulate_grad_hook(lambda t: events.append(("x", t.grad.numpy().copy())))
    y.sum().backward()
    assert [e if isinstance(e, str) else e[0] for e in events] == ["w", "exp node", "x*2 node",
                                                                    "x"]
    np.testing.assert_allclose(events[0][1], np.exp(2 * a), rtol=1e-12)
    np.testing.assert_allclose(events[3][1], 2 * np.exp(2 * a) * b, rtol=1e-12)


def test_leaf_used_at_two_depths_gets_one_summed_gradient(fp64):
    # w feeds the last node and one far down: its hook waits for both, and fires once
    a, b = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    x, w = T(a, fp64, True), T(b, fp64, True)
    inner = (x * w).tanh()
    out = (inner.exp() * w).sum()
    events = []
    inner.grad_fn.register_prehook(lambda g: events.append("tanh node"))
    w.register_post_accumulate_grad_hook(lambda t: events.append(("w", t.grad.numpy().copy())))
    out.backward()
    assert [e if isinstance(e, str) else e[0] for e in events] == ["tanh node", "w"]
    th = np.tanh(a * b)
    expect = np.exp(th) + b * np.exp(th) * (1 - th ** 2) * a
    np.testing.assert_allclose(events[1][1], expect, rtol=1e-12)
    close(w.grad, expect)


def test_hook_changing_a_leaf_grad_does_not_reach_nodes_still_to_run(fp64):
    # AddBackward hands the same incoming gradient to the leaf p and to exp's node; p receives
    # it first and its hook scales p.grad in place: exp's node must still see the original
    a, c = RNG.uniform(-1, 1, 5), RNG.uniform(0.5, 2, 5)
    x, p = T(a, fp64, True), T(np.zeros(5), fp64, True)
    order = []
    e = x.exp()
    e.grad_fn.register_prehook(lambda g: order.append("exp node"))

    def scale(t):
        order.append("p")
        with clgrad.no_grad():
            t.grad.mul_(10)
    p.register_post_accumulate_grad_hook(scale)
    ((e + p) * T(c, fp64)).sum().backward()
    assert order == ["p", "exp node"]
    close(p.grad, 10 * c)
    close(x.grad, c * np.exp(a))


def test_early_accumulation_keeps_accumulation_retain_and_create_graph(fp64):
    a = RNG.uniform(0.5, 1.5, 4)
    w = T(a, fp64, True)
    x = T(RNG.uniform(-1, 1, 4), fp64, True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.detach().numpy().copy()))
    loss = ((w ** 3) * (x * 2).sin()).sum()
    loss.backward(retain_graph=True)
    loss.backward()                          # accumulates: 2 * 3 w^2 sin(2x)
    s = np.sin(2 * x.detach().numpy())
    close(w.grad, 6 * a ** 2 * s)
    np.testing.assert_allclose(seen[0], 3 * a ** 2 * s, rtol=1e-12)
    np.testing.assert_allclose(seen[1], 6 * a ** 2 * s, rtol=1e-12)
    w.grad = None
    ((w ** 3) * (x * 2).sin()).sum().backward(create_graph=True)
    assert w.grad.requires_grad
    gw, = grad(w.grad.sum(), w)              # d/dw of 3 w^2 sin(2x) = 6 w sin(2x)
    close(gw, 6 * a * s)
    # autograd.grad returns gradients and never calls post-accumulate hooks
    n = len(seen)
    grad(((w ** 3) * x).sum(), w)
    assert len(seen) == n


def test_parameters_get_gradients_in_reverse_layer_order(device):
    # what DistributedDataParallel's reverse-order buckets rely on: the last layer's parameters
    # are complete before the first layer's backward has run
    clgrad.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
                        nn.Linear(8, 2)).to(device)
    names = {id(p): n for n, p in net.named_parameters()}
    got = []
    for p in net.parameters():
        p.register_post_accumulate_grad_hook(lambda t: got.append(names[id(t)]))
    x = clgrad.randn(3, 5, device=device)
    net(x).square().sum().backward()
    layer = [int(n.split(".")[0]) for n in got]
    assert sorted(got) == sorted(names.values())
    assert layer == sorted(layer, reverse=True), got
