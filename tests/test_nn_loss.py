"""Losses (functional and modules) against float64 numpy references, with gradcheck."""
import numpy as np
import pytest

import clgrad
import clgrad.nn as nn
import clgrad.nn.functional as F
from helpers import check_op, make


def _red(loss, reduction):
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


REDUCTIONS = ("none", "mean", "sum")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_pointwise_losses(device, reduction):
    def sl1(d, beta):
        a = np.abs(d)
        return np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)

    def hub(d, delta):
        a = np.abs(d)
        return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    r = reduction
    check_op([(3, 4), (3, 4)], lambda a, b: F.mse_loss(a, b, reduction=r),
             lambda a, b: _red((a - b) ** 2, r), device=device)
    check_op([(3, 4), (3, 4)], lambda a, b: F.l1_loss(a, b, reduction=r),
             lambda a, b: _red(np.abs(a - b), r), device=device)
    check_op([(3, 4), (3, 4)], lambda a, b: F.smooth_l1_loss(a, b, reduction=r, beta=0.7),
             lambda a, b: _red(sl1(a - b, 0.7), r), device=device)
    check_op([(3, 4), (3, 4)], lambda a, b: F.huber_loss(a, b, reduction=r, delta=1.3),
             lambda a, b: _red(hub(a - b, 1.3), r), device=device)


def test_bce(device):
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, (4, 3))
    t = rng.uniform(0, 1, (4, 3))
    w = rng.uniform(0.5, 2, (3,))
    ref = lambda p, t, w: (-(t * np.log(p) + (1 - t) * np.log(1 - p)) * w).mean()  # noqa: E731
    check_op(None, lambda p, t, w: F.binary_cross_entropy(p, t, w), ref, device=device,
             inputs=[p, t, w])
    # log is clamped at -100, so a confident wrong answer stays finite
    out = F.binary_cross_entropy(clgrad.tensor([0.0, 1.0], device=device),
                                 clgrad.tensor([1.0, 0.0], device=device), reduction="none")
    np.testing.assert_allclose(out.numpy(), [100.0, 100.0])
    m = nn.BCELoss(reduction="sum")
    assert m(make(p, "float32", device), make(t, "float32", device)).shape == ()


def test_bce_with_logits(device):
    rng = np.random.default_rng(1)
    x = rng.uniform(-5, 5, (4, 3))
    t = rng.uniform(0, 1, (4, 3))
    pw = rng.uniform(0.5, 3, (3,))

    def ref(x, t, pw):
        ls = -np.log1p(np.exp(-x))
        return ((1 - t) * x - (1 + (pw - 1) * t) * ls).mean()
    check_op(None, lambda x, t, pw: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw),
             ref, device=device, inputs=[x, t, pw])
    big = clgrad.tensor([200.0, -200.0], device=device)
    out = F.binary_cross_entropy_with_logits(big, clgrad.tensor([0.0, 1.0], device=device),
                                             reduction="none")
    np.testing.assert_allclose(out.numpy(), [200.0, 200.0], rtol=1e-6)


def test_kl_div(device):
    rng = np.random.default_rng(2)
    logq = np.log(rng.dirichlet(np.ones(4), 3))
    p = rng.dirichlet(np.ones(4), 3)
    check_op(None, lambda x, t: F.kl_div(x, t, reduction="batchmean"),
             lambda x, t: (t * np.log(t) - t * x).sum() / 3, device=device, inputs=[logq, p])
    # a zero target contributes 0 (0 log 0 = 0), not NaN; (t = 0 is a kink: no gradcheck there)
    p[0, 0] = 0.0
    out = F.kl_div(clgrad.tensor(logq, device=device), clgrad.tensor(p, device=device),
                   reduction="none").numpy()
    ref = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0) - p * logq
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    check_op(None, lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True),
             lambda x, t: (np.exp(t) * (t - x)).sum(), device=device,
             inputs=[logq, np.log(rng.dirichlet(np.ones(4), 3))])


