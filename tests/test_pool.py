"""Pooling (max, average, adaptive, unpooling) and resizing (interpolate, pixel shuffle) against
numpy references written from PyTorch's documented window and source-index rules; gradients by
gradcheck; and the pooling and upsampling modules."""
import math

import numpy as np
import pytest

import clgrad
from clgrad.nn import functional as F
from clgrad.autograd import gradcheck
from tests.helpers import check_op

# Outputs of more than 16 elements make gradcheck compare random projections (fast); the shapes
# below are chosen that way and kept tiny, since each input element costs two forward passes.


def _t(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _out_len(n, k, s, p, d, ceil_mode):
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _windows(n, k, s, p, d, ceil_mode):
    """Per output position: the list of in-range input coordinates of its window."""
    return [[o * s - p + j * d for j in range(k) if 0 <= o * s - p + j * d < n]
            for o in range(_out_len(n, k, s, p, d, ceil_mode))]


def _adaptive_windows(n, o):
    return [list(range((i * n) // o, -((-(i + 1) * n) // o))) for i in range(o)]


def np_max_pool(x, wins_h, wins_w):
    """(values, flat plane indices) over the last two dims."""
    lead = x.shape[:-2]
    W = x.shape[-1]
    y = np.zeros(lead + (len(wins_h), len(wins_w)))
    idx = np.zeros(y.shape, dtype=np.int64)
    for i, hs in enumerate(wins_h):
        for j, ws in enumerate(wins_w):
            block = x[..., hs, :][..., ws].reshape(lead + (-1,))
            a = block.argmax(-1)
            y[..., i, j] = block.max(-1)
            idx[..., i, j] = np.array(hs)[a // len(ws)] * W + np.array(ws)[a % len(ws)]
    return y, idx


def np_avg_pool(x, k, s, p, ceil_mode, count_include_pad, divisor=None):
    H, W = x.shape[-2:]
    OH, OW = (_out_len(n, kk, ss, pp, 1, ceil_mode) for n, kk, ss, pp in zip((H, W), k, s, p))
    y = np.zeros(x.shape[:-2] + (OH, OW))
    for i in range(OH):
        for j in range(OW):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], H + p[0]), min(w0 + k[1], W + p[1])
            padded = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            total = x[..., h0:h1, w0:w1].sum((-2, -1))
            div = divisor or (padded if count_include_pad else (h1 - h0) * (w1 - w0))
            y[..., i, j] = total / div
    return y


def np_adaptive_avg(x, oh, ow):
    wh, ww = _adaptive_windows(x.shape[-2], oh), _adaptive_windows(x.shape[-1], ow)
    y = np.zeros(x.shape[:-2] + (oh, ow))
    for i, hs in enumerate(wh):
        for j, ws in enumerate(ww):
            y[..., i, j] = x[..., hs, :][..., ws].mean((-2, -1))
    return y


# ---- max pooling ---------------------------------------------------------------------------------
MAX2D = [
    ((1, 2, 6, 6), dict(kernel_size=2)),
    ((2, 2, 5, 6), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 7, 8), dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), dilation=(2, 1))),
    ((1, 3, 8, 6), dict(kernel_size=2, stride=3, dilation=2, ceil_mode=True)),
    ((2, 7, 6), dict(kernel_size=2, stride=1)),                                  # unbatched
    ((2, 3, 8, 4), dict(kernel_size=(2, 1))),               # windows tile the planes exactly
    ((1, 2, 7, 6), dict(kernel_size=2)),                    # a row no window covers: not tiled
    ((3, 1, 4), dict(kernel_size=(1, 2), dilation=(3, 1))),  # tiled: dilation along a 1-tap dim
]


def _max2d_ref(x, kw):
    k, s = _t(kw["kernel_size"], 2), _t(kw.get("stride", kw["kernel_size"]), 2)
    p, d = _t(kw.get("padding", 0), 2), _t(kw.get("dilation", 1), 2)
    c = kw.get("ceil_mode", False)
    return np_max_pool(x, _windows(x.shape[-2], k[0], s[0], p[0], d[0], c),
                       _windows(x.shape[-1], k[1], s[1], p[1], d[1], c))


