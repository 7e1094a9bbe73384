"""The backward walk: backward()/autograd.grad() semantics, accumulation, hooks, retain_grad,
grad_fn graph, higher-order gradients, PyTorch's errors, deep graphs."""
import warnings

import numpy as np
import pytest

import clgrad
from clgrad.autograd import grad, gradcheck, gradgradcheck

RNG = np.random.default_rng(0)


def T(a, device, requires_grad=False, dtype="float64"):
    return clgrad.tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=device,
                         requires_grad=requires_grad)


def close(t, ref, atol=1e-12, rtol=1e-10):
    np.testing.assert_allclose(t.detach().numpy().astype(np.float64), np.asarray(ref),
                               atol=atol, rtol=rtol)


# ---- backward(): gradient, retain_graph, inputs, accumulation --------------------------------
def test_backward_scalar_and_vector_gradient(fp64):
    a = RNG.uniform(-1, 1, (3, 4))
    x = T(a, fp64, True)
    (x * x).sum().backward()
    close(x.grad, 2 * a)
    x.grad = None
    g = RNG.uniform(-1, 1, (3, 4))
    (x * x).backward(gradient=T(g, fp64))
    close(x.grad, 2 * a * g)


def test_backward_non_scalar_needs_gradient(device):
    x = clgrad.ones(3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                           "outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of "
                                           r"clgrad.Size\(\[2\]\) and output\[0\] has a shape of"):
        (x * 2).backward(clgrad.ones(2, device=device))


def test_backward_on_tensor_without_grad(device):
    x = clgrad.ones(3, device=device)
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and does "
                                           "not have a grad_fn"):
        x.sum().backward()


def test_grad_accumulates_across_backward_calls(fp64):
    a = RNG.uniform(-1, 1, 5)
    x = T(a, fp64, True)
    for k in range(1, 4):
        (x * x).sum().backward()
        close(x.grad, 2 * a * k)
    first = x.grad
    (x * 3).sum().backward()
    assert x.grad is first            # accumulated in place, as PyTorch does without create_graph
    close(x.grad, 6 * a + 3)


def test_fan_out_accumulates(fp64):
    a = RNG.uniform(0.5, 1.5, 4)
    x = T(a, fp64, True)
    y = x * x + x.exp() * x - x / (x + 1) + x.sin() * x.sin()
    y.sum().backward()
    ref = 2 * a + np.exp(a) * (a + 1) - 1 / (a + 1) ** 2 + 2 * np.sin(a) * np.cos(a)
    close(x.grad, ref, atol=1e-10)
    # the same tensor used many times in one expression, and through a broadcast
    x.grad = None
    s = x.sum()
    z = s * x + x * s + x.reshape(4, 1) * x.reshape(1, 4)
    z.sum().backward()                # z is (4, 4): z.sum() = 4 * 2 s^2 + s^2 = 9 s^2
    close(x.grad, np.full(4, 18 * a.sum()), atol=1e-9)


