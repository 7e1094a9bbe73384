"""3-D pooling (max, average, adaptive) and F.unfold/F.fold with their modules: against a
float64 numpy reference, gradients by gradcheck, and torch where installed."""
import itertools

import numpy as np
import pytest

import clgrad
import clgrad.nn.functional as F
from clgrad import nn
from clgrad.autograd import gradcheck
from helpers import check_op

try:
    import torch
except ImportError:          # pragma: no cover - torch is a dev extra
    torch = None


def _out(n, k, s, p, d, ceil):
    o = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o


def _np_pool3d(x, k, s, p, d=(1, 1, 1), ceil=False, kind="max", include_pad=True):
    """Direct 3-D pooling over the last three dims; returns (values, flat indices) for max."""
    D, H, W = x.shape[-3:]
    out = [_out(n, kk, ss, pp, dd, ceil) for n, kk, ss, pp, dd in zip((D, H, W), k, s, p, d)]
    lead = x.shape[:-3]
    vals = np.zeros(lead + tuple(out))
    idx = np.zeros(lead + tuple(out), np.int64)
    for o in itertools.product(*(range(n) for n in out)):
        taps, count_pad = [], 1
        for ax in range(3):
            start = o[ax] * s[ax] - p[ax]
            pos = [start + j * d[ax] for j in range(k[ax])]
            taps.append([q for q in pos if 0 <= q < (D, H, W)[ax]])
            end = min(start + (k[ax] - 1) * d[ax] + 1, (D, H, W)[ax] + p[ax])
            count_pad *= end - start
        cells = list(itertools.product(*taps))
        block = np.stack([x[(...,) + c] for c in cells], -1)
        if kind == "max":
            j = np.argmax(block, -1)
            vals[(...,) + o] = np.take_along_axis(block, j[..., None], -1)[..., 0]
            flat = np.array([c[0] * H * W + c[1] * W + c[2] for c in cells])
            idx[(...,) + o] = flat[j]
        else:
            vals[(...,) + o] = block.sum(-1) / (count_pad if include_pad else len(cells))
    return vals, idx


MAX_CASES = [dict(k=(2, 2, 2), s=(2, 2, 2), p=(0, 0, 0)),
             dict(k=(3, 2, 2), s=(1, 2, 1), p=(1, 1, 0)),
             dict(k=(3, 3, 3), s=(2, 2, 2), p=(1, 1, 1), ceil=True),
             dict(k=(2, 2, 2), s=(1, 1, 1), p=(0, 0, 0), d=(2, 1, 2))]


@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool3d(device, case):
    c = dict(case)
    kw = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], dilation=c.get("d", 1),
              ceil_mode=c.get("ceil", False))
    ref = lambda a: _np_pool3d(a, c["k"], c["s"], c["p"], c.get("d", (1, 1, 1)),  # noqa: E731
                               c.get("ceil", False))
    check_op([(2, 2, 4, 5, 5)], lambda a: tuple(F.max_pool3d(a, return_indices=True, **kw)),
             ref, device=device)
    check_op([(2, 4, 5, 5)], lambda a: F.max_pool3d(a, **kw), lambda a: ref(a)[0],
             device=device, layouts=("contiguous",))


@pytest.mark.parametrize("case", MAX_CASES[:3])
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool3d(device, case, include_pad):
    c = case
    kw = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], ceil_mode=c.get("ceil", False),
              count_include_pad=include_pad)
    check_op([(2, 2, 4, 5, 5)], lambda a: F.avg_pool3d(a, **kw),
             lambda a: _np_pool3d(a, c["k"], c["s"], c["p"], ceil=c.get("ceil", False),
                                  kind="avg", include_pad=include_pad)[0], device=device)
    want = _np_pool3d(np.ones((1, 1, 4, 5, 5)), c["k"], c["s"], c["p"], ceil=c.get("ceil", False),
                      kind="avg", include_pad=True)[0]
    got = F.avg_pool3d(clgrad.ones(1, 1, 4, 5, 5, device=device), divisor_override=3,
                       kernel_size=c["k"], stride=c["s"], padding=c["p"],
                       ceil_mode=c.get("ceil", False))
    assert got.shape == want.shape