@pytest.mark.parametrize("shape,kw", MAX2D, ids=[f"{c[0]}{c[1]}" for c in MAX2D])
def test_max_pool2d(device, shape, kw):
    check_op([shape], lambda x: F.max_pool2d(x, **kw), lambda x: _max2d_ref(x, kw)[0],
             device=device)
    x = np.random.default_rng(1).standard_normal(shape)
    y, idx = F.max_pool2d(clgrad.tensor(x, device=device), return_indices=True, **kw)
    assert idx.dtype is clgrad.int64
    np.testing.assert_array_equal(idx.numpy(), _max2d_ref(x, kw)[1])


@pytest.mark.parametrize("shape,k", [((3, 700, 6, 10), 2), ((2, 9, 33, 21), 3)])
def test_max_pool2d_tiled_many_planes(device, shape, k):
    """The tiled kernels split each output index into plane, row and column without dividing:
    thousands of planes of odd sizes, forward values, indices and the scattered gradient."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    xt = clgrad.tensor(x, device=device, requires_grad=True)
    y, idx = F.max_pool2d(xt, k, return_indices=True)
    want, want_i = _max2d_ref(x.astype(np.float64), dict(kernel_size=k))
    np.testing.assert_array_equal(y.detach().numpy(), want.astype(np.float32))
    np.testing.assert_array_equal(idx.numpy(), want_i)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(clgrad.tensor(g, device=device))
    gx = np.zeros(x.shape[:-2] + (x.shape[-2] * x.shape[-1],), np.float32)
    np.put_along_axis(gx, want_i.reshape(want_i.shape[:-2] + (-1,)),
                      g.reshape(g.shape[:-2] + (-1,)), axis=-1)
    np.testing.assert_array_equal(xt.grad.numpy(), gx.reshape(x.shape))


MAX1D = [
    ((2, 2, 9), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 3, 10), dict(kernel_size=2, stride=3, dilation=3, ceil_mode=True)),
]


@pytest.mark.parametrize("shape,kw", MAX1D, ids=[f"{c[0]}{c[1]}" for c in MAX1D])
def test_max_pool1d(device, shape, kw):
    k, s, p = kw["kernel_size"], kw.get("stride", kw["kernel_size"]), kw.get("padding", 0)
    d, c = kw.get("dilation", 1), kw.get("ceil_mode", False)

    def ref(x):
        return np_max_pool(x[..., None, :], [[0]], _windows(x.shape[-1], k, s, p, d, c))

    check_op([shape], lambda x: F.max_pool1d(x, **kw), lambda x: ref(x)[0][..., 0, :],
             device=device)
    x = np.random.default_rng(2).standard_normal(shape)
    _, idx = F.max_pool1d(clgrad.tensor(x, device=device), return_indices=True, **kw)
    np.testing.assert_array_equal(idx.numpy(), ref(x)[1][..., 0, :])


def test_max_pool_nan_and_ties(device):
    x = np.array([[[[1.0, np.nan, 0.0, 3.0], [2.0, 2.0, 3.0, 3.0]]]])
    y = F.max_pool2d(clgrad.tensor(x, device=device), 2)
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and y.numpy()[0, 0, 0, 1] == 3.0


# ---- average pooling -----------------------------------------------------------------------------
AVG2D = [
    ((1, 2, 6, 6), dict(kernel_size=2)),
    ((2, 2, 5, 6), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False)),
    ((1, 2, 6, 7), dict(kernel_size=(2, 4), stride=(3, 3), padding=(1, 2), ceil_mode=True)),
    ((1, 2, 5, 6), dict(kernel_size=3, stride=1, padding=1, divisor_override=5)),
]


@pytest.mark.parametrize("shape,kw", AVG2D, ids=[f"{c[0]}{c[1]}" for c in AVG2D])
def test_avg_pool2d(device, shape, kw):
    k, s = _t(kw["kernel_size"], 2), _t(kw.get("stride", kw["kernel_size"]), 2)
    p = _t(kw.get("padding", 0), 2)
    ref = lambda x: np_avg_pool(x, k, s, p, kw.get("ceil_mode", False),
                                kw.get("count_include_pad", True), kw.get("divisor_override"))
    check_op([shape], lambda x: F.avg_pool2d(x, **kw), ref, device=device)


@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool1d(device, cip):
    ref = lambda x: np_avg_pool(x[..., None, :], (1, 3), (1, 2), (0, 1), True, cip)[..., 0, :]
    check_op([(2, 3, 8)], lambda x: F.avg_pool1d(x, 3, 2, 1, ceil_mode=True,
                                                 count_include_pad=cip), ref, device=device)


# ---- adaptive pooling ----------------------------------------------------------------------------
ADAPTIVE = [((1, 2, 7, 5), (3, 4)), ((2, 2, 6, 6), (4, 4)), ((1, 3, 5, 7), (5, None)),
            ((1, 2, 4, 5), 1), ((2, 5, 3), (2, 2))]


@pytest.mark.parametrize("shape,size", ADAPTIVE, ids=[f"{c[0]}{c[1]}" for c in ADAPTIVE])
def test_adaptive_pool2d(device, shape, size):
    sz = _t(size, 2)
    oh, ow = (shape[-2] if sz[0] is None else sz[0]), (shape[-1] if sz[1] is None else sz[1])
    check_op([shape], lambda x: F.adaptive_avg_pool2d(x, size),
             lambda x: np_adaptive_avg(x, oh, ow), device=device)

    def ref_max(x):
        return np_max_pool(x, _adaptive_windows(x.shape[-2], oh),
                           _adaptive_windows(x.shape[-1], ow))

    check_op([shape], lambda x: F.adaptive_max_pool2d(x, size), lambda x: ref_max(x)[0],
             device=device)
    x = np.random.default_rng(3).standard_normal(shape)
    _, idx = F.adaptive_max_pool2d(clgrad.tensor(x, device=device), size, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), ref_max(x)[1])


def test_adaptive_pool1d(device):
    check_op([(2, 3, 7)], lambda x: F.adaptive_avg_pool1d(x, 3),
             lambda x: np_adaptive_avg(x[..., None, :], 1, 3)[..., 0, :], device=device)
    check_op([(2, 3, 7)], lambda x: F.adaptive_max_pool1d(x, 4),
             lambda x: np_max_pool(x[..., None, :], [[0]], _adaptive_windows(7, 4))[0][..., 0, :],
             device=device)


# ---- unpooling -----------------------------------------------------------------------------------
def test_max_unpool2d(device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 6, 5))
    _, idx = F.max_pool2d(clgrad.tensor(x, device=device), 2, return_indices=True)
    idx_np = idx.numpy()

    def ref(v):
        out = np.zeros((2, 2, 30))
        for b in range(2):
            for c in range(2):
                out[b, c, idx_np[b, c].reshape(-1)] = v[b, c].reshape(-1)
        return out.reshape(2, 2, 6, 5)

    check_op([(2, 2, 3, 2)], lambda v: F.max_unpool2d(v, idx, 2, output_size=(6, 5)), ref,
             device=device, layouts=("contiguous", "sliced"))
    assert F.max_unpool2d(clgrad.zeros(2, 2, 3, 2, device=device), idx, 2).shape == (2, 2, 6, 4)
    with pytest.raises(RuntimeError, match="Expected shape of indices"):
        F.max_unpool2d(clgrad.zeros(2, 2, 3, 3, device=device), idx, 2)


def test_max_pool_unpool_round_trip(device):
    # unpool(pool(x)) keeps the maxima where they were and zeros elsewhere
    x = clgrad.tensor(np.random.default_rng(5).standard_normal((1, 1, 4, 4)), device=device)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    back = F.max_unpool2d(y, idx, 2).numpy()
    xs = x.numpy()
    assert np.all((back == 0) | (back == xs))
    assert (back != 0).sum() == 4


# ---- interpolate ---------------------------------------------------------------------------------
def _nearest_matrix(n, o, scale):
    m = np.zeros((o, n))
    step = np.float32(1.0 / scale) if scale else np.float32(n / o)
    for i in range(o):
        m[i, min(int(np.floor(np.float32(i) * step)), n - 1)] = 1
    return m


def _linear_matrix(n, o, scale, align):
    m = np.zeros((o, n))
    for i in range(o):
        if align:
            src = i * (n - 1) / (o - 1) if o > 1 else 0.0
        else:
            step = 1.0 / scale if scale else n / o
            src = max((i + 0.5) * step - 0.5, 0.0)
        i0 = int(src)
        i1 = min(i0 + 1, n - 1)
        lam = src - i0
        m[i, i0] += 1 - lam
        m[i, i1] += lam
    return m


def np_interp(x, size, scale, mode, align):
    """Separable resize: y = A_h x A_w^T with per-dim interpolation matrices."""
    nd = x.ndim - 2
    mats = []
    for i in range(nd):
        n = x.shape[2 + i]
        sc = None if scale is None else _t(scale, nd)[i]
        o = _t(size, nd)[i] if size is not None else int(math.floor(n * sc))
        mats.append(_nearest_matrix(n, o, sc) if mode == "nearest" else
                    _linear_matrix(n, o, sc, align))
    if nd == 1:
        return np.einsum("ncw,ow->nco", x, mats[0])
    return np.einsum("nchw,ph,qw->ncpq", x, mats[0], mats[1])


INTERP = [
    ((1, 2, 3, 4), dict(scale_factor=2)),
    ((1, 2, 4, 3), dict(scale_factor=1.7)),
    ((1, 2, 5, 6), dict(size=(3, 4))),
    ((1, 2, 3, 3), dict(size=(7, 2))),
    ((1, 2, 5, 4), dict(scale_factor=(0.6, 2.5))),
]


@pytest.mark.parametrize("shape,kw", INTERP, ids=[f"{c[0]}{c[1]}" for c in INTERP])
@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", False),
                                        ("bilinear", True)])
def test_interpolate2d(device, shape, kw, mode, align):
    check_op([shape], lambda x: F.interpolate(x, mode=mode, align_corners=align, **kw),
             lambda x: np_interp(x, kw.get("size"), kw.get("scale_factor"), mode, align),
             device=device)


@pytest.mark.parametrize("mode,align", [("nearest", None), ("linear", False), ("linear", True)])
def test_interpolate1d(device, mode, align):
    check_op([(1, 2, 5)], lambda x: F.interpolate(x, scale_factor=2.3, mode=mode,
                                                  align_corners=align),
             lambda x: np_interp(x, None, 2.3, mode, align), device=device)
    check_op([(2, 2, 7)], lambda x: F.interpolate(x, size=4, mode=mode, align_corners=align),
             lambda x: np_interp(x, 4, None, mode, align), device=device)


def test_interpolate_errors(device):
    x = clgrad.zeros(1, 1, 3, 3, device=device)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError):
        F.interpolate(x, scale_factor=2, mode="bicubic")


# ---- pixel shuffle -------------------------------------------------------------------------------
def np_pixel_shuffle(x, r):
    n, c, h, w = x.shape
    y = np.zeros((n, c // (r * r), h * r, w * r))
    for ch in range(c // (r * r)):
        for i in range(r):
            for j in range(r):
                y[:, ch, i::r, j::r] = x[:, ch * r * r + i * r + j]
    return y


def test_pixel_shuffle(device):
    check_op([(2, 8, 2, 3)], lambda x: F.pixel_shuffle(x, 2), lambda x: np_pixel_shuffle(x, 2),
             device=device)
    check_op([(1, 2, 4, 6)], lambda x: F.pixel_unshuffle(x, 2), lambda x: _np_unshuffle(x, 2),
             device=device)
    x = clgrad.randn(1, 9, 2, 2, device=device)
    assert np.array_equal(F.pixel_unshuffle(F.pixel_shuffle(x, 3), 3).numpy(), x.numpy())


def _np_unshuffle(x, r):
    n, c, h, w = x.shape
    y = np.zeros((n, c * r * r, h // r, w // r))
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                y[:, ch * r * r + i * r + j] = x[:, ch, i::r, j::r]
    return y


def test_pool_errors(device):
    x = clgrad.zeros(1, 1, 4, 4, device=device)
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(RuntimeError, match="Expected 3D or 4D"):
        F.max_pool2d(clgrad.zeros(4, 4, device=device), 2)
    with pytest.raises(RuntimeError, match="divisor must be not zero"):
        F.avg_pool2d(x, 2, divisor_override=0)


@pytest.mark.parametrize("fn", [
    lambda x: F.max_pool2d(x, 3, 2, 1),
    lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    lambda x: F.adaptive_max_pool2d(x, (3, 2)),
    lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"),
    lambda x: F.interpolate(x, size=(7, 3), mode="nearest"),
], ids=["max", "avg", "adaptive_max", "bilinear", "nearest"])
def test_double_backward(fp64, fn):
    # each backward is itself a recorded op, so gradients of gradients exist (here: for the
    # incoming gradient, the only input the first gradient depends on)
    rng = np.random.default_rng(8)
    x = clgrad.tensor(rng.standard_normal((1, 2, 5, 4)), device=fp64, requires_grad=True)
    go = clgrad.tensor(rng.standard_normal(tuple(fn(x).shape)), device=fp64, requires_grad=True)

    def first(go):
        with clgrad.enable_grad():
            return clgrad.autograd.grad(fn(x), x, go, create_graph=True)[0]

    assert gradcheck(first, [go], atol=1e-5)


# ---- modules -------------------------------------------------------------------------------------
nn = pytest.importorskip("clgrad.nn", reason="clgrad.nn (Module) is not importable")


def test_pool_modules(device):
    rng = np.random.default_rng(6)
    xn = rng.standard_normal((2, 3, 7, 6))
    x = clgrad.tensor(xn, device=device)
    np.testing.assert_allclose(nn.MaxPool2d(3, 2, 1)(x).numpy(),
                               _max2d_ref(xn, dict(kernel_size=3, stride=2, padding=1))[0])
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert idx.dtype is clgrad.int64
    np.testing.assert_allclose(nn.MaxUnpool2d(2)(y, idx, output_size=x.shape).numpy(),
                               F.max_unpool2d(y, idx, 2, output_size=(7, 6)).numpy())
    np.testing.assert_allclose(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)(x)
                               .numpy(), np_avg_pool(xn, (3, 3), (2, 2), (1, 1), True, False),
                               atol=1e-12)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d((3, None))(x).numpy(),
                               np_adaptive_avg(xn, 3, 6), atol=1e-12)
    assert nn.AdaptiveMaxPool2d(2)(x).shape == (2, 3, 2, 2)
    x1 = clgrad.tensor(xn[:, :, 0], device=device)
    assert nn.MaxPool1d(2)(x1).shape == (2, 3, 3)
    assert nn.AvgPool1d(3, 1, 1)(x1).shape == (2, 3, 6)
    assert nn.AdaptiveAvgPool1d(4)(x1).shape == (2, 3, 4)
    for m in (nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.MaxUnpool2d(2),
              nn.Upsample(scale_factor=2), nn.PixelShuffle(2)):
        assert m.state_dict() == {} or len(m.state_dict()) == 0
    assert repr(nn.MaxPool2d(2)) == ("MaxPool2d(kernel_size=2, stride=2, padding=0, "
                                     "dilation=1, ceil_mode=False)")


def test_upsampling_modules(device):
    rng = np.random.default_rng(7)
    xn = rng.standard_normal((1, 4, 3, 2))
    x = clgrad.tensor(xn, device=device)
    np.testing.assert_allclose(nn.Upsample(scale_factor=2)(x).numpy(),
                               np_interp(xn, None, 2, "nearest", None))
    np.testing.assert_allclose(
        nn.Upsample(size=(5, 4), mode="bilinear", align_corners=True)(x).numpy(),
        np_interp(xn, (5, 4), None, "bilinear", True), atol=1e-12)
    np.testing.assert_allclose(nn.UpsamplingBilinear2d(scale_factor=2)(x).numpy(),
                               np_interp(xn, (6, 4), None, "bilinear", True), atol=1e-12)
    np.testing.assert_allclose(nn.PixelShuffle(2)(x).numpy(), np_pixel_shuffle(xn, 2))
    np.testing.assert_allclose(nn.PixelUnshuffle(2)(nn.PixelShuffle(2)(x)).numpy(), xn)
    assert repr(nn.Upsample(scale_factor=2)) == "Upsample(scale_factor=2.0, mode='nearest')"
