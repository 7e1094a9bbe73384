"""nn.RNN / LSTM / GRU and their cells against a float64 numpy reference of PyTorch's equations,
gradients by gradcheck, PyTorch's state_dict keys, and a character-level LSTM that learns."""
import math

import numpy as np
import pytest

import clgrad
from clgrad import nn, runtime
from clgrad.autograd import gradcheck


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _np_cell(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of PyTorch's cell equations in float64: x (B, I), h (B, H_out), c (B, H)."""
    gi = x @ w_ih.T + (b_ih if b_ih is not None else 0)
    gh = h @ w_hh.T + (b_hh if b_hh is not None else 0)
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c = _sig(f) * c + _sig(i) * np.tanh(g)
        return _sig(o) * np.tanh(c), c
    if mode == "GRU":
        ir, iz, in_ = np.split(gi, 3, axis=-1)
        hr, hz, hn = np.split(gh, 3, axis=-1)
        r, z = _sig(ir + hr), _sig(iz + hz)
        n = np.tanh(in_ + r * hn)
        return (1 - z) * n + z * h, None
    a = gi + gh
    return (np.maximum(a, 0) if mode == "RNN_RELU" else np.tanh(a)), None


def _np_rnn(m, x, h0=None, c0=None):
    """Reference forward of a clgrad RNNBase module `m` with its parameters read back."""
    p = {k: v.detach().numpy().astype(np.float64) for k, v in m.state_dict().items()}
    if x.ndim == 2:
        bd = 0 if m.batch_first else 1
        x = np.expand_dims(x, bd)
        h0 = None if h0 is None else h0[:, None]
        c0 = None if c0 is None else c0[:, None]
        out, hn, cn = _np_rnn(m, x, h0, c0)
        return out.squeeze(bd), hn[:, 0], (cn[:, 0] if cn is not None else None)
    if m.batch_first:
        x = x.transpose(1, 0, 2)
    T, B, _ = x.shape
    D = 2 if m.bidirectional else 1
    H = m.hidden_size
    Hout = m.proj_size or H
    h0 = np.zeros((m.num_layers * D, B, Hout)) if h0 is None else h0
    c0 = np.zeros((m.num_layers * D, B, H)) if c0 is None else c0
    hn, cn = [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d else "")
            h, c = h0[layer * D + d], c0[layer * D + d]
            ys = [None] * T
            for t in (range(T - 1, -1, -1) if d else range(T)):
                h, c = _np_cell(m.mode, x[t], h, c, p["weight_ih" + s], p["weight_hh" + s],
                                p.get("bias_ih" + s), p.get("bias_hh" + s))
                if m.proj_size:
                    h = h @ p["weight_hr" + s].T
                ys[t] = h
            outs.append(np.stack(ys))
            hn.append(h)
            cn.append(c)
        x = np.concatenate(outs, -1)
    out = x.transpose(1, 0, 2) if m.batch_first else x
    return out, np.stack(hn), (np.stack(cn) if m.mode == "LSTM" else None)


def _t(a, device, dtype=clgrad.float32, rg=False):
    return clgrad.tensor(np.asarray(a), dtype=dtype, device=device, requires_grad=rg)


def _close(a, ref, atol=1e-5, rtol=1e-4):
    np.testing.assert_allclose(a.detach().numpy(), ref, atol=atol, rtol=rtol)


CONFIGS = [
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=2, batch_first=True)),
    ("LSTM", dict(bias=False, num_layers=2)),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict()),
    ("RNN", dict(nonlinearity="relu", bidirectional=True)),
    ("RNN", dict(num_layers=3)),
]


