"""Packed sequences: pack/pad helpers against numpy, nn.RNN/LSTM/GRU over a PackedSequence equal
to running each sequence alone, gradients by gradcheck, and parity with torch where installed."""
import numpy as np
import pytest

import clgrad
from clgrad import nn
from clgrad.autograd import gradcheck
from clgrad.nn.utils import rnn as R

try:
    import torch
except ImportError:          # pragma: no cover - torch is a dev extra
    torch = None


def _t(a, device, **kw):
    return clgrad.tensor(np.asarray(a), device=device, **kw)


def _np_pack(x, lengths):
    """data and batch_sizes of a time-major padded batch, longest first (stable)."""
    order = sorted(range(len(lengths)), key=lambda b: -lengths[b])
    rows, sizes = [], []
    for t in range(max(lengths)):
        alive = [b for b in order if lengths[b] > t]
        rows += [x[t, b] for b in alive]
        sizes.append(len(alive))
    return np.stack(rows), np.asarray(sizes), np.asarray(order)


@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_pad_round_trip(device, batch_first):
    rng = np.random.default_rng(0)
    lengths = [3, 5, 1, 5]
    x = rng.standard_normal((5, 4, 2)).astype(np.float32)
    xin = x.transpose(1, 0, 2) if batch_first else x
    p = R.pack_padded_sequence(_t(xin, device), lengths, batch_first=batch_first,
                               enforce_sorted=False)
    data, sizes, order = _np_pack(x, lengths)
    np.testing.assert_array_equal(p.data.numpy(), data)
    assert p.batch_sizes.tolist() == sizes.tolist()
    assert p.sorted_indices.tolist() == order.tolist()
    assert p.unsorted_indices.tolist() == np.argsort(order).tolist()
    padded, lens = R.pad_packed_sequence(p, batch_first=batch_first, padding_value=-1.0,
                                         total_length=6)
    want = np.full((6, 4, 2), -1.0, np.float32)
    for b, n in enumerate(lengths):
        want[:n, b] = x[:n, b]
    if batch_first:
        want = want.transpose(1, 0, 2)
    np.testing.assert_array_equal(padded.numpy(), want)
    assert lens.tolist() == lengths


def test_pack_errors(device):
    x = _t(np.zeros((3, 2, 1), np.float32), device)
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        R.pack_padded_sequence(x, [1, 3])
    with pytest.raises(RuntimeError, match="greater than 0"):
        R.pack_padded_sequence(x, [0, 3], enforce_sorted=False)
    with pytest.raises(RuntimeError, match="longer than the padded"):
        R.pack_padded_sequence(x, [4, 3])
    p = R.pack_padded_sequence(x, [3, 2])
    with pytest.raises(ValueError, match="total_length"):
        R.pad_packed_sequence(p, total_length=2)


def test_pad_sequence_and_pack_sequence(device):
    rng = np.random.default_rng(1)
    seqs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (2, 4, 3)]
    ts = [_t(s, device) for s in seqs]
    for side in ("right", "left"):
        out = R.pad_sequence(ts, batch_first=True, padding_value=7.0, padding_side=side)
        want = np.full((3, 4, 3), 7.0, np.float32)
        for b, s in enumerate(seqs):
            if side == "right":
                want[b, :len(s)] = s
            else:
                want[b, 4 - len(s):] = s
        np.testing.assert_array_equal(out.numpy(), want)
    assert R.pad_sequence(ts).shape == (4, 3, 3)
    p = R.pack_sequence(ts, enforce_sorted=False)
    back = R.unpack_sequence(p)
    for got, s in zip(back, seqs):
        np.testing.assert_array_equal(got.numpy(), s)
    with pytest.raises(RuntimeError, match="sorted"):
        R.pack_sequence(ts)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_on_packed_equals_each_sequence_alone(device, kind, bidirectional):
    clgrad.manual_seed(0)
    m = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=bidirectional, device=device)
    rng = np.random.default_rng(2)
    lengths = [2, 5, 3]
    x = rng.standard_normal((5, 3, 3)).astype(np.float32)
    p = R.pack_padded_sequence(_t(x, device), lengths, enforce_sorted=False)
    with clgrad.no_grad():
        out, state = m(p)
    assert isinstance(out, R.PackedSequence)
    padded, lens = R.pad_packed_sequence(out)
    assert lens.tolist() == lengths
    h_n = state[0] if kind == "LSTM" else state
    D = 2 if bidirectional else 1
    for b, n in enumerate(lengths):
        with clgrad.no_grad():
            o1, s1 = m(_t(x[:n, b], device))               # unbatched, only its own steps
        np.testing.assert_allclose(padded.numpy()[:n, b], o1.numpy(), atol=1e-5, rtol=1e-4)
        assert np.all(padded.numpy()[n:, b] == 0)
        h1 = s1[0] if kind == "LSTM" else s1
        np.testing.assert_allclose(h_n.numpy()[:, b], h1.numpy(), atol=1e-5, rtol=1e-4)
    assert h_n.shape == (2 * D, 3, 4)


def test_packed_lstm_gradcheck(fp64):
    clgrad.manual_seed(0)
    m = nn.LSTM(2, 3, bidirectional=True, device=fp64, dtype=clgrad.float64)
    x = np.random.default_rng(3).standard_normal((4, 3, 2))
    h0 = np.random.default_rng(4).standard_normal((2, 3, 3))

    def f(xt, h):
        p = R.pack_padded_sequence(xt, [4, 2, 1])
        out, (hn, cn) = m(p, (h, h * 0.5))
        return R.pad_packed_sequence(out)[0].sum(2) + hn.sum() + cn.sum()
    assert gradcheck(f, [_t(x, fp64, requires_grad=True), _t(h0, fp64, requires_grad=True)],
                     atol=1e-5, rtol=1e-3)


@pytest.mark.skipif(torch is None, reason="torch is not installed: parity test skipped")
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_packed_matches_torch(fp64, kind):
    from torch.nn.utils import rnn as TR
    torch.manual_seed(0)
    tm = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True).double()
    cm = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True, device=fp64,
                           dtype=clgrad.float64)
    cm.load_state_dict({k: _t(v.detach().numpy(), fp64) for k, v in tm.state_dict().items()})
    x = np.random.default_rng(5).standard_normal((3, 5, 3))
    lengths = [3, 5, 2]
    h0 = np.random.default_rng(6).standard_normal((4, 3, 4))
    th0 = (torch.tensor(h0), torch.tensor(h0 * 0.5)) if kind == "LSTM" else torch.tensor(h0)
    ch0 = (_t(h0, fp64), _t(h0 * 0.5, fp64)) if kind == "LSTM" else _t(h0, fp64)
    to, th = tm(TR.pack_padded_sequence(torch.tensor(x), lengths, batch_first=True,
                                        enforce_sorted=False), th0)
    co, ch = cm(R.pack_padded_sequence(_t(x, fp64), lengths, batch_first=True,
                                       enforce_sorted=False), ch0)
    np.testing.assert_allclose(co.data.detach().numpy(), to.data.detach().numpy(), atol=1e-10)
    assert co.batch_sizes.tolist() == to.batch_sizes.tolist()
    for a, b in zip(ch if kind == "LSTM" else [ch], th if kind == "LSTM" else [th]):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-10)
    # every weight's gradient, both directions (a sequence's padded steps feed W_hh nothing)
    (co.data ** 2).sum().backward()
    (to.data ** 2).sum().backward()
    for (name, a), b in zip(cm.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-10, err_msg=name)
