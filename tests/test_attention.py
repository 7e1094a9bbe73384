"""F.scaled_dot_product_attention and nn.MultiheadAttention against float64 numpy references of
PyTorch's equations: masks of each kind, causal, GQA, broadcasting, gradients."""
import math

import numpy as np
import pytest

import clgrad
from clgrad import nn, runtime
from clgrad.autograd import gradcheck
from clgrad.nn import functional as F
from clgrad.ops import attention
from helpers import check_op

NINF = -np.inf


def _softmax(s):
    m = s.max(-1, keepdims=True)
    dead = m == NINF                       # every key masked out: PyTorch returns zeros
    e = np.exp(s - np.where(dead, 0, m))
    return np.where(dead, 0, e / np.where(dead, 1, e.sum(-1, keepdims=True)))


def _ref(q, k, v, bias=None, causal=False, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        L, S = s.shape[-2:]
        s = s + np.where(np.tril(np.ones((L, S), bool)), 0, NINF)
    if bias is not None:
        s = s + bias
    return _softmax(s) @ v


def _bool_bias(m):
    return np.where(m, 0.0, NINF)


def test_sdpa_plain_and_scale(device):
    check_op([(2, 2, 3), (2, 4, 3), (2, 4, 2)], F.scaled_dot_product_attention, _ref,
             device=device)
    check_op([(2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 6)],
             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3),
             lambda q, k, v: _ref(q, k, v, scale=0.3), device=device, layouts=("permuted",))


@pytest.mark.parametrize("L,S", [(4, 4), (3, 5), (5, 3)])
def test_sdpa_causal(device, L, S):
    check_op([(2, L, 4), (2, S, 4), (2, S, 2)],
             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
             lambda q, k, v: _ref(q, k, v, causal=True), device=device,
             layouts=("contiguous", "sliced"))


def test_sdpa_bool_mask_broadcast(device):
    rng = np.random.default_rng(0)
    m = rng.random((2, 1, 3, 5)) < 0.6
    m[..., 0] = True
    m[0, 0, 1] = False                    # a row with every key masked out -> zeros
    check_op([(2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)],
             lambda q, k, v: F.scaled_dot_product_attention(
                 q, k, v, attn_mask=clgrad.tensor(m, device=q.device)),
             lambda q, k, v: _ref(q, k, v, _bool_bias(m)), device=device,
             layouts=("contiguous", "permuted"))
    m2 = rng.random((3, 5)) < 0.5        # (L, S) broadcast over batch and heads
    m2[:, 1] = True
    check_op([(2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)],
             lambda q, k, v: F.scaled_dot_product_attention(
                 q, k, v, attn_mask=clgrad.tensor(m2, device=q.device)),
             lambda q, k, v: _ref(q, k, v, _bool_bias(m2)), device=device,
             layouts=("contiguous",))


def test_sdpa_float_mask_and_its_gradient(device):
    check_op([(2, 3, 2, 3), (2, 3, 4, 3), (2, 3, 4, 2), (3, 1, 4)],
             lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b),
             lambda q, k, v, b: _ref(q, k, v, b), device=device, layouts=("contiguous",))
    # more than two batch dims: the mask is read through a materialised copy
    check_op([(2, 2, 2, 3, 4), (2, 2, 2, 5, 4), (2, 2, 2, 5, 2), (2, 1, 1, 3, 5)],
             lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b),
             lambda q, k, v, b: _ref(q, k, v, b), device=device, layouts=("contiguous",))


def test_sdpa_broadcast_batch_and_gqa(device):
    # key/value shared across the leading batch dim
    check_op([(2, 3, 3, 4), (3, 5, 4), (3, 5, 2)], F.scaled_dot_product_attention, _ref,
             device=device, layouts=("contiguous",))
    # grouped-query attention: 4 query heads over 2 key/value heads

    def ref(q, k, v):
        return _ref(q, np.repeat(k, 2, axis=-3), np.repeat(v, 2, axis=-3))
    check_op([(1, 4, 3, 4), (1, 2, 5, 4), (1, 2, 5, 2)],
             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), ref,
             device=device, layouts=("contiguous",))


def test_sdpa_2d_and_empty(device):
    check_op([(3, 4), (5, 4), (5, 2)], F.scaled_dot_product_attention, _ref, device=device,
             layouts=("contiguous",))
    out = F.scaled_dot_product_attention(clgrad.zeros(2, 0, 4, device=device),
                                         clgrad.zeros(2, 3, 4, device=device),
                                         clgrad.zeros(2, 3, 5, device=device))
    assert tuple(out.shape) == (2, 0, 5)