@pytest.mark.parametrize("kind,kw", CONFIGS, ids=[f"{k}-{'-'.join(v)}" for k, v in CONFIGS])
def test_forward_matches_reference(device, kind, kw):
    clgrad.manual_seed(0)
    m = getattr(nn, kind)(3, 4, device=device, **kw)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 3) if m.batch_first else (5, 2, 3))      # B = 2, T = 5
    D = 2 if m.bidirectional else 1
    Hout = m.proj_size or 4
    h0 = rng.standard_normal((m.num_layers * D, 2, Hout))
    c0 = rng.standard_normal((m.num_layers * D, 2, 4))
    # default (zero) states
    out, hx = m(_t(x, device))
    ref_out, ref_h, ref_c = _np_rnn(m, x)
    _close(out, ref_out)
    if kind == "LSTM":
        _close(hx[0], ref_h)
        _close(hx[1], ref_c)
    else:
        _close(hx, ref_h)
    # given initial states
    states = (_t(h0, device), _t(c0, device)) if kind == "LSTM" else _t(h0, device)
    out, hx = m(_t(x, device), states)
    ref_out, ref_h, ref_c = _np_rnn(m, x, h0, c0)
    _close(out, ref_out)
    _close(hx[0] if kind == "LSTM" else hx, ref_h)
    # unbatched (L, H_in) input
    xu = x[0] if m.batch_first else x[:, 0]
    st = (_t(h0[:, 0], device), _t(c0[:, 0], device)) if kind == "LSTM" else _t(h0[:, 0], device)
    out, hx = m(_t(xu, device), st)
    ref_out, ref_h, ref_c = _np_rnn(m, xu, h0[:, 0], c0[:, 0])
    assert out.shape == ref_out.shape
    _close(out, ref_out)
    _close(hx[1] if kind == "LSTM" else hx, ref_c if kind == "LSTM" else ref_h)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_gradcheck_module(fp64, kind):
    """Gradients w.r.t. input, initial states and weights of both directions and both layers
    of a 2-layer bidirectional stack (tiny sizes and a sample of the weights: gradcheck runs
    two forwards per element)."""
    clgrad.manual_seed(0)
    m = getattr(nn, kind)(2, 2, num_layers=2, bidirectional=True, device=fp64,
                          dtype=clgrad.float64)
    rng = np.random.default_rng(2)
    x = _t(rng.standard_normal((3, 1, 2)), fp64, clgrad.float64, True)
    h0 = _t(rng.standard_normal((4, 1, 2)), fp64, clgrad.float64, True)
    c0 = _t(rng.standard_normal((4, 1, 2)), fp64, clgrad.float64, True)
    params = [m.weight_hh_l0, m.bias_ih_l0_reverse, m.weight_ih_l1_reverse, m.bias_hh_l1]

    def fn(x, h0, c0, *_):
        if kind == "LSTM":
            out, (h, c) = m(x, (h0, c0))
            return out, h, c
        out, h = m(x, h0)
        return out, h
    assert gradcheck(fn, (x, h0, c0, *params), atol=1e-6)


@pytest.mark.parametrize("kind,T,given", [("LSTM", 3, False), ("LSTM", 1, True),
                                           ("RNN", 3, True), ("RNN", 1, False)])
