"""interpolate(mode='nearest-exact') in 1-D, 2-D and 3-D (and 3-D 'nearest'), and the window
kernels on integer tensors (max pooling, adaptive max pooling, nearest resizing, int64 average
pooling), against float64/integer numpy references, gradcheck, and torch where installed."""
import math

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

INT_DTYPES = ["int64", "int32", "int16", "int8", "uint8"]


def _nearest_matrix(n, o, scale, exact):
    """(o, n) 0/1 matrix: output i reads input min(floor((i [+ 0.5]) * step), n - 1), in float32
    arithmetic like PyTorch's kernels."""
    m = np.zeros((o, n))
    step = np.float32(1.0 / scale) if scale else np.float32(n / o)
    for i in range(o):
        src = (np.float32(i) + np.float32(0.5 if exact else 0.0)) * step
        m[i, min(int(np.floor(src)), n - 1)] = 1
    return m


def np_nearest(x, size, scale, exact):
    nd = x.ndim - 2
    mats = []
    for i in range(nd):
        n = x.shape[2 + i]
        sc = None if scale is None else (scale if isinstance(scale, tuple) else (scale,) * nd)[i]
        o = (size if isinstance(size, tuple) else (size,) * nd)[i] if size is not None \
            else int(math.floor(n * sc))
        mats.append(_nearest_matrix(n, o, sc, exact))
    spec = {1: "ncw,ow->nco", 2: "nchw,ph,qw->ncpq", 3: "ncdhw,pd,qh,rw->ncpqr"}[nd]
    return np.einsum(spec, x, *mats)


CASES = [
    ((2, 3, 7), dict(size=4)),
    ((1, 2, 5), dict(scale_factor=2.3)),
    ((1, 2, 5, 6), dict(scale_factor=1.7)),
    ((1, 2, 6, 5), dict(size=(4, 9))),
    ((2, 1, 5, 4), dict(scale_factor=(0.6, 2.5))),
    ((1, 2, 3, 4, 5), dict(scale_factor=(2.0, 0.6, 1.5))),
    ((1, 1, 4, 3, 5), dict(size=(3, 5, 2))),
]