def test_sdpa_launches(device, monkeypatch):
    """Two GEMMs around the probabilities kernel where the CPU GEMM kernels run, else the
    streaming kernel alone; nothing crosses to the host."""
    q = clgrad.randn(2, 4, 16, 8, device=device)
    k = clgrad.randn(2, 4, 16, 8, device=device)
    v = clgrad.randn(2, 4, 16, 8, device=device)
    ref = _ref(*(t.numpy().astype(np.float64) for t in (q, k, v)), causal=True)
    uses_gemm = attention.gemm.family_for(q.device, q.dtype) == "cpu"
    for limit, want in ((attention.MAX_GEMM_SCORES, 3 if uses_gemm else 1), (0, 1)):
        monkeypatch.setattr(attention, "MAX_GEMM_SCORES", limit)
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
        runtime.reset_stats()
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        s = runtime.stats()
        assert s["launches"] == want and s["d2h"] == 0 and s["h2d"] == 0
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("path", ["gemm", "streaming"])
def test_sdpa_both_paths_with_gradients(device, monkeypatch, path):
    """The GEMM formulation (saved probabilities, fused softmax backward) and the streaming
    kernel (recomputed probabilities) on strided views, a mask with a dead row, causal rows."""
    if path == "streaming":
        monkeypatch.setattr(attention, "MAX_GEMM_SCORES", 0)
    rng = np.random.default_rng(1)
    m = rng.random((3, 5)) < 0.6
    m[:, 0] = True
    m[1] = False                              # every key masked out: zeros, no gradient
    check_op([(2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 6)],
             lambda q, k, v: F.scaled_dot_product_attention(
                 q, k, v, attn_mask=clgrad.tensor(m, device=q.device), scale=0.7),
             lambda q, k, v: _ref(q, k, v, _bool_bias(m), scale=0.7), device=device,
             layouts=("contiguous", "permuted", "sliced"))
    check_op([(3, 6, 4), (3, 6, 4), (3, 6, 3)],
             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
             lambda q, k, v: _ref(q, k, v, causal=True), device=device,
             layouts=("contiguous", "permuted"))


def test_sdpa_dropout(device):
    q, k, v = (clgrad.randn(2, 6, 4, device=device, requires_grad=True) for _ in range(3))
    clgrad.manual_seed(5)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    clgrad.manual_seed(5)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    c = F.scaled_dot_product_attention(q, k, v)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())
    a.sum().backward()
    assert q.grad is not None and np.isfinite(q.grad.numpy()).all()
    # p = 1 drops every probability
    z = F.scaled_dot_product_attention(q, k, v, dropout_p=1.0)
    np.testing.assert_array_equal(z.detach().numpy(), 0)


def test_sdpa_double_backward(fp64):
    q, k, v = (clgrad.tensor(np.random.default_rng(i).standard_normal((2, 3, 2)),
                             dtype=clgrad.float64, device=fp64, requires_grad=True)
               for i in range(3))
    from clgrad.autograd import gradgradcheck
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                                        is_causal=True),
                         (q, k, v))


def test_sdpa_errors(device):
    q = clgrad.zeros(2, 3, 4, device=device)
    with pytest.raises(RuntimeError, match="attn_mask should not be set"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=clgrad.ones(3, 3, device=device),
                                       is_causal=True)
    with pytest.raises(RuntimeError, match="same embedding dimension"):
        F.scaled_dot_product_attention(q, clgrad.zeros(2, 3, 5, device=device), q)
    with pytest.raises(ValueError, match="dropout probability"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)


# ---- MultiheadAttention ------------------------------------------------------------------------
def _np_mha(m, q, k, v, kpm=None, attn_mask=None, avg=True):
    """PyTorch's multi-head attention in float64 for sequence-first (L, N, E) inputs."""
    p = {n: t.detach().numpy().astype(np.float64) for n, t in m.state_dict().items()}
    E, H = m.embed_dim, m.num_heads
    hd = E // H
    if "in_proj_weight" in p:
        wq, wk, wv = np.split(p["in_proj_weight"], 3)
    else:
        wq, wk, wv = p["q_proj_weight"], p["k_proj_weight"], p["v_proj_weight"]
    bq, bk, bv = np.split(p["in_proj_bias"], 3) if "in_proj_bias" in p else (0, 0, 0)
    Q, K, V = q @ wq.T + bq, k @ wk.T + bk, v @ wv.T + bv
    L, N, _ = Q.shape
    bias = np.zeros((N, H, L, K.shape[0]))
    if "bias_k" in p:
        K = np.concatenate([K, np.broadcast_to(p["bias_k"], (1, N, E))])
        V = np.concatenate([V, np.broadcast_to(p["bias_v"], (1, N, E))])
        bias = np.concatenate([bias, np.zeros((N, H, L, 1))], -1)
    if attn_mask is not None:
        am = np.where(attn_mask, NINF, 0.0) if attn_mask.dtype == bool else attn_mask
        if am.ndim == 3:                                   # (N*H, L, S)
            am = am.reshape(N, H, L, -1)
        bias[..., :am.shape[-1]] += am
    if kpm is not None:
        bias[..., :kpm.shape[-1]] += np.where(kpm, NINF, 0.0)[:, None, None, :]
    heads = lambda X: X.reshape(X.shape[0], N, H, hd).transpose(1, 2, 0, 3)  # noqa: E731
    s = heads(Q) @ heads(K).transpose(0, 1, 3, 2) / math.sqrt(hd) + bias      # (N, H, L, S)
    w = _softmax(s)
    o = (w @ heads(V)).transpose(2, 0, 1, 3).reshape(L, N, E)
    o = o @ p["out_proj.weight"].T + p.get("out_proj.bias", 0)
    return o, (w.mean(1) if avg else w)


