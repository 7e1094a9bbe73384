"""Transformer layers against a float64 numpy reference of PyTorch's equations, PyTorch's
state_dict keys, gradients, and a 2-layer causal Transformer that learns a short text."""
import math

import numpy as np
import pytest

import clgrad
from clgrad import nn
from clgrad.autograd import gradcheck
from test_attention import NINF, _np_mha

_erf = np.vectorize(math.erf)


def _ln(x, p, name, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p[name + ".weight"] + p[name + ".bias"]


def _act(x, kind):
    return np.maximum(x, 0) if kind == "relu" else 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _np_ff(x, p, pre, kind):
    h = _act(x @ p[pre + "linear1.weight"].T + p[pre + "linear1.bias"], kind)
    return h @ p[pre + "linear2.weight"].T + p[pre + "linear2.bias"]


def _params(m):
    return {k: v.detach().numpy().astype(np.float64) for k, v in m.state_dict().items()}


def _np_encoder_layer(layer, x, mask=None, kind="relu"):
    p = _params(layer)
    sa = lambda y: _np_mha(layer.self_attn, y, y, y, attn_mask=mask)[0]  # noqa: E731
    if layer.norm_first:
        x = x + sa(_ln(x, p, "norm1"))
        return x + _np_ff(_ln(x, p, "norm2"), p, "", kind)
    x = _ln(x + sa(x), p, "norm1")
    return _ln(x + _np_ff(x, p, "", kind), p, "norm2")


def _np_decoder_layer(layer, x, mem, tgt_mask=None, kind="relu"):
    p = _params(layer)
    sa = lambda y: _np_mha(layer.self_attn, y, y, y, attn_mask=tgt_mask)[0]  # noqa: E731
    ca = lambda y: _np_mha(layer.multihead_attn, y, mem, mem)[0]            # noqa: E731
    if layer.norm_first:
        x = x + sa(_ln(x, p, "norm1"))
        x = x + ca(_ln(x, p, "norm2"))
        return x + _np_ff(_ln(x, p, "norm3"), p, "", kind)
    x = _ln(x + sa(x), p, "norm1")
    x = _ln(x + ca(x), p, "norm2")
    return _ln(x + _np_ff(x, p, "", kind), p, "norm3")


def _t(a, device, dtype=clgrad.float32):
    return clgrad.tensor(np.ascontiguousarray(a), dtype=dtype, device=device)


def _close(t, ref, atol=2e-5):
    np.testing.assert_allclose(t.detach().numpy(), ref, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("norm_first,act", [(False, "relu"), (True, "gelu")])
def test_encoder_layer(device, norm_first, act):
    clgrad.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=act,
                                       norm_first=norm_first, device=device)
    x = np.random.default_rng(0).standard_normal((4, 2, 8))
    mask = np.triu(np.full((4, 4), NINF), 1)
    _close(layer(_t(x, device)), _np_encoder_layer(layer, x, kind=act))
    _close(layer(_t(x, device), src_mask=_t(mask, device), is_causal=True),
           _np_encoder_layer(layer, x, mask, kind=act))


def test_encoder_batch_first_and_callable_activation(device):
    clgrad.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True,
                                       activation=nn.functional.relu, device=device)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8, device=device))
    x = np.random.default_rng(1).standard_normal((2, 3, 8))              # (N, S, E)
    y = x.transpose(1, 0, 2)
    for sub in enc.layers:
        y = _np_encoder_layer(sub, y)
    ref = _ln(y, _params(enc), "norm").transpose(1, 0, 2)
    _close(enc(_t(x, device)), ref)
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight   # deep copies


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer(device, norm_first):
    clgrad.manual_seed(0)
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first,
                                       device=device)
    rng = np.random.default_rng(2)
    x, mem = rng.standard_normal((3, 2, 8)), rng.standard_normal((5, 2, 8))
    mask = np.triu(np.full((3, 3), NINF), 1)
    _close(layer(_t(x, device), _t(mem, device), tgt_mask=_t(mask, device)),
           _np_decoder_layer(layer, x, mem, mask))