def test_gradcheck_recurrent_weights(fp64, kind, T, given):
    """W_hh's gradient, which LSTM and RNN layers compute in one product over all steps from
    the layer's outputs and the initial state (zeros or given), in both directions."""
    clgrad.manual_seed(1)
    m = getattr(nn, kind)(2, 2, bidirectional=True, device=fp64, dtype=clgrad.float64)
    rng = np.random.default_rng(4)
    x = _t(rng.standard_normal((T, 2, 2)), fp64, clgrad.float64, True)
    h0 = _t(rng.standard_normal((2, 2, 2)), fp64, clgrad.float64)
    hx = None if not given else ((h0, h0 * 0.5) if kind == "LSTM" else h0)
    params = [m.weight_hh_l0, m.weight_hh_l0_reverse, m.bias_hh_l0, m.bias_ih_l0_reverse]
    assert gradcheck(lambda x, *_: m(x, hx)[0], (x, *params), atol=1e-6)


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_output_and_state_gradients_add_up(device, kind):
    """The layer output's gradient reaches each step through the next step's product (LSTM and
    RNN layers): backwards through the output, through h_n, through both, and through h_n
    after a retained backward through the output agree."""
    clgrad.manual_seed(0)
    m = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True).to(device)
    x = _t(np.random.default_rng(5).standard_normal((2, 4, 3)), device, clgrad.float32, True)

    def grads(loss_of, retain_first=False):
        for p in [x, *m.parameters()]:
            p.grad = None
        out, st = m(x)
        hn = st[0] if kind == "LSTM" else st
        if retain_first:
            (out * out).sum().backward(retain_graph=True)
            for p in [x, *m.parameters()]:
                p.grad = None
        loss_of(out, hn).backward()
        return [p.grad.numpy() for p in [x, *m.parameters()]]

    g_out = grads(lambda out, hn: (out * out).sum())
    g_hn = grads(lambda out, hn: (hn * hn).sum())
    g_both = grads(lambda out, hn: (out * out).sum() + (hn * hn).sum())
    g_after = grads(lambda out, hn: (hn * hn).sum(), retain_first=True)
    for a, b, both, after in zip(g_out, g_hn, g_both, g_after):
        np.testing.assert_allclose(both, a + b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(after, b, rtol=1e-6, atol=1e-6)


def test_gradcheck_lstm_proj(fp64):
    clgrad.manual_seed(0)
    m = nn.LSTM(2, 3, proj_size=2, batch_first=True, device=fp64, dtype=clgrad.float64)
    x = _t(np.random.default_rng(3).standard_normal((2, 3, 2)), fp64, clgrad.float64, True)
    assert gradcheck(lambda x, *_: m(x)[0], (x, *m.parameters()), atol=1e-6)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells(device, fp64, kind):
    clgrad.manual_seed(0)
    m = getattr(nn, kind)(3, 4, device=device)
    p = {k: v.detach().numpy().astype(np.float64) for k, v in m.state_dict().items()}
    rng = np.random.default_rng(4)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    mode = {"LSTMCell": "LSTM", "GRUCell": "GRU", "RNNCell": "RNN_TANH"}[kind]
    ref_h, ref_c = _np_cell(mode, x, h, c, p["weight_ih"], p["weight_hh"], p["bias_ih"],
                            p["bias_hh"])
    if kind == "LSTMCell":
        hh, cc = m(_t(x, device), (_t(h, device), _t(c, device)))
        _close(cc, ref_c)
        hu, cu = m(_t(x[0], device), (_t(h[0], device), _t(c[0], device)))     # unbatched
        _close(hu, ref_h[0])
        _close(cu, ref_c[0])
    else:
        hh = m(_t(x, device), _t(h, device))
        _close(m(_t(x[0], device), _t(h[0], device)), ref_h[0])
    _close(hh, ref_h)
    m0 = getattr(nn, kind)(3, 4, device=device)            # zero initial state
    out0 = m0(_t(x, device))
    p0 = {k: v.detach().numpy().astype(np.float64) for k, v in m0.state_dict().items()}
    r0, _ = _np_cell(mode, x, np.zeros((2, 4)), np.zeros((2, 4)), p0["weight_ih"],
                     p0["weight_hh"], p0["bias_ih"], p0["bias_hh"])
    _close(out0[0] if kind == "LSTMCell" else out0, r0)
    # gradients in float64
    m64 = getattr(nn, kind)(2, 3, device=fp64, dtype=clgrad.float64)
    xs = _t(rng.standard_normal((2, 2)), fp64, clgrad.float64, True)
    hs = _t(rng.standard_normal((2, 3)), fp64, clgrad.float64, True)
    cs = _t(rng.standard_normal((2, 3)), fp64, clgrad.float64, True)
    if kind == "LSTMCell":
        assert gradcheck(lambda x, h, c, *_: m64(x, (h, c)), (xs, hs, cs, *m64.parameters()))
    else:
        assert gradcheck(lambda x, h, *_: m64(x, h), (xs, hs, *m64.parameters()))


def test_relu_rnn_cell_grad(fp64):
    m = nn.RNNCell(2, 3, nonlinearity="relu", device=fp64, dtype=clgrad.float64)
    x = _t(np.random.default_rng(5).standard_normal((2, 2)), fp64, clgrad.float64, True)
    assert gradcheck(lambda x, *_: m(x), (x, *m.parameters()))


def test_state_dict_keys_match_pytorch(device):
    # lists printed from torch 2.x by hand
    assert list(nn.LSTM(3, 4, 2, bidirectional=True, device=device).state_dict()) == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
        "bias_hh_l0_reverse",
        "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
        "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse",
        "bias_hh_l1_reverse"]
    assert list(nn.LSTM(3, 4, proj_size=2, bias=False, device=device).state_dict()) == [
        "weight_ih_l0", "weight_hh_l0", "weight_hr_l0"]
    assert list(nn.GRUCell(3, 4, device=device).state_dict()) == [
        "weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    m = nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2, device=device)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["weight_ih_l0"] == (16, 3) and shapes["weight_hh_l0"] == (16, 2)
    assert shapes["weight_hr_l0_reverse"] == (2, 4) and shapes["weight_ih_l1"] == (16, 4)
    assert tuple(nn.GRU(3, 5, device=device).weight_ih_l0.shape) == (15, 3)


def test_default_init_range(device):
    m = nn.GRU(3, 16, 2, device=device)
    bound = 1 / math.sqrt(16)
    for p in m.parameters():
        a = p.detach().numpy()
        assert np.abs(a).max() <= bound and a.std() > bound / 4


def test_launches_per_step_are_constant(device):
    """No per-element host work in the time loop: each extra time step costs the same small
    number of launches (recurrent GEMM, bias, fused cell) forward and backward."""
    m = nn.LSTM(3, 4, device=device)

    def count(T):
        x = clgrad.randn(T, 2, 3, device=device)
        m(x)[0].sum().backward()              # warm: builds
        runtime.reset_stats()
        m(x)[0].sum().backward()
        return runtime.stats()["launches"]
    a, b, c, d = count(4), count(8), count(12), count(16)
    # linear in T: fusion may cut a long pending chain at another step (its argument limit),
    # so two windows of 4 steps may differ by a launch or two; windows of 8 steps agree
    assert abs((b - a) - (c - b)) <= 2 and abs((c - b) - (d - c)) <= 2
    assert c - a == d - b
    # forward: recurrent GEMM + bias, cell, stack; backward: cell, two GEMMs, bias sum and the
    # accumulations into W_hh, b_hh and the sliced input-projection gradient
    assert (b - a) / 4 <= 16
    runtime.reset_stats()
    with clgrad.no_grad():
        m(clgrad.randn(8, 2, 3, device=device))
    s = runtime.stats()
    assert s["d2h"] == 0


def test_errors(device):
    with pytest.raises(ValueError, match="proj_size has to be smaller"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        nn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.warns(UserWarning, match="dropout"):
        nn.GRU(3, 4, dropout=0.5)
    m = nn.LSTM(3, 4, device=device)
    with pytest.raises(RuntimeError, match="input_size"):
        m(clgrad.zeros(2, 1, 5, device=device))
    with pytest.raises(ValueError, match="2D or 3D"):
        m(clgrad.zeros(2, device=device))
    with pytest.raises(RuntimeError, match="Expected hidden"):
        m(clgrad.zeros(2, 1, 3, device=device),
          (clgrad.zeros(1, 2, 4, device=device), clgrad.zeros(1, 1, 4, device=device)))


def test_dropout_between_layers(device):
    clgrad.manual_seed(0)
    m = nn.LSTM(3, 8, 2, dropout=0.5, device=device)
    x = clgrad.randn(4, 2, 3, device=device)
    m.eval()
    a, b = m(x)[0].detach().numpy(), m(x)[0].detach().numpy()
    np.testing.assert_array_equal(a, b)                       # eval: no dropout
    np.testing.assert_allclose(a, _np_rnn(m, x.numpy().astype(np.float64))[0], atol=1e-5,
                               rtol=1e-4)
    m.train()
    assert not np.allclose(m(x)[0].detach().numpy(), a, atol=1e-4)


TEXT = "the quick brown fox jumps over the lazy dog. " * 3


def test_char_lstm_learns(device):
    """A character-level LSTM overfits a short text: the loss falls clearly."""
    clgrad.manual_seed(0)
    chars = sorted(set(TEXT))
    ids = np.array([chars.index(c) for c in TEXT])
    V, T = len(chars), 24
    emb = nn.Embedding(V, 16, device=device)
    lstm = nn.LSTM(16, 48, batch_first=True, device=device)
    head = nn.Linear(48, V, device=device)
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    opt = clgrad.optim.Adam(params, lr=0.02)
    starts = np.arange(0, len(ids) - T - 1, 7)
    x = clgrad.tensor(np.stack([ids[s:s + T] for s in starts]), device=device)
    y = clgrad.tensor(np.stack([ids[s + 1:s + T + 1] for s in starts]), device=device)
    losses = []
    for _ in range(40):
        out, _ = lstm(emb(x))                                  # (B, T, 48)
        loss = nn.functional.cross_entropy(head(out).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_double_backward_is_refused_clearly(device):
    m = nn.GRU(2, 3, device=device)
    x = clgrad.randn(2, 1, 2, device=device, requires_grad=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        clgrad.autograd.grad(m(x)[0].sum(), x, create_graph=True)