def _mha_inputs(device, L=3, S=4, N=2, E=8, kdim=8, vdim=8, dtype=clgrad.float32, seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.standard_normal(s) for s in [(L, N, E), (S, N, kdim), (S, N, vdim)]]
    return arrs, [clgrad.tensor(a, dtype=dtype, device=device) for a in arrs]


@pytest.mark.parametrize("kw", [dict(), dict(bias=False), dict(add_bias_kv=True),
                                dict(kdim=5, vdim=6)],
                         ids=["default", "nobias", "bias_kv", "kvdim"])
def test_mha_matches_reference(device, kw):
    clgrad.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, device=device, **kw)
    (q, k, v), (tq, tk, tv) = _mha_inputs(device, kdim=kw.get("kdim", 8),
                                          vdim=kw.get("vdim", 8))
    kpm = np.array([[False, False, True, True], [False] * 4])
    am = np.triu(np.ones((3, 4), bool), 1)
    ref_o, ref_w = _np_mha(m, q, k, v, kpm, am)
    for need in (True, False):
        o, w = m(tq, tk, tv, key_padding_mask=clgrad.tensor(kpm, device=device),
                 attn_mask=clgrad.tensor(am, device=device), need_weights=need)
        np.testing.assert_allclose(o.detach().numpy(), ref_o, atol=1e-5, rtol=1e-4)
        if need:
            np.testing.assert_allclose(w.detach().numpy(), ref_w, atol=1e-6, rtol=1e-4)
        else:
            assert w is None
    # per-head weights and a float mask
    fm = np.random.default_rng(3).standard_normal((3, 4))
    o, w = m(tq, tk, tv, attn_mask=clgrad.tensor(fm, dtype=clgrad.float32, device=device),
             average_attn_weights=False)
    ref_o, ref_w = _np_mha(m, q, k, v, None, fm, avg=False)
    np.testing.assert_allclose(o.detach().numpy(), ref_o, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(w.detach().numpy(), ref_w, atol=1e-6, rtol=1e-4)


def test_mha_batch_first_unbatched_and_causal(device):
    clgrad.manual_seed(0)
    m = nn.MultiheadAttention(8, 4, batch_first=True, device=device)
    (q, _, _), _ = _mha_inputs(device, L=5)
    qb = np.ascontiguousarray(q.transpose(1, 0, 2))                   # (N, L, E)
    t = clgrad.tensor(qb, dtype=clgrad.float32, device=device)
    causal = nn.Transformer.generate_square_subsequent_mask(5, device=device)
    o, _ = m(t, t, t, attn_mask=causal, is_causal=True, need_weights=False)
    ref_o, _ = _np_mha(m, q, q, q, None, np.triu(np.full((5, 5), NINF), 1))
    np.testing.assert_allclose(o.detach().numpy(), ref_o.transpose(1, 0, 2), atol=1e-5,
                               rtol=1e-4)
    ou, wu = m(t[0], t[0], t[0])                                       # unbatched (L, E)
    ref_o, ref_w = _np_mha(m, q[:, :1], q[:, :1], q[:, :1])
    np.testing.assert_allclose(ou.detach().numpy(), ref_o[:, 0], atol=1e-5, rtol=1e-4)
    assert tuple(wu.shape) == (5, 5)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        m(t, t, t, is_causal=True)


def test_mha_per_head_3d_mask(device):
    clgrad.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, device=device)
    (q, k, v), (tq, tk, tv) = _mha_inputs(device)
    am = np.random.default_rng(6).random((4, 3, 4)) < 0.3          # (N*H, L, S), True = drop
    am[..., 0] = False
    ref_o, ref_w = _np_mha(m, q, k, v, None, am, avg=False)
    for need in (True, False):
        o, w = m(tq, tk, tv, attn_mask=clgrad.tensor(am, device=device), need_weights=need,
                 average_attn_weights=False)
        np.testing.assert_allclose(o.detach().numpy(), ref_o, atol=1e-5, rtol=1e-4)
        if need:
            np.testing.assert_allclose(w.detach().numpy(), ref_w, atol=1e-6, rtol=1e-4)
    with pytest.raises(RuntimeError, match="3D attn_mask"):
        m(tq, tk, tv, attn_mask=clgrad.zeros(3, 3, 4, device=device))