def _ce_ref(x, t, w=None, ignore=-100, smooth=0.0, reduction="mean"):
    """x (N, C, S), t (N, S)."""
    m = x.max(1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(1, keepdims=True))
    N, C, S = x.shape
    w = np.ones(C) if w is None else w
    losses, wrows = np.zeros((N, S)), np.zeros((N, S))
    for n in range(N):
        for s in range(S):
            y = t[n, s]
            if y == ignore:
                continue
            nll = -logp[n, y, s] * w[y]
            sm = -(w * logp[n, :, s]).sum() / C
            losses[n, s] = (1 - smooth) * nll + smooth * sm
            wrows[n, s] = w[y]
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / wrows.sum()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_indices(device, reduction):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    t = np.array([0, 3, 1, 1, 2])
    w = rng.uniform(0.5, 2, 4)
    check_op(None, lambda x: F.cross_entropy(x, make(t, "int64", x.device),
                                             reduction=reduction),
             lambda x: _ce_ref(x[:, :, None], t[:, None], reduction=reduction).reshape(
                 (5,) if reduction == "none" else ()), device=device, inputs=[x])
    # class weights get no gradient (as in PyTorch), so they are fixed here
    check_op(None, lambda x: F.cross_entropy(x, make(t, "int64", x.device),
                                             weight=make(w, x.dtype, x.device),
                                             ignore_index=1, label_smoothing=0.2,
                                             reduction=reduction),
             lambda x: _ce_ref(x[:, :, None], t[:, None], w, 1, 0.2, reduction).reshape(
                 (5,) if reduction == "none" else ()), device=device, inputs=[x])


def test_cross_entropy_spatial_and_1d(device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 2, 2))
    t = rng.integers(0, 3, (2, 2, 2))
    check_op(None, lambda x: F.cross_entropy(x, make(t, "int64", x.device)),
             lambda x: _ce_ref(x.reshape(2, 3, 4), t.reshape(2, 4)), device=device,
             inputs=[x])
    x1 = rng.standard_normal(4)
    check_op(None, lambda x: F.cross_entropy(x, clgrad.tensor(2, device=x.device)),
             lambda x: _ce_ref(x.reshape(1, 4, 1), np.array([[2]])), device=device,
             inputs=[x1])
    # stable with huge logits
    big = clgrad.tensor([[1000.0, -1000.0, 0.0]], device=device)
    out = F.cross_entropy(big, clgrad.tensor([0], device=device))
    assert np.isfinite(out.numpy()).all() and abs(out.item()) < 1e-6


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_reduced_in_one_launch(device, monkeypatch, reduction):
    """A 'mean' or 'sum' of at most CE_REDUCED_MAX elements is one kernel forward (the per-row
    losses summed by one work-group) and one backward, and equals the general path (per-row
    kernel, then sums) and the float64 reference, with weights, ignored rows, smoothing and
    extra dims; all rows ignored gives 'mean' NaN, as PyTorch."""
    from clgrad import runtime
    from clgrad.tensor import nn_ops
    rng = np.random.default_rng(11)
    for shape, tshape in (((37, 6), (37,)), ((3, 5, 7), (3, 7)), ((300, 10), (300,))):
        x = rng.standard_normal(shape)
        t = rng.integers(0, shape[1], tshape)
        t.reshape(-1)[::4] = 2                      # some rows ignored below
        w = rng.uniform(0.5, 2, shape[1])
        N, C = shape[0], shape[1]
        S = int(np.prod(shape[2:], dtype=np.int64))
        want = _ce_ref(x.reshape(N, C, S), t.reshape(N, S), w, 2, 0.15, reduction)
        results = []
        for limit in (nn_ops.CE_REDUCED_MAX, 0):      # the fused kernel, then the general path
            monkeypatch.setattr(nn_ops, "CE_REDUCED_MAX", limit)
            xc = clgrad.tensor(x.astype(np.float32), device=device, requires_grad=True)
            args = (clgrad.tensor(t, device=device),)
            kw = dict(weight=clgrad.tensor(w.astype(np.float32), device=device),
                      ignore_index=2, label_smoothing=0.15, reduction=reduction)
            F.cross_entropy(xc, *args, **kw)._buf                   # builds its kernels
            runtime.reset_stats()
            loss = F.cross_entropy(xc, *args, **kw)
            loss._buf
            launches = runtime.stats()["launches"]
            loss.backward()
            results.append((loss.item(), xc.grad.numpy()))
            if limit:
                assert launches == 1
                assert loss.grad_fn.name() == "NllLossBackward0"
            else:
                assert launches > 1
        np.testing.assert_allclose(results[0][0], want, rtol=1e-5)
        np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
        np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-7)
    ignored = F.cross_entropy(clgrad.zeros(3, 4, device=device),
                              clgrad.tensor([1, 1, 1], device=device), ignore_index=1,
                              reduction=reduction)
    assert np.isnan(ignored.item()) if reduction == "mean" else ignored.item() == 0.0