def test_fan_out_leaf_gets_one_sum(device):
    x = clgrad.ones(3, device=device, requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (x * 2 + x * 3 + x).sum().backward()
    assert len(seen) == 1                      # the hook sees the summed gradient once
    np.testing.assert_array_equal(seen[0], [6, 6, 6])


def test_retain_graph(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    close(x.grad, [4.0, 8.0])
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_second_backward_without_saved_tensors_is_allowed(fp64):
    # PyTorch frees saved tensors only; a graph of add/sum has none and can be walked again
    x = T([1.0, 2.0], fp64, True)
    y = (x + 1).sum()
    y.backward()
    y.backward()
    close(x.grad, [2.0, 2.0])


def test_saved_tensors_access_after_free(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x.exp()
    y.sum().backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.grad_fn.ctx.saved_tensors


def test_backward_inputs_argument(fp64):
    a, b = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    x, w = T(a, fp64, True), T(b, fp64, True)
    h = x * w
    h.retain_grad()
    y = (h * h).sum()
    y.backward(inputs=[w], retain_graph=True)
    assert x.grad is None
    close(w.grad, 2 * a * a * b)
    y.backward(inputs=[h])                       # a non-leaf input accumulates into .grad too
    close(h.grad, 2 * a * b)
    assert x.grad is None
    with pytest.raises(RuntimeError, match="'inputs' argument to backward\\(\\) cannot be empty"):
        (x * 2).sum().backward(inputs=[])


def test_autograd_backward_function_several_roots(fp64):
    x = T([1.0, 2.0, 3.0], fp64, True)
    y1, y2 = x * 2, (x * x).sum()
    clgrad.autograd.backward([y1, y2], [T([1.0, 1.0, 1.0], fp64), None])
    close(x.grad, [2 + 2, 2 + 4, 2 + 6])


def test_backward_on_leaf_itself(fp64):
    x = T([1.0, 2.0], fp64, True)
    x.backward(T([3.0, 4.0], fp64))
    close(x.grad, [3.0, 4.0])
    s = T(2.0, fp64, True)
    s.backward()
    close(s.grad, 1.0)


def test_gradient_argument_not_aliased_by_grad(fp64):
    x = T([1.0, 2.0], fp64, True)
    g = T([1.0, 1.0], fp64)
    (x + 0).backward(g)
    (x + 0).backward(g)
    close(g, [1.0, 1.0])                         # accumulation must not write into `g`
    close(x.grad, [2.0, 2.0])


# ---- autograd.grad --------------------------------------------------------------------------
def test_grad_basic_and_leaves_untouched(fp64):
    a = RNG.uniform(-1, 1, (2, 3))
    x = T(a, fp64, True)
    y = (x.sin() * x).sum()
    gx, = grad(y, x)
    close(gx, np.cos(a) * a + np.sin(a), atol=1e-12)
    assert x.grad is None
    assert not gx.requires_grad


def test_grad_multiple_inputs_outputs_and_grad_outputs(fp64):
    a, b = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    x, w = T(a, fp64, True), T(b, fp64, True)
    y1, y2 = x * w, (x + w).sum()
    go = RNG.uniform(-1, 1, 3)
    gx, gw = grad([y1, y2], [x, w], [T(go, fp64), None])
    close(gx, go * b + 1)
    close(gw, go * a + 1)


def test_grad_wrt_intermediate(fp64):
    x = T([1.0, 2.0], fp64, True)
    h = x * 3
    y = (h * h).sum()
    gh, gx = grad(y, [h, x])
    close(gh, [6.0, 12.0])
    close(gx, [18.0, 36.0])


def test_grad_unused_inputs(fp64):
    x, z = T([1.0, 2.0], fp64, True), T([5.0], fp64, True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors appears to not have "
                                           "been used in the graph. Set allow_unused=True"):
        grad(y, [x, z], retain_graph=True)
    gx, gz = grad(y, [x, z], allow_unused=True, retain_graph=True)
    assert gz is None
    close(gx, [2.0, 2.0])
    gx, gz = grad(y, [x, z], materialize_grads=True)
    close(gz, [0.0])
    with pytest.raises(ValueError, match="Expected allow_unused to be True or not passed when "
                                         "materialize_grads=True"):
        grad((x * 2).sum(), [x], allow_unused=False, materialize_grads=True)


def test_grad_input_not_requiring_grad(fp64):
    x, c = T([1.0], fp64, True), T([2.0], fp64)
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors does not require "
                                           "grad"):
        grad((x * c).sum(), [c])


def test_grad_runs_only_the_needed_subgraph(fp64):
    # the expensive branch does not lead to x: its backward must not run
    calls = []

    class Spy(clgrad.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 1

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            return g

    x, w = T([1.0, 2.0], fp64, True), T([3.0, 4.0], fp64, True)
    y = (x * 2).sum() + Spy.apply(w).sum()
    gx, = grad(y, x)
    close(gx, [2.0, 2.0])
    assert calls == []
    assert w.grad is None


# ---- hooks and retain_grad ---------------------------------------------------------------
def test_register_hook_leaf_and_nonleaf(fp64):
    x = T([1.0, 2.0, 3.0], fp64, True)
    y = x * 2
    seen = []
    hy = y.register_hook(lambda g: g * 10)                 # modifies the gradient
    hx = x.register_hook(lambda g: seen.append(g.numpy().copy()))   # only observes
    (y * y).sum().backward(retain_graph=True)
    np.testing.assert_allclose(seen[0], 2 * 2 * np.array([2.0, 4.0, 6.0]) * 10)
    close(x.grad, seen[0])
    hy.remove()
    hx.remove()
    x.grad = None
    (y * y).sum().backward()
    close(x.grad, 2 * 2 * np.array([2.0, 4.0, 6.0]))
    assert len(seen) == 1


def test_hook_on_tensor_without_grad_raises(device):
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't "
                                           "require gradient"):
        clgrad.ones(2, device=device).register_hook(lambda g: g)


def test_hook_changes_leaf_grad_and_grad_result(fp64):
    x = T([1.0, 2.0], fp64, True)
    x.register_hook(lambda g: g + 100)
    gx, = grad((x * x).sum(), x)
    close(gx, [102.0, 104.0])


def test_retain_grad(fp64):
    x = T([1.0, 2.0], fp64, True)
    h = x * 3
    h.retain_grad()
    assert h.retains_grad and not x.retains_grad
    y = (h * h).sum()
    y.backward(retain_graph=True)
    close(h.grad, [6.0, 12.0])
    y.backward()
    close(h.grad, [12.0, 24.0])               # retained gradients accumulate like leaves'
    x.retain_grad()                           # a no-op on leaves
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has "
                                           "requires_grad=False"):
        clgrad.ones(1, device=fp64).retain_grad()


def test_nonleaf_grad_access_warns(fp64):
    x = T([1.0], fp64, True)
    h = x * 2
    h.sum().backward()
    with pytest.warns(UserWarning, match="is not a leaf Tensor is being accessed"):
        assert h.grad is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert x.grad is not None


def test_grad_setter_checks(fp64):
    x = T([1.0, 2.0], fp64, True)
    with pytest.raises(RuntimeError, match="assigned grad has data of a different size"):
        x.grad = T([1.0], fp64)
    with pytest.raises(RuntimeError, match="assigned grad has data of a different type"):
        x.grad = clgrad.ones(2, device=fp64)
    x.grad = T([5.0, 5.0], fp64)
    (x * 1).sum().backward()
    close(x.grad, [6.0, 6.0])
    del x.grad
    assert x.grad is None


def test_grad_fn_node_hooks(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x * 3
    pre, post = [], []
    h1 = y.grad_fn.register_prehook(lambda gouts: pre.append(gouts[0].numpy().copy()))
    h2 = y.grad_fn.register_hook(lambda gins, gouts: (gins[0] * 2, None))
    y.sum().backward()
    np.testing.assert_array_equal(pre[0], [1.0, 1.0])
    close(x.grad, [6.0, 6.0])
    h1.remove()
    h2.remove()


# ---- graph introspection ------------------------------------------------------------------
def test_is_leaf_requires_grad_and_grad_fn(device):
    x = clgrad.ones(2, 3, device=device, requires_grad=True)
    c = clgrad.ones(2, 3, device=device)
    assert x.is_leaf and c.is_leaf and x.grad_fn is None
    y = x + c
    assert not y.is_leaf and y.requires_grad
    assert repr(y.grad_fn).startswith("<AddBackward0 object at 0x")
    assert y.grad_fn.name() == "AddBackward0"
    (acc, i0), (none, i1) = y.grad_fn.next_functions
    assert type(acc).__name__ == "AccumulateGrad" and acc.variable is x and none is None
    assert y.grad_fn.next_functions[0][0] is acc          # one accumulator per leaf
    names = {"mul": (x * 2).grad_fn.name(), "sum": x.sum().grad_fn.name(),
             "mean": x.mean().grad_fn.name(), "exp": x.exp().grad_fn.name(),
             "mm": (x @ c.t()).grad_fn.name(), "view": x.view(6).grad_fn.name(),
             "permute": x.permute(1, 0).grad_fn.name(), "neg": (-x).grad_fn.name(),
             "div": (x / 2).grad_fn.name(), "sub": (x - c).grad_fn.name(),
             "clone": x.clone().grad_fn.name(), "relu": x.relu().grad_fn.name(),
             "t": x.t().grad_fn.name(), "transpose": x.transpose(0, 1).grad_fn.name(),
             "mT": x.mT.grad_fn.name()}
    assert names == {"mul": "MulBackward0", "sum": "SumBackward0", "mean": "MeanBackward0",
                     "exp": "ExpBackward0", "mm": "MmBackward0", "view": "ViewBackward0",
                     "permute": "PermuteBackward0", "neg": "NegBackward0",
                     "div": "DivBackward0", "sub": "SubBackward0", "clone": "CloneBackward0",
                     "relu": "ReluBackward0", "t": "TBackward0",
                     "transpose": "TransposeBackward0", "mT": "TransposeBackward0"}
    z = (x * 2).exp()
    nxt, idx = z.grad_fn.next_functions[0]
    assert nxt.name() == "MulBackward0" and idx == 0
    with clgrad.no_grad():
        assert (x * 2).grad_fn is None and not (x * 2).requires_grad
    assert (c * 2).grad_fn is None and (c * 2).is_leaf


def test_requires_grad_rules(device):
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can "
                                           "require gradients"):
        clgrad.tensor([1, 2], device=device).requires_grad_()
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        clgrad.tensor([1, 2], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        clgrad.tensor([1, 2], device=device).requires_grad = True
    x = clgrad.ones(2, device=device, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf "
                                           "variables"):
        y.requires_grad_(False)
    assert y.requires_grad_(True) is y
    x.requires_grad_(False)
    assert not x.requires_grad
    # comparisons and integer results never require grad
    x.requires_grad_()
    assert not (x > 0).requires_grad and not x.argmax().requires_grad


def test_detach(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    with clgrad.no_grad():
        d.add_(1)                                 # shares storage with y
    close(y, [3.0, 5.0])
    z = (y * d).sum()
    z.backward()
    close(x.grad, [6.0, 10.0])                    # d is a constant
    y2 = x * 3
    y2.detach_()
    assert not y2.requires_grad and y2.grad_fn is None and y2.is_leaf
    v = (x * 1)[0]
    with pytest.raises(RuntimeError, match="Can't detach views in-place. Use detach\\(\\) instead"):
        v.detach_()


def test_data_is_outside_autograd(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x.exp()
    x.data.mul_(2)          # .data writes are invisible to version checks, as in PyTorch
    y.sum().backward()
    close(x.grad, np.exp([1.0, 2.0]), atol=1e-12)
    assert not x.data.requires_grad


# ---- higher order --------------------------------------------------------------------------
def test_second_derivative_of_cube(fp64):
    a = RNG.uniform(-2, 2, 5)
    x = T(a, fp64, True)
    y = x * x * x
    g, = grad(y.sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    close(g, 3 * a * a)
    g2, = grad(g.sum(), x, create_graph=True)
    close(g2, 6 * a)
    g3, = grad(g2.sum(), x)
    close(g3, np.full(5, 6.0))


def test_backward_create_graph_then_backward_through_grad(fp64):
    a = RNG.uniform(-1, 1, 3)
    x = T(a, fp64, True)
    (x.sin() * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    g = x.grad
    x.grad = None
    g.sum().backward()
    close(x.grad, -np.sin(a) * a + 2 * np.cos(a), atol=1e-12)


def test_gradient_penalty_on_mlp(fp64):
    # WGAN-GP style: d/dparams of (||d out / d input|| - 1)^2 through a small tanh/relu MLP
    rng = np.random.default_rng(3)
    xa, w1a, b1a, w2a = (rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (3, 5)),
                         rng.uniform(-1, 1, 5), rng.uniform(-1, 1, (5, 1)))

    def penalty(x, w1, b1, w2):
        h = (x @ w1 + b1).tanh()
        out = (h @ w2).sum()
        gx, = grad(out, x, create_graph=True)
        norms = ((gx * gx).sum(1) + 1e-12).sqrt()
        return ((norms - 1) * (norms - 1)).mean()

    x = T(xa, fp64, True)
    w1, b1, w2 = T(w1a, fp64, True), T(b1a, fp64, True), T(w2a, fp64, True)
    p = penalty(x, w1, b1, w2)
    p.backward()
    # reference: the same penalty by central differences in numpy, on w1
    def np_pen(w1n):
        pre = xa @ w1n + b1a
        gx = ((1 - np.tanh(pre) ** 2) * w2a[:, 0]) @ w1n.T
        n = np.sqrt((gx * gx).sum(1) + 1e-12)
        return ((n - 1) ** 2).mean()
    num = np.zeros_like(w1a)
    for i in np.ndindex(*w1a.shape):
        d = np.zeros_like(w1a)
        d[i] = 1e-6
        num[i] = (np_pen(w1a + d) - np_pen(w1a - d)) / 2e-6
    close(w1.grad, num, atol=1e-7, rtol=1e-6)
    assert gradcheck(penalty, (x.detach().requires_grad_(), w1.detach().requires_grad_(),
                               b1.detach().requires_grad_(), w2.detach().requires_grad_()),
                     fast_mode=True)


@pytest.mark.parametrize("fn", [
    lambda x, y: x * y,
    lambda x, y: x / y,
    lambda x, y: (x * y).exp().sum(),
    lambda x, y: (x.sin() * y.cos()).tanh(),
    lambda x, y: (x @ y.t()).sigmoid(),
    lambda x, y: (x * y).sqrt().log(),
    lambda x, y: x.maximum(y) * x.minimum(y),
    lambda x, y: (x.abs() + y).mean(0),
    lambda x, y: (x.relu() * y).amax(1),
], ids=["mul", "div", "exp_sum", "tanh_sin_cos", "matmul_sigmoid", "sqrt_log", "max_min",
        "abs_mean", "relu_amax"])
def test_gradgradcheck_ops(fp64, fn):
    rng = np.random.default_rng(7)
    x = T(rng.uniform(0.5, 1.5, (2, 3)), fp64, True)
    y = T(rng.uniform(0.5, 1.5, (2, 3)) + 0.1, fp64, True)
    assert gradcheck(fn, (x, y))
    assert gradgradcheck(fn, (x, y))


# ---- gradcheck detects wrong gradients ----------------------------------------------------
class _WrongExp(clgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors
        return g * y * 1.01                      # 1% off


class _WrongSecond(clgrad.autograd.Function):
    """Right first derivative of x^3, written non-differentiably wrong for the second."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * 3 * x.detach() * x.detach()    # detaching hides d/dx of the gradient


def test_gradcheck_passes_and_fails(fp64):
    x = T(RNG.uniform(-1, 1, (2, 3)), fp64, True)
    assert gradcheck(lambda t: t.exp(), (x,))
    with pytest.raises(clgrad.autograd.GradcheckError, match="Jacobian mismatch for output 0 "
                                                             "with respect to input 0"):
        gradcheck(_WrongExp.apply, (x,))
    assert gradcheck(_WrongExp.apply, (x,), raise_exception=False) is False
    assert gradcheck(_WrongExp.apply, (x,), raise_exception=False, fast_mode=True) is False
    assert issubclass(clgrad.autograd.GradcheckError, RuntimeError)
    assert gradcheck(_WrongSecond.apply, (x,))
    assert gradgradcheck(_WrongSecond.apply, (x,), raise_exception=False) is False
    with pytest.raises(ValueError, match="gradcheck expects at least one input tensor to require "
                                         "gradient"):
        gradcheck(lambda t: t.exp(), (x.detach(),))


def test_gradcheck_several_outputs_and_non_tensor_args(fp64):
    a, b = T(RNG.uniform(-1, 1, 3), fp64, True), T(RNG.uniform(-1, 1, (2, 3)), fp64, True)
    assert gradcheck(lambda x, y, k: (x * y * k, (x + y).sum(0)), (a, b, 3.0))
    assert gradcheck(lambda x, y, k: (x * y * k, (x + y).sum(0)), (a, b, 3.0), fast_mode=True)


# ---- deep graphs ---------------------------------------------------------------------------
def test_deep_chain_no_recursion_error(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x
    n = 6000
    clgrad.runtime.reset_stats()
    for _ in range(n // 2):
        y = y * 1.0001
        y = y + 0.0
    fwd = clgrad.runtime.stats()["launches"]
    clgrad.runtime.reset_stats()
    y.sum().backward()
    bwd = clgrad.runtime.stats()["launches"]
    close(x.grad, np.full(2, 1.0001 ** (n // 2)), rtol=1e-9)
    # the walk costs about what the forward does (a few launches per node), not more
    assert bwd <= 3 * fwd + 10, (fwd, bwd)


def test_deep_chain_second_order(fp64):
    x = T([0.5], fp64, True)
    y = x
    for _ in range(1500):
        y = y * 1.0
    y = y * y
    g, = grad(y.sum(), x, create_graph=True)
    g2, = grad(g.sum(), x)
    close(g2, [2.0])


def test_hook_may_not_change_shape(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x * 2

    def widen(g):
        return g.sum()

    y.register_hook(widen)
    with pytest.raises(RuntimeError, match="hook 'widen' has changed the size of value"):
        y.sum().backward()


def test_post_accumulate_grad_hook(fp64):
    x = T([1.0, 2.0], fp64, True)
    seen = []
    h = x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(seen[1], [6.0, 6.0])
    h.remove()
    (x * 3).sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered on "
                                           "non-leaf tensors"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)


def test_implicit_seed_is_never_shared_writable(device):
    """backward() on a one-element output reads its implicit gradient 1 from a cached device
    constant: a leaf's .grad is a copy of it, and a hook that writes into it in place changes
    only its own backward (the next one gets a fresh 1)."""
    x = clgrad.tensor(2.0, device=device, requires_grad=True)
    x.backward()                            # the root is the leaf itself
    x.grad.add_(10)                         # must not reach the cached 1
    y = x * 3
    y.backward()
    assert x.grad.item() == 11.0 + 3.0
    x.grad = None
    y = x * 3
    y.register_hook(lambda g: g.mul_(5))    # writes into the seed in place
    y.backward()
    assert x.grad.item() == 15.0
    x.grad = None
    (x * 3).backward()
    assert x.grad.item() == 3.0
    v = clgrad.tensor([4.0], device=device, requires_grad=True)
    (v * 2).backward()                      # a one-element 1-D output
    np.testing.assert_array_equal(v.grad.numpy(), [2.0])


def test_implicit_seed_under_jit_is_filled_by_each_replay(device):
    """A captured step whose hook writes into the loss's implicit gradient in place: each replay
    starts from 1 again (the fill is part of the capture), as each eager step does."""
    w = clgrad.tensor([1.0, 2.0], device=device, requires_grad=True)

    def step():
        w.grad = None
        loss = (w * w).sum()
        loss.register_hook(lambda g: g.mul_(3))
        loss.backward()
        return w.grad

    want = step().numpy()
    fn = clgrad.jit(step)
    for _ in range(4):
        np.testing.assert_array_equal(fn().numpy(), want)
