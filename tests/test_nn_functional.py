"""clgrad.nn.functional against float64 numpy references: forward values and gradcheck."""
import math

import numpy as np
import pytest

import clgrad
import clgrad.nn.functional as F
from clgrad.autograd import gradcheck
from helpers import check_op, make

erf = np.vectorize(math.erf)


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

# (name, clgrad fn, numpy fn); inputs in [-4, 4] so both branches of each kink are hit
ACTIVATIONS = [
    ("relu6", lambda x: F.relu6(x), lambda x: np.clip(x, 0, 6)),
    ("hardtanh", lambda x: F.hardtanh(x, -0.5, 1.5), lambda x: np.clip(x, -0.5, 1.5)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    ("elu", lambda x: F.elu(x, 1.3), lambda x: np.where(x > 0, x, 1.3 * np.expm1(x))),
    ("selu", F.selu, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x))),
    ("celu", lambda x: F.celu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x / 0.7))),
    ("gelu", F.gelu, lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2)))),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    ("silu", F.silu, lambda x: x * _sig(x)),
    ("mish", F.mish, lambda x: x * np.tanh(_softplus(x))),
    ("hardsigmoid", F.hardsigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    ("hardswish", F.hardswish, lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    ("softsign", F.softsign, lambda x: x / (1 + np.abs(x))),
    ("softplus", lambda x: F.softplus(x, 2.0, 5.0),
     lambda x: np.where(2 * x > 5, x, _softplus(2 * x) / 2)),
    ("logsigmoid", F.logsigmoid, lambda x: -_softplus(-x)),
    ("tanhshrink", F.tanhshrink, lambda x: x - np.tanh(x)),
    ("threshold", lambda x: F.threshold(x, 0.5, -2.0), lambda x: np.where(x > 0.5, x, -2.0)),
    ("hardshrink", F.hardshrink, lambda x: np.where(np.abs(x) > 0.5, x, 0)),
    ("softshrink", F.softshrink, lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0)),
    ("relu", F.relu, lambda x: np.maximum(x, 0)),
    ("sigmoid", F.sigmoid, _sig),
]