def test_cross_entropy_reduced_gradcheck(fp64):
    rng = np.random.default_rng(12)
    x = clgrad.tensor(rng.standard_normal((6, 4, 2)), device=fp64, requires_grad=True)
    t = clgrad.tensor(rng.integers(0, 4, (6, 2)), device=fp64)
    w = clgrad.tensor(rng.uniform(0.5, 2, 4), device=fp64)
    for kw in ({}, {"weight": w, "ignore_index": 1, "label_smoothing": 0.3},
               {"reduction": "sum", "weight": w}):
        assert clgrad.autograd.gradcheck(lambda x: F.cross_entropy(x, t, **kw), (x,))


def test_cross_entropy_probabilities(device):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4))
    p = rng.dirichlet(np.ones(4), 3)

    def ref(x, p):
        m = x.max(1, keepdims=True)
        logp = x - m - np.log(np.exp(x - m).sum(1, keepdims=True))
        q = p * 0.9 + 0.1 / 4
        return -(logp * q).sum(1).mean()
    check_op(None, lambda x, p: F.cross_entropy(x, p, label_smoothing=0.1), ref,
             device=device, inputs=[x, p])


def test_cross_entropy_errors(device):
    x = clgrad.zeros(3, 4, device=device)
    with pytest.raises(ValueError, match="batch_size"):
        F.cross_entropy(x, clgrad.tensor([0, 1], device=device))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(x, clgrad.tensor([0, 1, 2], device=device), reduction="avg")


def test_nll_loss(device):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3, 2))
    t = np.array([[0, 2], [1, -100], [2, 2], [0, 1]])
    w = rng.uniform(0.5, 2, 3)

    def ref(x, w, reduction):
        out = np.zeros((4, 2))
        wr = np.zeros((4, 2))
        for n in range(4):
            for s in range(2):
                if t[n, s] != -100:
                    out[n, s] = -x[n, t[n, s], s] * w[t[n, s]]
                    wr[n, s] = w[t[n, s]]
        return {"none": out, "sum": out.sum(), "mean": out.sum() / wr.sum()}[reduction]
    for r in REDUCTIONS:
        check_op(None, lambda x, w: F.nll_loss(x, make(t, "int64", x.device), w, reduction=r),
                 lambda x, w: ref(x, w, r), device=device, inputs=[x, w])


def test_ce_equals_log_softmax_nll(device):
    x = clgrad.randn(6, 5, device=device)
    t = clgrad.tensor([0, 4, 2, 2, 1, 3], device=device)
    a = F.cross_entropy(x, t).item()
    b = F.nll_loss(F.log_softmax(x, 1), t).item()
    assert abs(a - b) < 1e-5


def test_margin_and_cosine_losses(device):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((2, 4, 3))
    y = np.array([1.0, -1.0, 1.0, -1.0])

    def cos_ref(a, b):
        c = (a * b).sum(1) / np.sqrt(((a * a).sum(1) + 1e-12) * ((b * b).sum(1) + 1e-12))
        return np.where(y == 1, 1 - c, np.maximum(c - 0.1, 0)).mean()
    check_op(None, lambda a, b: F.cosine_embedding_loss(a, b, make(y, "float64", a.device),
                                                        margin=0.1),
             cos_ref, device=device, inputs=[a, b])
    check_op(None, lambda a, b: F.margin_ranking_loss(a[:, 0], b[:, 0],
                                                      make(y, "float64", a.device), 0.2),
             lambda a, b: np.maximum(-y * (a[:, 0] - b[:, 0]) + 0.2, 0).mean(),
             device=device, inputs=[a, b])


def test_loss_modules(device):
    x = clgrad.randn(4, 3, device=device)
    t = clgrad.tensor([0, 1, 2, 0], device=device)
    ce = nn.CrossEntropyLoss(weight=clgrad.ones(3, device=device), label_smoothing=0.1)
    assert list(ce.state_dict()) == ["weight"]
    assert ce(x, t).shape == ()
    assert nn.CrossEntropyLoss(reduction="none")(x, t).shape == (4,)
    assert nn.MSELoss(reduce=False)(x, x).shape == (4, 3)
    assert nn.NLLLoss(size_average=False).reduction == "sum"
    assert list(nn.BCEWithLogitsLoss(pos_weight=clgrad.ones(3)).state_dict()) == ["pos_weight"]
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"


def test_torch_parity_cross_entropy(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 4, 3)).astype(np.float32)
    t = rng.integers(0, 4, (5, 3))
    t[0, 0] = -100
    w = rng.uniform(0.5, 2, 4).astype(np.float32)
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t),
                                            torch.tensor(w), label_smoothing=0.15).item()
    got = F.cross_entropy(clgrad.tensor(x, device=device), clgrad.tensor(t, device=device),
                          clgrad.tensor(w, device=device), label_smoothing=0.15).item()
    assert abs(ref - got) < 1e-5