def test_transformer_full(device):
    clgrad.manual_seed(0)
    m = nn.Transformer(8, 2, 1, 2, 16, dropout=0.0, device=device)
    rng = np.random.default_rng(3)
    src, tgt = rng.standard_normal((5, 2, 8)), rng.standard_normal((3, 2, 8))
    mask = nn.Transformer.generate_square_subsequent_mask(3, device=device)
    out = m(_t(src, device), _t(tgt, device), tgt_mask=mask)
    p = _params(m)
    mem = _np_encoder_layer(m.encoder.layers[0], src)
    mem = _ln(mem, p, "encoder.norm")
    y = tgt
    for layer in m.decoder.layers:
        y = _np_decoder_layer(layer, y, mem, mask.numpy().astype(np.float64))
    _close(out, _ln(y, p, "decoder.norm"))
    # xavier-uniform matrices, as PyTorch's Transformer._reset_parameters
    w = m.encoder.layers[0].linear1.weight.detach().numpy()
    assert np.abs(w).max() <= math.sqrt(6 / (8 + 16))


def test_square_subsequent_mask(device):
    m = nn.Transformer.generate_square_subsequent_mask(4, device=device).numpy()
    np.testing.assert_array_equal(m, np.triu(np.full((4, 4), -np.inf), 1))
    assert m.dtype == np.float32


def test_state_dict_keys(device):
    # printed from torch 2.x by hand
    enc = ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
           "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
           "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    dec = ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
           "self_attn.out_proj.bias", "multihead_attn.in_proj_weight",
           "multihead_attn.in_proj_bias", "multihead_attn.out_proj.weight",
           "multihead_attn.out_proj.bias", "linear1.weight", "linear1.bias",
           "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight",
           "norm2.bias", "norm3.weight", "norm3.bias"]
    assert list(nn.TransformerEncoderLayer(8, 2, 16, device=device).state_dict()) == enc
    assert list(nn.TransformerDecoderLayer(8, 2, 16, device=device).state_dict()) == dec
    full = list(nn.Transformer(8, 2, 1, 1, 16, device=device).state_dict())
    assert full == (["encoder.layers.0." + k for k in enc] + ["encoder.norm.weight",
                                                              "encoder.norm.bias"]
                    + ["decoder.layers.0." + k for k in dec] + ["decoder.norm.weight",
                                                                "decoder.norm.bias"])


def test_encoder_layer_gradcheck(fp64):
    clgrad.manual_seed(0)
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, device=fp64, dtype=clgrad.float64)
    x = clgrad.tensor(np.random.default_rng(4).standard_normal((3, 1, 4)), dtype=clgrad.float64,
                      device=fp64, requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(3, device=fp64, dtype=clgrad.float64)
    assert gradcheck(lambda x, *_: layer(x, src_mask=mask, is_causal=True),
                     (x, layer.self_attn.in_proj_weight, layer.linear1.weight,
                      layer.norm2.weight))


def test_dropout_only_in_training(device):
    clgrad.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5, device=device)
    x = _t(np.random.default_rng(5).standard_normal((4, 2, 8)), device)
    layer.eval()
    _close(layer(x), _np_encoder_layer(layer, x.numpy().astype(np.float64)))
    layer.train()
    assert not np.allclose(layer(x).detach().numpy(), layer(x).detach().numpy())


TEXT = "to be or not to be that is the question. " * 3


def test_tiny_causal_transformer_learns(device):
    """A 2-layer causal Transformer (token + position embeddings, encoder stack with a square
    subsequent mask, linear head) overfits a short text: the loss falls clearly."""
    clgrad.manual_seed(0)
    chars = sorted(set(TEXT))
    ids = np.array([chars.index(c) for c in TEXT])
    V, T, E = len(chars), 16, 32
    tok = nn.Embedding(V, E, device=device)
    pos = nn.Embedding(T, E, device=device)
    layer = nn.TransformerEncoderLayer(E, 4, 64, dropout=0.0, batch_first=True,
                                       norm_first=True, device=device)
    body = nn.TransformerEncoder(layer, 2)
    head = nn.Linear(E, V, device=device)
    params = [*tok.parameters(), *pos.parameters(), *body.parameters(), *head.parameters()]
    opt = clgrad.optim.Adam(params, lr=3e-3)
    starts = np.arange(0, len(ids) - T - 1, 5)
    x = clgrad.tensor(np.stack([ids[s:s + T] for s in starts]), device=device)
    y = clgrad.tensor(np.stack([ids[s + 1:s + T + 1] for s in starts]), device=device)
    mask = nn.Transformer.generate_square_subsequent_mask(T, device=device)
    where = clgrad.arange(T, device=device)
    losses = []
    for _ in range(40):
        h = body(tok(x) + pos(where), mask=mask, is_causal=True)          # (B, T, E)
        loss = nn.functional.cross_entropy(head(h).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
