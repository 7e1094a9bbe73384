"""In-place ops under autograd: which ones PyTorch allows, version counters guarding saved
tensors, in-place on views (the base's graph is rewritten), __setitem__, copy_, fill_."""
import numpy as np
import pytest

import clgrad
from clgrad.autograd import gradcheck

RNG = np.random.default_rng(2)
MODIFIED = ("one of the variables needed for gradient computation has been modified by an "
            "inplace operation")


def T(a, device, requires_grad=False):
    return clgrad.tensor(np.asarray(a, dtype=np.float64), dtype="float64", device=device,
                         requires_grad=requires_grad)


def close(t, ref, atol=1e-12):
    np.testing.assert_allclose(t.detach().numpy(), np.asarray(ref), atol=atol, rtol=1e-10)


def test_inplace_chain_on_non_leaf(fp64):
    a = RNG.uniform(-1, 1, 4)
    x = T(a, fp64, True)
    y = x * 2
    y.add_(1)
    y.mul_(3)
    y.sub_(0.5)
    y.div_(2)
    y.neg_()
    assert y.grad_fn.name() == "NegBackward0"
    close(y, -((a * 2 + 1) * 3 - 0.5) / 2)
    (y * y).sum().backward()
    close(x.grad, 2 * (-((a * 2 + 1) * 3 - 0.5) / 2) * (-3.0), atol=1e-12)


def test_inplace_with_tensor_args(fp64):
    a, b = RNG.uniform(-1, 1, (2, 3)), RNG.uniform(-1, 1, 3)
    x, w = T(a, fp64, True), T(b, fp64, True)
    y = x * 1
    y += w                                     # broadcast: w's gradient is summed back
    y.mul_(T(np.full(3, 2.0), fp64))           # a constant factor: its saved self is not needed
    y.sum().backward()
    close(x.grad, np.full((2, 3), 2.0))
    close(w.grad, np.full(3, 4.0))


def test_inplace_op_keeps_the_old_self_it_needs(fp64):
    # d/dw of y.mul_(w) needs y's old value: like PyTorch, the op saves a copy of it
    a, b = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    x, w = T(a, fp64, True), T(b, fp64, True)
    y = x * 1
    y.mul_(w)
    y.div_(w + 3)
    y[1:].mul_(w[1:])
    ref_y = a * b / (b + 3) * np.array([1, b[1], b[2]])
    close(y, ref_y)
    y.sum().backward()
    close(x.grad, ref_y / a)
    e = np.array([1, 1, 1.0])
    dw = a / (b + 3) - a * b / (b + 3) ** 2
    close(w.grad, dw * np.array([1, b[1], b[2]]) + a * b / (b + 3) * np.array([0, 1, 1]) * e,
          atol=1e-12)
    assert gradcheck(lambda x_, w_: (x_ * 1).mul_(w_).div_(w_ + 3), (T(a, fp64, True),
                                                                     T(b, fp64, True)))


def test_modified_saved_output_raises_with_torch_message(fp64):
    x = T([1.0, 2.0, 3.0], fp64, True)
    y = x.sigmoid()
    y.mul_(2)
    with pytest.raises(RuntimeError) as err:
        y.sum().backward()
    msg = str(err.value)
    assert msg.startswith(MODIFIED + ": [clgrad.DoubleTensor [3]], which is output 0 of "
                                     "SigmoidBackward0, is at version ")
    assert "; expected version " in msg and "set_detect_anomaly(True)" in msg


def test_modified_saved_input_raises(fp64):
    x = T([1.0, 2.0], fp64, True)
    h = x * 1
    y = h.exp() * h                       # mul saves h
    with clgrad.no_grad():
        h[0] = 5.0                        # through indexing, under no_grad: still a new version
    with pytest.raises(RuntimeError, match=MODIFIED + r": \[clgrad.DoubleTensor \[2\]\], which "
                                                      r"is output 0 of MulBackward0, is at"):
        y.sum().backward()
    # a leaf modified under no_grad after being saved: no "which is output" part
    w = T([1.0, 2.0], fp64, True)
    z = (w * w).sum()
    with clgrad.no_grad():
        w.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED + r": \[clgrad.DoubleTensor \[2\]\] is at "
                                                      r"version"):
        z.backward()


