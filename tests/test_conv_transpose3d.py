"""F.conv_transpose3d / nn.ConvTranspose3d against a direct numpy scatter (float64), gradients by
gradcheck (input, weight, bias), and torch where installed."""
import itertools

import numpy as np
import pytest

import clgrad
import clgrad.nn.functional as F
from clgrad import nn
from helpers import check_op

try:
    import torch
except ImportError:          # pragma: no cover - torch is a dev extra
    torch = None


def _t3(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * 3


def np_conv_transpose3d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                        dilation=1):
    """Each input voxel scatters w[c] * x into the output, at stride s, taps d apart."""
    s, p, op, d = map(_t3, (stride, padding, output_padding, dilation))
    N, Cin, D, H, W = x.shape
    _, Cog, KD, KH, KW = w.shape
    size = [(n - 1) * ss + dd * (k - 1) + o + 1 for n, ss, dd, k, o in
            zip((D, H, W), s, d, (KD, KH, KW), op)]
    full = np.zeros((N, Cog * groups, *size))
    cpg = Cin // groups
    for c in range(Cin):
        g = c // cpg
        for i, j, k in itertools.product(range(KD), range(KH), range(KW)):
            od, oh, ow = i * d[0], j * d[1], k * d[2]
            full[:, g * Cog:(g + 1) * Cog,
                 od:od + (D - 1) * s[0] + 1:s[0],
                 oh:oh + (H - 1) * s[1] + 1:s[1],
                 ow:ow + (W - 1) * s[2] + 1:s[2]] += \
                x[:, c][:, None] * w[c, :, i, j, k][None, :, None, None, None]
    out = full[:, :, p[0]:size[0] - p[0], p[1]:size[1] - p[1], p[2]:size[2] - p[2]]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1, 1)
    return out


CASES = [
    ((1, 2, 3, 3, 2), (2, 3, 2, 2, 2), True, dict()),
    ((2, 2, 2, 3, 3), (2, 1, 3, 2, 2), False, dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 2, 2, 3), (4, 1, 2, 3, 2), True, dict(stride=(2, 1, 2), groups=2, dilation=(2, 1, 1))),
    ((1, 2, 3, 2, 2), (2, 2, 2, 1, 2), True, dict(stride=3, padding=(1, 0, 0),
                                                  output_padding=(2, 0, 1), dilation=1)),
]


@pytest.mark.parametrize("xs,ws,bias,kw", CASES, ids=[str(c[3]) for c in CASES])
def test_conv_transpose3d(device, xs, ws, bias, kw):
    shapes = [xs, ws] + ([(ws[1] * kw.get("groups", 1),)] if bias else [])
    check_op(shapes, lambda x, w, *b: F.conv_transpose3d(x, w, *b, **kw),
             lambda x, w, *b: np_conv_transpose3d(x, w, *b, **kw), device=device, atol=1e-5,
             layouts=("contiguous", "permuted"))


def test_unbatched_module_and_errors(device):
    rng = np.random.default_rng(0)
    m = nn.ConvTranspose3d(2, 3, (2, 3, 1), stride=2, padding=(0, 1, 0), device=device)
    x = rng.standard_normal((2, 3, 2, 4))
    y = m(clgrad.tensor(x, dtype=clgrad.float32, device=device))
    want = np_conv_transpose3d(x[None], m.weight.detach().numpy().astype(float),
                               m.bias.detach().numpy().astype(float), stride=2,
                               padding=(0, 1, 0))[0]
    assert tuple(y.shape) == want.shape
    np.testing.assert_allclose(y.detach().numpy(), want, atol=1e-5)
    # output_size picks the output padding
    y = m(clgrad.tensor(x, dtype=clgrad.float32, device=device), output_size=(7, 4, 8))
    assert tuple(y.shape) == (3, 7, 4, 8)
    w = clgrad.zeros(2, 3, 2, 2, 2, device=device)
    with pytest.raises(RuntimeError, match="channels"):
        F.conv_transpose3d(clgrad.zeros(1, 3, 2, 2, 2, device=device), w)
    with pytest.raises(RuntimeError, match="output padding must be smaller"):
        F.conv_transpose3d(clgrad.zeros(1, 2, 2, 2, 2, device=device), w, output_padding=1)
    with pytest.raises(RuntimeError, match="5D"):
        F.conv_transpose3d(clgrad.zeros(2, 2, 2, device=device), w)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_torch_parity(fp64):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3, 4, 3))
    w = rng.standard_normal((4, 3, 3, 2, 3))
    b = rng.standard_normal(6)
    kw = dict(stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2), groups=2,
              dilation=(1, 2, 1))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    cx, cw, cb = (clgrad.tensor(a, device=fp64, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv_transpose3d(tx, tw, tb, **kw)
    cy = F.conv_transpose3d(cx, cw, cb, **kw)
    np.testing.assert_allclose(cy.detach().numpy(), ty.detach().numpy(), atol=1e-10)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    cy.backward(clgrad.tensor(g, device=fp64))
    for c, t in ((cx, tx), (cw, tw), (cb, tb)):
        np.testing.assert_allclose(c.grad.numpy(), t.grad.numpy(), atol=1e-9)