@pytest.mark.parametrize("name,fn,ref", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation(device, name, fn, ref):
    check_op([(3, 5)], fn, ref, device=device, low=-4, high=4)
    check_op([()], fn, ref, device=device, low=-4, high=4, layouts=("contiguous",))


def test_activation_empty_and_inplace(device):
    e = clgrad.zeros(0, 3, device=device)
    assert F.gelu(e).shape == (0, 3)
    x = clgrad.tensor([-1.0, 2.0, -3.0], device=device)
    y = F.leaky_relu(x, 0.5, inplace=True)
    assert y is x
    np.testing.assert_allclose(x.numpy(), [-0.5, 2.0, -1.5])


def _log_softmax(x, axis):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def test_softmax_family(device):
    check_op([(3, 4)], lambda x: F.softmax(x, 1), lambda x: np.exp(_log_softmax(x, 1)),
             device=device)
    check_op([(2, 3, 4)], lambda x: F.log_softmax(x, 0), lambda x: _log_softmax(x, 0),
             device=device)
    check_op([(3, 4)], lambda x: F.softmin(x, -1), lambda x: np.exp(_log_softmax(-x, -1)),
             device=device)
    big = clgrad.tensor([[1000.0, 0.0, -1000.0]], device=device)
    assert np.isfinite(F.log_softmax(big, 1).numpy()).all()


def test_prelu_glu(device):
    check_op([(2, 3, 4), (3,)], lambda x, w: F.prelu(x, w),
             lambda x, w: np.where(x > 0, x, w.reshape(1, 3, 1) * x), device=device)
    check_op([(2, 6)], lambda x: F.glu(x), lambda x: x[:, :3] * _sig(x[:, 3:]), device=device)


def test_linear_bilinear(device):
    check_op([(4, 3), (5, 3), (5,)], F.linear, lambda x, w, b: x @ w.T + b, device=device)
    check_op([(2, 4, 3), (5, 3)], F.linear, lambda x, w: x @ w.T, device=device)
    check_op([(4, 3), (4, 2), (5, 3, 2), (5,)], F.bilinear,
             lambda a, b, w, c: np.einsum("ni,oij,nj->no", a, w, b) + c, device=device)


def _ln_ref(x, w, b, k, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axes, keepdims=True)
    var = x.var(axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def test_layer_norm(device):
    check_op([(4, 5), (5,), (5,)], lambda x, w, b: F.layer_norm(x, (5,), w, b),
             lambda x, w, b: _ln_ref(x, w, b, 1), device=device)
    check_op([(2, 3, 4), (3, 4), (3, 4)], lambda x, w, b: F.layer_norm(x, (3, 4), w, b, 1e-3),
             lambda x, w, b: _ln_ref(x, w, b, 2, 1e-3), device=device)
    check_op([(3, 6)], lambda x: F.layer_norm(x, (6,)), lambda x: _ln_ref(x, 1, 0, 1),
             device=device)
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.layer_norm(clgrad.zeros(2, 3, device=device), (4,))


def _bn_ref(x, w, b, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    cs = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axes, keepdims=True)
    var = x.var(axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w.reshape(cs) + b.reshape(cs)


def test_batch_norm_training(device):
    check_op([(4, 3), (3,), (3,)],
             lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
             _bn_ref, device=device)
    check_op([(2, 3, 2, 2), (3,), (3,)],
             lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
             _bn_ref, device=device)


def test_batch_norm_running_stats(device):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3, 4))
    rm = clgrad.zeros(3, device=device)
    rv = clgrad.ones(3, device=device)
    F.batch_norm(clgrad.tensor(x, dtype=clgrad.float32, device=device), rm, rv, training=True,
                 momentum=0.3)
    np.testing.assert_allclose(rm.numpy(), 0.3 * x.mean((0, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.numpy(), 0.7 + 0.3 * x.var((0, 2), ddof=1), rtol=1e-5)
    ev = F.batch_norm(clgrad.tensor(x, dtype=clgrad.float32, device=device), rm, rv)
    ref = (x - rm.numpy()[None, :, None]) / np.sqrt(rv.numpy()[None, :, None] + 1e-5)
    np.testing.assert_allclose(ev.numpy(), ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(clgrad.zeros(1, 3, device=device), None, None, training=True)


def test_group_instance_rms_norm(device):
    def gn_ref(x, w, b, g=2, eps=1e-5):
        N, C = x.shape[:2]
        xr = x.reshape(N, g, -1)
        y = (xr - xr.mean(-1, keepdims=True)) / np.sqrt(xr.var(-1, keepdims=True) + eps)
        return y.reshape(x.shape) * w.reshape(1, C, 1) + b.reshape(1, C, 1)
    check_op([(2, 4, 3), (4,), (4,)], lambda x, w, b: F.group_norm(x, 2, w, b), gn_ref,
             device=device)

    def in_ref(x):
        y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
        return y
    check_op([(2, 3, 5)], lambda x: F.instance_norm(x), in_ref, device=device)
    check_op([(3, 4), (4,)], lambda x, w: F.rms_norm(x, (4,), w, 1e-6),
             lambda x, w: x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * w,
             device=device)


def test_embedding(device):
    idx = np.array([[1, 0, 3], [3, 3, 2]])
    w = np.random.default_rng(0).standard_normal((5, 4))
    check_op([(5, 4)], lambda w: F.embedding(make(idx, "int64", w.device), w),
             lambda w: w[idx], device=device, inputs=[w])
    # the padding row gets no gradient; repeated rows sum their gradients
    wt = clgrad.tensor(w, dtype=clgrad.float64, device=device, requires_grad=True)
    F.embedding(clgrad.tensor(idx, device=device), wt, padding_idx=3).sum().backward()
    counts = np.zeros(5)
    np.add.at(counts, idx.ravel(), 1)
    counts[3] = 0
    np.testing.assert_array_equal(wt.grad.numpy(), np.repeat(counts[:, None], 4, 1))
    with pytest.raises(RuntimeError, match="indices"):
        F.embedding(clgrad.zeros(2, device=device), wt)


def test_embedding_backward_deterministic(device):
    rng = np.random.default_rng(3)
    idx = clgrad.tensor(rng.integers(0, 7, 200), device=device)
    w = clgrad.randn(7, 16, device=device, requires_grad=True)
    g = clgrad.randn(200, 16, device=device)
    grads = []
    for _ in range(2):
        w.grad = None
        F.embedding(idx, w).backward(g)
        grads.append(w.grad.numpy())
    np.testing.assert_array_equal(grads[0], grads[1])


def test_dropout(device):
    clgrad.manual_seed(0)
    x = clgrad.ones(200, 50, device=device)
    y = F.dropout(x, 0.3).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert F.dropout(x, 0.3, training=False) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    y2 = F.dropout2d(clgrad.ones(4, 30, 3, 3, device=device), 0.5).numpy()
    per_channel = y2.reshape(4, 30, 9)
    assert ((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all()
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout(x, 1.5)
    # the gradient is the same mask and scale
    xg = clgrad.ones(10, 10, device=device, requires_grad=True)
    clgrad.manual_seed(5)
    out = F.dropout(xg, 0.5)
    out.sum().backward()
    np.testing.assert_array_equal(xg.grad.numpy(), out.detach().numpy())


def test_normalize_cosine_pairwise(device):
    check_op([(3, 4)], lambda x: F.normalize(x, dim=1),
             lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12),
             device=device)
    check_op([(3, 4), (3, 4)], lambda a, b: F.cosine_similarity(a, b),
             lambda a, b: (a * b).sum(1) / (np.linalg.norm(a, axis=1) *
                                            np.linalg.norm(b, axis=1)), device=device)
    check_op([(3, 4), (3, 4)], lambda a, b: F.pairwise_distance(a, b),
             lambda a, b: np.linalg.norm(a - b + 1e-6, axis=-1), device=device)


def test_embedding_max_norm(device):
    w = clgrad.tensor([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]], device=device)
    out = F.embedding(clgrad.tensor([0, 1, 0], device=device), w, max_norm=1.0)
    np.testing.assert_allclose(w.numpy(), [[0.6, 0.8], [0.3, 0.4], [6.0, 8.0]], rtol=1e-5)
    np.testing.assert_allclose(out.numpy()[0], [0.6, 0.8], rtol=1e-5)


def test_alpha_dropout_keeps_moments(device):
    clgrad.manual_seed(2)
    x = clgrad.randn(400, 250, device=device)
    y = F.alpha_dropout(F.selu(x), 0.2, training=True).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.03


def test_half_inputs_through_fused_kernels(device):
    x = clgrad.randn(4, 6, device=device)
    ref = F.layer_norm(x, (6,)).numpy()
    got = F.layer_norm(x.half(), (6,))
    assert got.dtype is clgrad.float16
    np.testing.assert_allclose(got.float().numpy(), ref, atol=5e-3)   # half storage rounding
    t = clgrad.tensor([0, 5, 2, 1], device=device)
    np.testing.assert_allclose(F.cross_entropy(x.half(), t).float().item(),
                               F.cross_entropy(x, t).item(), rtol=2e-3)


def test_instance_norm_running_stats(device):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 5))
    rm, rv = clgrad.zeros(2, device=device), clgrad.ones(2, device=device)
    F.instance_norm(clgrad.tensor(x, dtype=clgrad.float32, device=device), rm, rv,
                    momentum=0.5)
    np.testing.assert_allclose(rm.numpy(), 0.5 * x.mean(2).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.numpy(), 0.5 + 0.5 * x.var(2, ddof=1).mean(0), rtol=1e-5)


def test_dropout_gradcheck_and_feature_masks(fp64):
    device = fp64

    def f(x):
        clgrad.manual_seed(3)          # the same mask on every call gradcheck makes
        return F.dropout(x, 0.4)
    x = clgrad.randn(4, 5, dtype=clgrad.float64, device=device, requires_grad=True)
    assert gradcheck(f, [x])
    y = F.dropout2d(clgrad.ones(3, 4, 2, device=device), 0.5).numpy()     # unbatched (C, H, W)
    assert ((y == 0).all((1, 2)) | (y == 2).all((1, 2))).all()
    z = F.dropout1d(clgrad.ones(2, 8, 5, device=device), 0.5).numpy()
    assert ((z == 0).all(-1) | (z == 2).all(-1)).all()
