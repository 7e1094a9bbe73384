"""User-defined ops with clgrad.autograd.Function: ctx API, several outputs, non-tensor
arguments, non-differentiable outputs, materialized grads, in-place (mark_dirty), checks."""
import numpy as np
import pytest

import clgrad
from clgrad.autograd import Function, grad, gradcheck, gradgradcheck, once_differentiable

RNG = np.random.default_rng(1)


def T(a, device, requires_grad=False):
    return clgrad.tensor(np.asarray(a, dtype=np.float64), dtype="float64", device=device,
                         requires_grad=requires_grad)


def close(t, ref, atol=1e-12):
    np.testing.assert_allclose(t.detach().numpy(), np.asarray(ref), atol=atol, rtol=1e-10)


class ScaledMul(Function):
    """(x * y * k, with a Python scalar k) saving inputs and reading needs_input_grad."""

    @staticmethod
    def forward(ctx, x, y, k):
        ctx.save_for_backward(x, y)
        ctx.k = k
        return x * y * k

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = g * y * ctx.k if ctx.needs_input_grad[0] else None
        gy = g * x * ctx.k if ctx.needs_input_grad[1] else None
        return gx, gy, None


def test_function_basic_and_needs_input_grad(fp64):
    a, b = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    x, y = T(a, fp64, True), T(b, fp64)
    out = ScaledMul.apply(x, y, 2.5)
    assert out.requires_grad and out.grad_fn.name() == "ScaledMulBackward"
    assert out.grad_fn.ctx.needs_input_grad == (True, False, False)
    out.sum().backward()
    close(x.grad, b * 2.5)
    assert y.grad is None
    assert gradcheck(ScaledMul.apply, (T(a, fp64, True), T(b, fp64, True), 2.5))
    assert gradgradcheck(ScaledMul.apply, (T(a, fp64, True), T(b, fp64, True), 2.5))


def test_function_under_no_grad_and_without_grad_inputs(fp64):
    x = T([1.0], fp64, True)
    with clgrad.no_grad():
        assert not ScaledMul.apply(x, x, 1.0).requires_grad
    c = T([1.0], fp64)
    out = ScaledMul.apply(c, c, 1.0)
    assert not out.requires_grad and out.grad_fn is None