@pytest.mark.parametrize("shape,kw", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
@pytest.mark.parametrize("mode", ["nearest-exact", "nearest"])
def test_nearest_modes(device, shape, kw, mode):
    exact = mode == "nearest-exact"
    check_op([shape], lambda x: F.interpolate(x, mode=mode, **kw),
             lambda x: np_nearest(x, kw.get("size"), kw.get("scale_factor"), exact),
             device=device)


def test_upsample_module_nearest_exact(device):
    x = clgrad.arange(12.0, device=device).reshape(1, 1, 3, 4)
    m = nn.Upsample(scale_factor=1.5, mode="nearest-exact")
    want = np_nearest(x.numpy().astype(np.float64), None, 1.5, True)
    np.testing.assert_array_equal(m(x).numpy(), want)
    assert "nearest-exact" in repr(m)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_nearest_integer(device, dtype, mode):
    rng = np.random.default_rng(1)
    for shape, kw in CASES[::2]:
        a = rng.integers(0 if dtype == "uint8" else -100, 100, size=shape).astype(dtype)
        y = F.interpolate(clgrad.tensor(a, device=device), mode=mode, **kw)
        assert y.dtype.name == dtype
        want = np_nearest(a.astype(np.float64), kw.get("size"), kw.get("scale_factor"),
                          mode == "nearest-exact")
        np.testing.assert_array_equal(y.numpy(), want.astype(dtype))


def _np_max_pool2d(x, k, s, p):
    """(values, flat plane indices) of 2-D max pooling (first maximum wins)."""
    H, W = x.shape[-2:]
    OH, OW = ((n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip((H, W), k, s, p))
    vals = np.zeros(x.shape[:-2] + (OH, OW), x.dtype)
    idx = np.zeros(vals.shape, np.int64)
    for i in range(OH):
        for j in range(OW):
            hs = [h for h in range(i * s[0] - p[0], i * s[0] - p[0] + k[0]) if 0 <= h < H]
            ws = [w for w in range(j * s[1] - p[1], j * s[1] - p[1] + k[1]) if 0 <= w < W]
            flat = np.array([h * W + w for h in hs for w in ws])
            block = x[..., hs, :][..., ws].reshape(x.shape[:-2] + (-1,))
            a = block.argmax(-1)
            vals[..., i, j] = block.max(-1)
            idx[..., i, j] = flat[a]
    return vals, idx


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_max_pool_integer(device, dtype):
    rng = np.random.default_rng(2)
    lo, hi = (0, 255) if dtype == "uint8" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    a = rng.integers(lo, hi, size=(2, 3, 7, 6), endpoint=True).astype(dtype)
    a[0, 0] = np.iinfo(dtype).min                   # a window of only the lowest value
    x = clgrad.tensor(a, device=device)
    want, want_i = _np_max_pool2d(a, (3, 2), (2, 2), (1, 1))
    y, i = F.max_pool2d(x, (3, 2), (2, 2), (1, 1), return_indices=True)
    assert y.dtype.name == dtype and i.dtype is clgrad.int64
    np.testing.assert_array_equal(y.numpy(), want)
    np.testing.assert_array_equal(i.numpy(), want_i)
    # 1-D: the length is the plane's one row
    y1, i1 = F.max_pool1d(x[:, 0, 0], 2, return_indices=True)
    w1, wi1 = _np_max_pool2d(a[:, 0, :1], (1, 2), (1, 2), (0, 0))
    np.testing.assert_array_equal(y1.numpy(), w1[:, 0])
    np.testing.assert_array_equal(i1.numpy(), wi1[:, 0])
    # 3-D with a depth window of 1 is the 2-D pool per slice
    y3 = F.max_pool3d(x, (1, 3, 2), (1, 2, 2), (0, 1, 1))
    np.testing.assert_array_equal(y3.numpy(), want)
    # adaptive to a 1x1 output is the global maximum
    ya = F.adaptive_max_pool2d(x, 1)
    np.testing.assert_array_equal(ya.numpy()[..., 0, 0], a.max((-2, -1)))
    # a module and non-contiguous input
    ym = nn.MaxPool2d(2)(x.transpose(-2, -1))
    np.testing.assert_array_equal(ym.numpy(), _np_max_pool2d(a.swapaxes(-2, -1), (2, 2),
                                                              (2, 2), (0, 0))[0])


def test_avg_pool_integer_follows_torch(device):
    a = np.array([[[-7, 0, 1, 2, 5, 6, 9]]], np.int64)
    x = clgrad.tensor(a, device=device)
    y = F.avg_pool1d(x, 2)
    assert y.dtype is clgrad.int64
    np.testing.assert_array_equal(y.numpy(), [[[-3, 1, 5]]])      # truncated toward zero
    np.testing.assert_array_equal(F.avg_pool1d(x, 3, padding=1).numpy(), [[[-2, 2, 5]]])
    for dt in ("int32", "int16", "int8", "uint8"):
        with pytest.raises(NotImplementedError, match="avg_pool1d"):
            F.avg_pool1d(x.to(getattr(clgrad, dt)), 2)
    with pytest.raises(NotImplementedError, match="adaptive_avg_pool2d"):
        F.adaptive_avg_pool2d(x.reshape(1, 1, 7), 2)
    with pytest.raises(NotImplementedError, match="avg_pool3d"):
        F.avg_pool3d(x.reshape(1, 1, 1, 1, 7), 1)
    b = clgrad.tensor(a > 0, device=device)
    with pytest.raises(NotImplementedError, match="Bool"):
        F.max_pool1d(b, 2)
    with pytest.raises(NotImplementedError, match="Bool"):
        F.interpolate(b, scale_factor=2)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_torch_parity(device):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 4, 5, 6))
    for mode in ("nearest", "nearest-exact"):
        for kw in (dict(scale_factor=(1.5, 0.7, 2.2)), dict(size=(3, 7, 4))):
            want = torch.nn.functional.interpolate(torch.tensor(a), mode=mode, **kw).numpy()
            got = F.interpolate(clgrad.tensor(a, device=device), mode=mode, **kw).numpy()
            np.testing.assert_array_equal(got, want)
        u8 = (a[:, :, 0] * 40 + 120).clip(0, 255).astype(np.uint8)
        want = torch.nn.functional.interpolate(torch.tensor(u8), scale_factor=1.7,
                                               mode=mode).numpy()
        got = F.interpolate(clgrad.tensor(u8, device=device), scale_factor=1.7, mode=mode)
        np.testing.assert_array_equal(got.numpy(), want)
    for dt in (np.int64, np.int32, np.int8, np.uint8):
        b = (a * 30).astype(dt)
        for fn in (lambda m, t: m.max_pool2d(t[:, :, 0], 3, 2, 1, return_indices=True),
                   lambda m, t: m.max_pool3d(t, 2, return_indices=True)):
            (ty, ti), (cy, ci) = fn(torch.nn.functional, torch.tensor(b)), \
                fn(F, clgrad.tensor(b, device=device))
            np.testing.assert_array_equal(cy.numpy(), ty.numpy())
            np.testing.assert_array_equal(ci.numpy(), ti.numpy())
    b = (a[:, :, 0] * 30).astype(np.int64)
    np.testing.assert_array_equal(
        F.avg_pool2d(clgrad.tensor(b, device=device), 3, 2, 1).numpy(),
        torch.nn.functional.avg_pool2d(torch.tensor(b), 3, 2, 1).numpy())