def _np_adaptive(x, size, kind):
    D, H, W = x.shape[-3:]
    bounds = [[(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]
              for n, o in zip((D, H, W), size)]
    out = np.zeros(x.shape[:-3] + tuple(size))
    for o in itertools.product(*(range(n) for n in size)):
        (a0, a1), (b0, b1), (c0, c1) = (bounds[ax][o[ax]] for ax in range(3))
        block = x[..., a0:a1, b0:b1, c0:c1]
        out[(...,) + o] = block.mean((-3, -2, -1)) if kind == "avg" else block.max((-3, -2, -1))
    return out


@pytest.mark.parametrize("size", [(2, 3, 2), 1, (5, 4, 3), (3, None, 2)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool3d(device, size, kind):
    shape = (2, 2, 5, 4, 3)
    full = tuple(shape[2 + i] if v is None else v for i, v in enumerate(size)) \
        if isinstance(size, tuple) else (size,) * 3
    fn = F.adaptive_avg_pool3d if kind == "avg" else F.adaptive_max_pool3d
    check_op([shape], lambda a: fn(a, size), lambda a: _np_adaptive(a, full, kind),
             device=device)


def test_pool3d_modules_and_errors(device):
    x = clgrad.randn(1, 2, 4, 4, 4, device=device)
    assert nn.MaxPool3d(2)(x).shape == (1, 2, 2, 2, 2)
    assert nn.AvgPool3d(2, stride=1)(x).shape == (1, 2, 3, 3, 3)
    assert nn.AdaptiveAvgPool3d((1, 2, 3))(x).shape == (1, 2, 1, 2, 3)
    v, i = nn.AdaptiveMaxPool3d(2, return_indices=True)(x)
    assert i.dtype is clgrad.int64 and v.shape == (1, 2, 2, 2, 2)
    with pytest.raises(RuntimeError, match="5D"):
        F.max_pool3d(clgrad.randn(2, 4, 4, device=device), 2)
    with pytest.raises(RuntimeError, match="half of effective kernel"):
        F.max_pool3d(x, 2, padding=2)
    with pytest.raises(RuntimeError, match="too small"):
        F.avg_pool3d(x, 5)


# ---- unfold / fold ---------------------------------------------------------------------------
def _np_unfold(x, k, d, p, s):
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    OH = (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    OW = (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = np.zeros((N, C, k[0], k[1], OH, OW))
    for i in range(k[0]):
        for j in range(k[1]):
            cols[:, :, i, j] = xp[:, :, i * d[0]:i * d[0] + s[0] * (OH - 1) + 1:s[0],
                                  j * d[1]:j * d[1] + s[1] * (OW - 1) + 1:s[1]]
    return cols.reshape(N, C * k[0] * k[1], OH * OW), (OH, OW)


FOLD_CASES = [((3, 3), (1, 1), (0, 0), (1, 1)), ((2, 3), (2, 1), (1, 1), (2, 1)),
              ((2, 2), (1, 1), (0, 0), (2, 2))]


@pytest.mark.parametrize("k,d,p,s", FOLD_CASES)
def test_unfold_fold(device, k, d, p, s):
    kw = dict(kernel_size=k, dilation=d, padding=p, stride=s)
    check_op([(2, 3, 7, 6)], lambda a: F.unfold(a, **kw),
             lambda a: _np_unfold(a, k, d, p, s)[0], device=device)
    _, (OH, OW) = _np_unfold(np.zeros((1, 1, 7, 6)), k, d, p, s)

    def np_fold(c):
        # the adjoint of unfold: <unfold(x), c> = <x, fold(c)> for every x
        out = np.zeros((c.shape[0], 3, 7, 6))
        for i in range(3 * 7 * 6):
            e = np.zeros((1, 3 * 7 * 6))
            e[0, i] = 1
            col = _np_unfold(e.reshape(1, 3, 7, 6), k, d, p, s)[0][0]
            out.reshape(c.shape[0], -1)[:, i] = (c * col).sum((1, 2))
        return out
    check_op([(2, 3 * k[0] * k[1], OH * OW)], lambda c: F.fold(c, (7, 6), **kw), np_fold,
             device=device)
    # unbatched forms and the modules
    x = clgrad.randn(3, 7, 6, device=device)
    u = nn.Unfold(**kw)(x)
    np.testing.assert_allclose(u.numpy(), F.unfold(x.unsqueeze(0), **kw)[0].numpy())
    assert nn.Fold((7, 6), **kw)(u).shape == (3, 7, 6)
    with pytest.raises(RuntimeError, match="sliding blocks"):
        F.fold(u[:, :-1], (7, 6), **kw)


@pytest.mark.skipif(torch is None, reason="torch is not installed: parity test skipped")
def test_pool3d_fold_match_torch(fp64):
    import torch.nn.functional as TF
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6, 7))
    cx, tx = clgrad.tensor(x, device=fp64), torch.tensor(x)
    for kw in [dict(kernel_size=2), dict(kernel_size=(3, 2, 2), stride=(1, 2, 1),
                                         padding=(1, 1, 0)),
               dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)]:
        cv, ci = F.max_pool3d(cx, return_indices=True, **kw)
        tv, ti = TF.max_pool3d(tx, return_indices=True, **kw)
        np.testing.assert_allclose(cv.numpy(), tv.numpy())
        np.testing.assert_array_equal(ci.numpy(), ti.numpy())
        for cip in (True, False):
            for dov in (None, 5):
                np.testing.assert_allclose(
                    F.avg_pool3d(cx, count_include_pad=cip, divisor_override=dov, **kw).numpy(),
                    TF.avg_pool3d(tx, count_include_pad=cip, divisor_override=dov,
                                  **kw).numpy(), atol=1e-12)
    for size in [(2, 3, 4), 3, (None, 2, 5)]:
        np.testing.assert_allclose(F.adaptive_avg_pool3d(cx, size).numpy(),
                                   TF.adaptive_avg_pool3d(tx, size).numpy(), atol=1e-12)
        cv, ci = F.adaptive_max_pool3d(cx, size, return_indices=True)
        tv, ti = TF.adaptive_max_pool3d(tx, size, return_indices=True)
        np.testing.assert_array_equal(ci.numpy(), ti.numpy())
    x4 = rng.standard_normal((2, 3, 7, 6))
    kw = dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(2, 1))
    cu, tu = F.unfold(clgrad.tensor(x4, device=fp64), **kw), TF.unfold(torch.tensor(x4), **kw)
    np.testing.assert_allclose(cu.numpy(), tu.numpy())
    np.testing.assert_allclose(F.fold(cu, (7, 6), **kw).numpy(), TF.fold(tu, (7, 6), **kw).numpy(),
                               atol=1e-12)
    # gradients of the two-pass max pooling go where torch's go, ties included
    xt = np.round(rng.standard_normal((1, 1, 4, 4, 4)))           # many ties
    a = clgrad.tensor(xt, device=fp64, requires_grad=True)
    F.max_pool3d(a, 2, stride=1).sum().backward()
    b = torch.tensor(xt, requires_grad=True)
    TF.max_pool3d(b, 2, stride=1).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    assert gradcheck(lambda t: F.max_pool3d(t, 2, stride=1), [clgrad.tensor(
        rng.standard_normal((1, 1, 3, 4, 4)), device=fp64, requires_grad=True)])


# ---- conv3d ----------------------------------------------------------------------------------
def _np_conv3d(x, w, b, s, p, d, groups):
    N, C, D, H, W = x.shape
    O, Cg, KD, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1]), (p[2], p[2])))
    out_sz = [(n + 2 * pp - dd * (k - 1) - 1) // ss + 1
              for n, k, ss, pp, dd in zip((D, H, W), (KD, KH, KW), s, p, d)]
    out = np.zeros((N, O) + tuple(out_sz))
    og = O // groups
    for o in range(O):
        g = o // og
        xs = xp[:, g * Cg:(g + 1) * Cg]
        for i, j, k in itertools.product(range(KD), range(KH), range(KW)):
            tap = xs[:, :, i * d[0]:i * d[0] + s[0] * (out_sz[0] - 1) + 1:s[0],
                     j * d[1]:j * d[1] + s[1] * (out_sz[1] - 1) + 1:s[1],
                     k * d[2]:k * d[2] + s[2] * (out_sz[2] - 1) + 1:s[2]]
            out[:, o] += np.einsum("ncdhw,c->ndhw", tap, w[o, :, i, j, k])
        if b is not None:
            out[:, o] += b[o]
    return out