def test_mha_gradcheck(fp64):
    clgrad.manual_seed(0)
    m = nn.MultiheadAttention(4, 2, add_bias_kv=True, device=fp64, dtype=clgrad.float64)
    _, (q, k, v) = _mha_inputs(fp64, L=2, S=3, N=1, E=4, kdim=4, vdim=4, dtype=clgrad.float64)
    for t in (q, k, v):
        t.requires_grad_(True)
    kpm = clgrad.tensor([[False, False, True]], device=fp64)
    for need in (True, False):
        assert gradcheck(lambda q, k, v, *_: m(q, k, v, key_padding_mask=kpm,
                                               need_weights=need)[0],
                         (q, k, v, m.in_proj_weight, m.bias_k, m.out_proj.weight))


def test_mha_state_dict_keys(device):
    # printed from torch 2.x by hand
    assert list(nn.MultiheadAttention(8, 2, device=device).state_dict()) == [
        "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert list(nn.MultiheadAttention(8, 2, add_bias_kv=True, kdim=5, vdim=6,
                                      device=device).state_dict()) == [
        "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v",
        "out_proj.weight", "out_proj.bias"]
    with pytest.raises(AssertionError, match="divisible"):
        nn.MultiheadAttention(8, 3)


def _mha_self_case(device, batch_first, mask, dtype=clgrad.float32):
    clgrad.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, batch_first=batch_first, device=device, dtype=dtype)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((3, 5, 8))                   # (N, L, E) or (L, N, E)
    L = 5 if batch_first else 3
    kw = {}
    if mask == "causal":
        kw = dict(attn_mask=nn.Transformer.generate_square_subsequent_mask(L, device=device,
                                                                             dtype=dtype),
                  is_causal=True)
    elif mask == "float2d":
        kw = dict(attn_mask=clgrad.tensor(rng.standard_normal((L, L)), dtype=dtype,
                                          device=device))
    return m, xs, kw


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mask", ["none", "causal", "float2d"])
def test_mha_self_attention_packed(device, batch_first, mask):
    """Self-attention (query, key and value one tensor) takes the packed projection: the same
    output and gradients as the general path, which gets three tensors of the same values."""
    m, xs, kw = _mha_self_case(device, batch_first, mask)
    gy = np.random.default_rng(1).standard_normal(xs.shape).astype(np.float32)
    grads = []
    for same in (True, False):
        xq, xk, xv = (clgrad.tensor(xs, dtype=clgrad.float32, device=device,
                                    requires_grad=True) for _ in range(3))
        if same:
            xk = xv = xq
        m.zero_grad()
        out = m(xq, xk, xv, need_weights=False, **kw)[0]
        (out * clgrad.tensor(gy, device=device)).sum().backward()
        gx = xq.grad.numpy() + (0 if same else xk.grad.numpy() + xv.grad.numpy())
        grads.append([out.detach().numpy(), gx] + [p.grad.numpy() for p in m.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)


def test_mha_self_attention_packed_launches(device):
    """One projection GEMM for q, k and v and no copy of a head: forward launches."""
    m, xs, kw = _mha_self_case(device, True, "causal")
    x = clgrad.tensor(xs, dtype=clgrad.float32, device=device)
    with clgrad.no_grad():
        m(x, x, x, need_weights=False, **kw)
        runtime.reset_stats()
        m(x, x, x, need_weights=False, **kw)[0].numpy()
    if attention.gemm.family_for(x.device, x.dtype) == "cpu":
        # in projection, scores, probabilities, probabilities @ v, out projection
        assert runtime.stats()["launches"] == 5


@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_self_attention_packed_gradgrad(fp64, batch_first):
    from clgrad.autograd import gradgradcheck
    m, xs, kw = _mha_self_case(fp64, batch_first, "causal", clgrad.float64)
    x = clgrad.tensor(xs[:2, :3], dtype=clgrad.float64, device=fp64, requires_grad=True)
    kw["attn_mask"] = kw["attn_mask"][:x.shape[1 if batch_first else 0], :x.shape[1 if
                                                                         batch_first else 0]]
    f = lambda x, w: m(x, x, x, need_weights=False, **kw)[0]     # noqa: E731
    assert gradcheck(f, (x, m.in_proj_weight))
    assert gradgradcheck(f, (x, m.in_proj_weight))