def test_views_and_detach_share_the_version_counter(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x.exp()
    v = y[0]
    before = y._version
    with clgrad.no_grad():
        v.mul_(2)
    assert y._version > before and v._version == y._version
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.sum().backward()
    y = x.exp()
    y.detach().zero_()
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.sum().backward()


def test_unmodified_saved_tensors_pass(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x.exp()
    z = y * 1                              # a different storage may change freely
    z.add_(1)
    (y + z).sum().backward()
    close(x.grad, 2 * np.exp([1.0, 2.0]))


def test_leaf_inplace_errors(device):
    x = clgrad.ones(2, 3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"a leaf Variable that requires grad is being used in "
                                           r"an in-place operation\."):
        x.add_(1)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used"):
        x.zero_()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used"):
        x[0] = 3.0
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being "
                                           "used in an in-place operation."):
        x[0].mul_(2)
    with clgrad.no_grad():                 # the usual SGD update
        x.sub_(clgrad.ones(2, 3, device=device) * 0.5)
        x[1] = 7.0
    np.testing.assert_array_equal(x.detach().numpy(), [[0.5] * 3, [7.0] * 3])
    assert x.is_leaf and x.requires_grad and x.grad_fn is None


def test_inplace_on_view_of_non_leaf(fp64):
    a = RNG.uniform(-1, 1, (2, 3))
    x = T(a, fp64, True)
    y = x * 2
    y[0].mul_(3)                           # the base y sees the change in its graph
    y[:, 1].add_(10)
    ref = a * 2
    ref[0] *= 3
    ref[:, 1] += 10
    close(y, ref)
    assert y.grad_fn.name() == "CopySlices"
    (y * y).sum().backward()
    scale = np.full((2, 3), 2.0)
    scale[0] *= 3
    close(x.grad, 2 * ref * scale)
    # the view itself is differentiable after the in-place op
    x.grad = None
    y = x * 2
    v = y[1]
    v.mul_(5)
    assert v.grad_fn.name() == "AsStridedBackward0"
    v.sum().backward()
    close(x.grad, [[0.0] * 3, [10.0] * 3])


def test_inplace_view_with_grad_value_into_plain_buffer(fp64):
    w = T([1.0, 2.0, 3.0], fp64, True)
    buf = clgrad.zeros(2, 3, dtype="float64", device=fp64)
    buf[1].add_(w)
    assert buf.requires_grad and not buf.is_leaf
    (buf * T([[1.0] * 3, [2.0] * 3], fp64)).sum().backward()
    close(w.grad, [2.0, 2.0, 2.0])


def test_setitem_into_non_leaf(fp64):
    a, b = RNG.uniform(-1, 1, (3, 2)), RNG.uniform(-1, 1, 2)
    x, w = T(a, fp64, True), T(b, fp64, True)
    y = x * 2
    y[1] = w * 5
    y[2, 0] = 0.0
    ref = a * 2
    ref[1] = b * 5
    ref[2, 0] = 0
    close(y, ref)
    (y * y).sum().backward()
    gx = 2 * ref * 2
    gx[1] = 0
    gx[2, 0] = 0
    close(x.grad, gx)
    close(w.grad, 2 * ref[1] * 5)


def test_setitem_grad_value_into_constant(fp64):
    w = T([1.0, 2.0], fp64, True)
    buf = clgrad.zeros(3, 2, dtype="float64", device=fp64)
    buf[0] = w
    buf[2] = w * w
    buf.sum().backward()
    close(w.grad, [1 + 2.0, 1 + 4.0])


def test_copy_gradient_goes_to_source(fp64):
    a = RNG.uniform(-1, 1, 3)
    src = T(a, fp64, True)
    dst = clgrad.zeros(3, dtype="float64", device=fp64)
    dst.copy_(src * 3)
    assert dst.grad_fn.name() == "CopyBackwards" and dst.requires_grad
    (dst * dst).sum().backward()
    close(src.grad, 2 * (3 * a) * 3)
    # into a non-leaf: the overwritten value gets a zero gradient, src all of it
    x, s = T([1.0, 2.0], fp64, True), T([5.0], fp64, True)
    y = x * 2
    y.copy_(s)                                           # broadcast (1,) -> (2,)
    y.sum().backward()
    close(x.grad, [0.0, 0.0])
    close(s.grad, [2.0])


def test_copy_across_dtypes_keeps_gradient_dtype(fp64):
    s = T([1.0, 2.0], fp64, True)
    dst = clgrad.zeros(2, device=fp64)                   # float32
    dst.copy_(s)
    assert dst.dtype is clgrad.float32
    (dst * 4).sum().backward()
    assert s.grad.dtype is clgrad.float64
    close(s.grad, [4.0, 4.0])


def test_fill_and_zero_on_non_leaf(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x * 2
    y.fill_(3.0)
    assert y.grad_fn.name() == "FillBackward0" and y.requires_grad
    close(y, [3.0, 3.0])
    (y * x).sum().backward()
    close(x.grad, [3.0, 3.0])                  # only through the direct use of x
    x.grad = None
    y = x * 2
    y.zero_()
    (y + x).sum().backward()
    close(x.grad, [1.0, 1.0])
    v = T(4.0, fp64, True)
    z = clgrad.zeros(3, dtype="float64", device=fp64)
    z.fill_(v)                                 # a 0-d tensor value is differentiable
    z.sum().backward()
    close(v.grad, 3.0)


def test_hooks_and_retain_grad_see_inplace_result(fp64):
    x = T([1.0, 2.0], fp64, True)
    y = x * 2
    y.add_(1)
    y.retain_grad()
    (y * y).sum().backward()
    close(y.grad, 2 * (np.array([1.0, 2.0]) * 2 + 1))