CONV3D = [((3, 2, 2, 2, 2), dict(s=(1, 1, 1), p=(0, 0, 0), d=(1, 1, 1), groups=1)),
          ((4, 2, 3, 2, 3), dict(s=(2, 1, 2), p=(1, 0, 1), d=(1, 2, 1), groups=1)),
          ((4, 1, 2, 3, 1), dict(s=(1, 2, 1), p=(1, 1, 0), d=(2, 1, 1), groups=2))]


@pytest.mark.parametrize("wshape,kw", CONV3D)
def test_conv3d(device, wshape, kw):
    s, p, d, g = kw["s"], kw["p"], kw["d"], kw["groups"]
    check_op([(2, 2, 4, 5, 5), wshape, (wshape[0],)],
             lambda x, w, b: F.conv3d(x, w, b, s, p, d, g),
             lambda x, w, b: _np_conv3d(x, w, b, s, p, d, g), device=device, atol=1e-5,
             layouts=("contiguous", "permuted"))


def test_conv3d_module_and_errors(device):
    m = nn.Conv3d(2, 3, 3, padding="same", device=device)
    x = clgrad.randn(1, 2, 4, 5, 6, device=device)
    assert m(x).shape == (1, 3, 4, 5, 6)
    assert m(x[0]).shape == (3, 4, 5, 6)
    r = nn.Conv3d(2, 3, 3, padding=1, padding_mode="replicate", device=device)
    want = _np_conv3d(np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1), (1, 1)), mode="edge"),
                      r.weight.detach().numpy(), r.bias.detach().numpy(), (1, 1, 1), (0, 0, 0),
                      (1, 1, 1), 1)
    with clgrad.no_grad():
        np.testing.assert_allclose(r(x).numpy(), want, atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="channels"):
        F.conv3d(x, clgrad.randn(3, 3, 1, 1, 1, device=device))
    with pytest.raises(RuntimeError, match="5D"):
        F.conv3d(clgrad.randn(2, 3, device=device), clgrad.randn(3, 3, 1, 1, 1, device=device))