class SinCos(Function):
    """Two outputs; backward receives one gradient per output."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, gs, gc):
        x, = ctx.saved_tensors
        return gs * x.cos() - gc * x.sin()


def test_function_tuple_outputs_and_materialized_grads(fp64):
    a = RNG.uniform(-1, 1, 4)
    x = T(a, fp64, True)
    s, c = SinCos.apply(x)
    assert s.grad_fn is c.grad_fn
    s.sum().backward()                 # c unused: its gradient arrives as zeros
    close(x.grad, np.cos(a))
    assert gradcheck(SinCos.apply, (T(a, fp64, True),))
    assert gradgradcheck(SinCos.apply, (T(a, fp64, True),))


def test_set_materialize_grads_false(fp64):
    seen = []

    class Two(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            seen.append((g1 is None, g2 is None))
            return (g1 * 2 if g1 is not None else 0) + (g2 * 3 if g2 is not None else 0)

    x = T([1.0, 2.0], fp64, True)
    a, b = Two.apply(x)
    b.sum().backward()
    assert seen == [(True, False)]
    close(x.grad, [3.0, 3.0])


def test_mark_non_differentiable(fp64):
    class SortLike(Function):
        @staticmethod
        def forward(ctx, x):
            idx = x.argmax(0)
            mask = x > 0
            out = x * 1
            ctx.mark_non_differentiable(mask)
            ctx.save_for_backward(mask)
            return out, mask, idx

        @staticmethod
        def backward(ctx, g, g_mask, g_idx):
            mask, = ctx.saved_tensors
            return g * mask

    x = T([-1.0, 2.0, 3.0], fp64, True)
    out, mask, idx = SortLike.apply(x)
    assert out.requires_grad and not mask.requires_grad and not idx.requires_grad
    out.sum().backward()
    close(x.grad, [0.0, 1.0, 1.0])


def test_function_returning_input_and_non_tensor(fp64):
    class PassThrough(Function):
        @staticmethod
        def forward(ctx, x, tag):
            return x, tag

        @staticmethod
        def backward(ctx, g, _):
            return g * 5, None

    x = T([1.0, 2.0], fp64, True)
    y, tag = PassThrough.apply(x, "hello")
    assert tag == "hello" and y is not x and y.grad_fn.name() == "PassThroughBackward"
    y.sum().backward()
    close(x.grad, [5.0, 5.0])


def test_function_setup_context_style(fp64):
    class Cube(Function):
        @staticmethod
        def forward(x):
            return x * x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * 3 * x * x

    a = RNG.uniform(-1, 1, 3)
    x = T(a, fp64, True)
    g, = grad(Cube.apply(x).sum(), x, create_graph=True)
    close(g, 3 * a * a)
    g2, = grad(g.sum(), x)
    close(g2, 6 * a)


def test_function_composes_with_ops_and_saved_intermediate(fp64):
    class LogSumExp(Function):
        @staticmethod
        def forward(ctx, x):
            m = x.amax()
            e = (x - m).exp()
            s = e.sum()
            ctx.save_for_backward(e, s)          # intermediates, neither input nor output
            return s.log() + m

        @staticmethod
        def backward(ctx, g):
            e, s = ctx.saved_tensors
            return g * e / s

    a = RNG.uniform(-2, 2, 5)
    x = T(a, fp64, True)
    y = (LogSumExp.apply(x * 2) * 3).exp()
    y.backward()
    lse = np.log(np.exp(2 * a).sum())
    close(x.grad, np.exp(3 * lse) * 3 * 2 * np.exp(2 * a) / np.exp(2 * a).sum(), atol=1e-9)
    assert gradcheck(LogSumExp.apply, (T(a, fp64, True),))


def test_function_wrong_number_of_gradients(fp64):
    class TooFew(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, g):
            return g

    class TooMany(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g, g

    class ExtraNone(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g, None

    class GradForScalar(Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g, g

    x = T([1.0], fp64, True)
    with pytest.raises(RuntimeError, match=r"function TooFewBackward returned an incorrect "
                                           r"number of gradients \(expected 2, got 1\)"):
        TooFew.apply(x, x).sum().backward()
    with pytest.raises(RuntimeError, match=r"function TooManyBackward returned an incorrect "
                                           r"number of gradients \(expected 1, got 2\)"):
        TooMany.apply(x).sum().backward()
    ExtraNone.apply(x).sum().backward()
    close(x.grad, [1.0])
    with pytest.raises(RuntimeError, match="returned a gradient different than None at "
                                           "position 2, but the corresponding forward input was "
                                           "not a Variable"):
        GradForScalar.apply(x, 2.0).sum().backward()


def test_function_invalid_gradient_shape(fp64):
    class BadShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return clgrad.ones(5, dtype="float64", device=g.device)

    class Broadcasting(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g.expand(2, 3)        # shape (2, 3) for a (3,) input: summed back, as torch

    x = T([1.0, 2.0, 3.0], fp64, True)
    with pytest.raises(RuntimeError, match=r"Function BadShapeBackward returned an invalid "
                                           r"gradient at index 0 - got \[5\] but expected shape "
                                           r"compatible with \[3\]"):
        BadShape.apply(x).sum().backward()
    Broadcasting.apply(x).backward()
    close(x.grad, [2.0, 2.0, 2.0])


def test_saved_tensor_modified_in_place(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x * 1
    out = ScaledMul.apply(y, y, 1.0)
    y.add_(1)
    with pytest.raises(RuntimeError, match="one of the variables needed for gradient computation "
                                           "has been modified by an inplace operation"):
        out.sum().backward()


def test_mark_dirty_in_place_function(fp64):
    class AddOneInPlace(Function):
        @staticmethod
        def forward(ctx, x):
            x.add_(1)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2                  # pretend slope 2 to see the gradient path

    x = T([1.0, 2.0], fp64, True)
    y = x * 3
    z = AddOneInPlace.apply(y)
    assert z is y and y.grad_fn.name() == "AddOneInPlaceBackward"
    close(y, [4.0, 7.0])
    y.sum().backward()
    close(x.grad, [6.0, 6.0])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        AddOneInPlace.apply(T([1.0], fp64, True))


def test_once_differentiable(fp64):
    class Sq(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * x * g

    x = T([3.0], fp64, True)
    g, = grad(Sq.apply(x), x, create_graph=True)
    close(g, [6.0])
    assert not g.requires_grad


def test_function_on_float32(device):
    x = clgrad.tensor([1.0, 2.0], device=device, requires_grad=True)
    out = ScaledMul.apply(x, x, 3.0)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])     # d(3 x^2)/dx, both slots


def test_legacy_instance_call_raises(fp64):
    with pytest.warns(DeprecationWarning):
        f = ScaledMul()
    with pytest.raises(RuntimeError, match="Legacy autograd function with non-static forward "
                                           "method is deprecated"):
        f(T([1.0], fp64))