@pytest.mark.skipif(torch is None, reason="torch is not installed: parity test skipped")
def test_conv3d_matches_torch(fp64):
    import torch.nn.functional as TF
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 6, 7))
    for kw, ws in [(dict(stride=(2, 1, 2), padding=(1, 0, 2), dilation=(1, 2, 1)),
                    (6, 4, 2, 3, 2)), (dict(groups=2, padding=1), (4, 2, 3, 1, 3)),
                   (dict(padding="same"), (2, 4, 2, 3, 4))]:
        w, b = rng.standard_normal(ws), rng.standard_normal(ws[0])
        t = TF.conv3d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw)
        c = F.conv3d(clgrad.tensor(x, device=fp64), clgrad.tensor(w, device=fp64),
                     clgrad.tensor(b, device=fp64), **kw)
        np.testing.assert_allclose(c.numpy(), t.numpy(), atol=1e-10)
    for mode in ("reflect", "circular"):
        tm = torch.nn.Conv3d(4, 3, 3, padding=1, padding_mode=mode).double()
        cm = nn.Conv3d(4, 3, 3, padding=1, padding_mode=mode, device=fp64, dtype=clgrad.float64)
        cm.load_state_dict({k: clgrad.tensor(v.detach().numpy(), device=fp64)
                            for k, v in tm.state_dict().items()})
        with clgrad.no_grad():
            np.testing.assert_allclose(cm(clgrad.tensor(x, device=fp64)).numpy(),
                                       tm(torch.tensor(x)).detach().numpy(), atol=1e-10)
