"""Convolutions (conv1d/2d, conv_transpose1d/2d, padding modes) against numpy references written
from the defining sums, gradients by gradcheck, and the Conv modules."""
import math

import numpy as np
import pytest

import clgrad
from clgrad.nn import functional as F
from clgrad.autograd import gradcheck
from clgrad.runtime import memory
from tests.helpers import check_op

# ---- numpy references ------------------------------------------------------------------------


def _pairs(v, nd):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


def np_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation by its definition: one strided slice of the padded input per tap."""
    nd = x.ndim - 2
    s, d = _pairs(stride, nd), _pairs(dilation, nd)
    k = w.shape[2:]
    if padding == "same":
        tot = [dd * (kk - 1) for dd, kk in zip(d, k)]
        pads = [(t // 2, t - t // 2) for t in tot]
    elif padding == "valid":
        pads = [(0, 0)] * nd
    else:
        pads = [(p, p) for p in _pairs(padding, nd)]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    out = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
    N, C = x.shape[:2]
    OC = w.shape[0]
    cg, og = C // groups, OC // groups
    y = np.zeros((N, OC, *out))
    for tap in np.ndindex(*k):
        sl = tuple(slice(t * dd, t * dd + ss * (o - 1) + 1, ss)
                   for t, dd, ss, o in zip(tap, d, s, out))
        patch = xp[(slice(None), slice(None)) + sl]
        for g in range(groups):
            wt = w[(slice(g * og, (g + 1) * og), slice(None)) + tap]             # (og, cg)
            y[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...",
                                                   patch[:, g * cg:(g + 1) * cg], wt)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * nd)
    return y


def np_conv_transpose(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                      dilation=1):
    """Transposed convolution by scattering each input pixel's contribution, then cropping."""
    nd = x.ndim - 2
    s, p, op, d = (_pairs(v, nd) for v in (stride, padding, output_padding, dilation))
    N, Cin = x.shape[:2]
    cog = w.shape[1]
    k = w.shape[2:]
    cig = Cin // groups
    full = [(n - 1) * ss + dd * (kk - 1) + 1 + oo for n, ss, dd, kk, oo in
            zip(x.shape[2:], s, d, k, op)]
    y = np.zeros((N, cog * groups, *full))
    for pos in np.ndindex(*x.shape[2:]):
        for tap in np.ndindex(*k):
            at = tuple(i * ss + t * dd for i, ss, t, dd in zip(pos, s, tap, d))
            for g in range(groups):
                xi = x[(slice(None), slice(g * cig, (g + 1) * cig)) + pos]          # (N, cig)
                wt = w[(slice(g * cig, (g + 1) * cig), slice(None)) + tap]         # (cig, cog)
                y[(slice(None), slice(g * cog, (g + 1) * cog)) + at] += xi @ wt
    crop = tuple(slice(pp, f - pp) for pp, f in zip(p, full))
    y = y[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * nd)
    return y


_NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap", "zeros": "constant"}


def np_pad(x, pads, mode):
    nd = len(pads) // 2
    width = [(0, 0)] * (x.ndim - nd) + [(pads[2 * i], pads[2 * i + 1])
                                          for i in reversed(range(nd))]
    return np.pad(x, width, mode=_NP_MODE[mode])


# ---- conv2d / conv1d -----------------------------------------------------------------------------
# (x shape, weight shape, bias?, kwargs): tiny, so gradcheck's central differences stay quick
CONV2D = [
    ((1, 2, 4, 4), (3, 2, 2, 2), True, {}),
    ((2, 2, 5, 4), (2, 2, 3, 3), True, dict(stride=2, padding=1)),
    ((1, 2, 5, 6), (2, 2, 2, 3), False, dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))),
    ((1, 4, 4, 4), (4, 2, 2, 2), True, dict(groups=2)),
    ((1, 3, 4, 4), (3, 1, 3, 3), True, dict(groups=3, padding=1)),                # depthwise
    ((1, 2, 4, 5), (6, 1, 2, 2), False, dict(groups=2, stride=2, dilation=2, padding=1)),
    ((1, 2, 4, 4), (2, 2, 3, 2), True, dict(padding="same")),
    ((1, 2, 5, 4), (2, 2, 2, 2), True, dict(padding="same", dilation=(2, 1))),
    ((1, 2, 6, 5), (3, 2, 3, 3), True, dict(padding="valid")),
    ((2, 3, 3, 3), (2, 3, 1, 1), True, {}),
    ((1, 2, 1, 5), (2, 2, 1, 3), True, dict(stride=3, padding=(0, 2))),
    ((3, 4, 4), (2, 3, 2, 2), True, {}),                                          # unbatched
    # batches > 1 with groups: the weight gradient folds the batch into its GEMM's k
    ((3, 4, 5, 4), (6, 2, 2, 3), True, dict(groups=2, stride=(1, 2), padding=1, dilation=(2, 1))),
    ((2, 3, 4, 4), (3, 1, 3, 3), False, dict(groups=3, padding=1)),               # depthwise
]


@pytest.mark.parametrize("xs,ws,bias,kw", CONV2D, ids=[f"{c[0]}{c[3]}" for c in CONV2D])
def test_conv2d(device, xs, ws, bias, kw):
    shapes = [xs, ws] + ([(ws[0],)] if bias else [])
    if len(xs) == 3:
        ref = lambda x, w, *b: np_conv(x[None], w, *b, **kw)[0]
    else:
        ref = lambda x, w, *b: np_conv(x, w, *b, **kw)
    check_op(shapes, lambda x, w, *b: F.conv2d(x, w, *b, **kw), ref, device=device, atol=1e-5)


CONV1D = [
    ((2, 2, 6), (3, 2, 3), True, {}),
    ((1, 2, 11), (3, 2, 2), True, dict(stride=2, padding=1, dilation=2)),
    ((1, 3, 6), (3, 1, 3), False, dict(groups=3, padding="same")),
    ((1, 4, 9), (2, 2, 2), True, dict(groups=2, padding="same", dilation=3)),
    ((2, 7), (3, 2, 3), True, dict(padding=1)),                                   # unbatched
]


@pytest.mark.parametrize("xs,ws,bias,kw", CONV1D, ids=[f"{c[0]}{c[3]}" for c in CONV1D])
def test_conv1d(device, xs, ws, bias, kw):
    shapes = [xs, ws] + ([(ws[0],)] if bias else [])
    if len(xs) == 2:
        ref = lambda x, w, *b: np_conv(x[None], w, *b, **kw)[0]
    else:
        ref = lambda x, w, *b: np_conv(x, w, *b, **kw)
    check_op(shapes, lambda x, w, *b: F.conv1d(x, w, *b, **kw), ref, device=device, atol=1e-5)


CONVT2D = [
    ((1, 2, 3, 3), (2, 3, 2, 2), True, {}),
    ((1, 2, 3, 2), (2, 2, 3, 3), True, dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 2, 3), (4, 1, 2, 3), False, dict(stride=(2, 1), groups=2, dilation=(1, 2),
                                             output_padding=(1, 0))),
    ((2, 2, 2, 2), (2, 2, 3, 2), True, dict(stride=3, padding=(1, 0), output_padding=2)),
]


@pytest.mark.parametrize("xs,ws,bias,kw", CONVT2D, ids=[f"{c[0]}{c[3]}" for c in CONVT2D])
def test_conv_transpose2d(device, xs, ws, bias, kw):
    shapes = [xs, ws] + ([(ws[1] * kw.get("groups", 1),)] if bias else [])
    check_op(shapes, lambda x, w, *b: F.conv_transpose2d(x, w, *b, **kw),
             lambda x, w, *b: np_conv_transpose(x, w, *b, **kw), device=device, atol=1e-5)


CONVT1D = [
    ((2, 2, 3), (2, 3, 3), True, dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 3), (4, 2, 2), True, dict(groups=2, dilation=2, output_padding=1)),
]


@pytest.mark.parametrize("xs,ws,bias,kw", CONVT1D, ids=[str(c[3]) for c in CONVT1D])
def test_conv_transpose1d(device, xs, ws, bias, kw):
    shapes = [xs, ws] + ([(ws[1] * kw.get("groups", 1),)] if bias else [])
    check_op(shapes, lambda x, w, *b: F.conv_transpose1d(x, w, *b, **kw),
             lambda x, w, *b: np_conv_transpose(x, w, *b, **kw), device=device, atol=1e-5)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "zeros"])
def test_pad_modes(device, mode):
    check_op([(2, 2, 3, 4)], lambda x: F.pad_spatial(x, (2, 1, 1, 2), mode),
             lambda x: np_pad(x, (2, 1, 1, 2), mode), device=device)
    check_op([(2, 3, 4)], lambda x: F.pad_spatial(x, (3, 2), mode),
             lambda x: np_pad(x, (3, 2), mode), device=device)


def test_conv_larger_forward_float32(device):
    # a size where the GEMM spans several tiles, forward only (gradients are checked above)
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((3, 5, 17, 13)), rng.standard_normal((7, 5, 3, 3)), \
        rng.standard_normal(7)
    got = F.conv2d(clgrad.tensor(x, dtype=clgrad.float32, device=device),
                   clgrad.tensor(w, dtype=clgrad.float32, device=device),
                   clgrad.tensor(b, dtype=clgrad.float32, device=device), stride=2, padding=2)
    np.testing.assert_allclose(got.numpy(), np_conv(x, w, b, stride=2, padding=2), atol=1e-4,
                               rtol=1e-4)


@pytest.mark.parametrize("hw", [(13, 11), (7, 5)], ids=["batched-gemm", "folded-k"])
def test_conv_weight_grad_batched_float32(device, hw):
    # a batch of 9 with groups: 13x11 images take the batched GEMM and sum (L > Cg*KH*KW),
    # 7x5 ones the single GEMM whose k runs over (batch, pixel)
    rng = np.random.default_rng(5)
    H, W = hw
    OH, OW = (H - 5) // 2 + 1, W
    x, w = rng.standard_normal((9, 4, H, W)), rng.standard_normal((6, 2, 5, 3))
    go = rng.standard_normal((9, 6, OH, OW))
    cx = clgrad.tensor(x, dtype=clgrad.float32, device=device, requires_grad=True)
    cw = clgrad.tensor(w, dtype=clgrad.float32, device=device, requires_grad=True)
    y = F.conv2d(cx, cw, groups=2, stride=(2, 1), padding=(0, 1))
    y.backward(clgrad.tensor(go, dtype=clgrad.float32, device=device))
    want = np.zeros_like(w)
    for g in range(2):                        # dW[o, c, i, j] = sum go[n, o] * x[n, c] shifted
        xg = np.pad(x[:, 2 * g:2 * g + 2], ((0, 0), (0, 0), (0, 0), (1, 1)))
        for i in range(5):
            for j in range(3):
                patch = xg[:, :, i:i + 2 * OH - 1:2, j:j + OW]            # (N, 2, OH, OW)
                want[3 * g:3 * g + 3, :, i, j] = np.einsum("nohw,nchw->oc",
                                                           go[:, 3 * g:3 * g + 3], patch)
    np.testing.assert_allclose(cw.grad.numpy(), want, atol=1e-3, rtol=1e-4)


def test_double_backward(fp64):
    # the input gradient of a convolution is itself differentiable (a transposed convolution)
    rng = np.random.default_rng(4)
    x = clgrad.tensor(rng.standard_normal((1, 2, 4, 3)), device=fp64, requires_grad=True)
    w = clgrad.tensor(rng.standard_normal((2, 2, 2, 2)), device=fp64, requires_grad=True)
    go = clgrad.tensor(rng.standard_normal((1, 2, 3, 2)), device=fp64, requires_grad=True)

    def input_grad(x, w, go):
        with clgrad.enable_grad():
            y = F.conv2d(x, w, padding=(1, 0), stride=(2, 1))
            return clgrad.autograd.grad(y, [x, w], go, create_graph=True)

    assert gradcheck(input_grad, [x, w, go], atol=1e-5)

    gy = clgrad.tensor(rng.standard_normal((1, 2, 6, 4)), device=fp64, requires_grad=True)

    def transposed_grad(go, w, gy):
        with clgrad.enable_grad():
            y = F.conv_transpose2d(go, w, stride=2)                     # (1, 2, 6, 4)
            return clgrad.autograd.grad(y, [go, w], gy, create_graph=True)

    assert gradcheck(transposed_grad, [go, w, gy], atol=1e-5)

    # a batch with groups: the folded-k weight gradient's own adjoint
    x = clgrad.tensor(rng.standard_normal((2, 4, 4, 3)), device=fp64, requires_grad=True)
    w = clgrad.tensor(rng.standard_normal((2, 2, 2, 2)), device=fp64, requires_grad=True)
    go = clgrad.tensor(rng.standard_normal((2, 2, 3, 2)), device=fp64, requires_grad=True)

    def grouped_grad(x, w, go):
        with clgrad.enable_grad():
            y = F.conv2d(x, w, groups=2)
            return clgrad.autograd.grad(y, [x, w], go, create_graph=True)

    assert gradcheck(grouped_grad, [x, w, go], atol=1e-5)


def test_no_host_round_trips(device):
    x = clgrad.randn(2, 3, 8, 8, device=device, requires_grad=True)
    w = clgrad.randn(4, 3, 3, 3, device=device, requires_grad=True)
    b = clgrad.randn(4, device=device, requires_grad=True)
    F.conv2d(x, w, b, padding=1).sum().backward()          # builds the kernels
    memory.reset_stats()
    F.conv2d(x, w, b, stride=2, padding=1, groups=1).sum().backward()
    st = memory.stats()
    assert st["d2h"] == 0 and st["h2d"] == 0, st
    assert st["launches"] > 0


def test_col2im_deterministic(device):
    # overlapping windows: every run must give bit-identical gradients
    rng = np.random.default_rng(5)
    x = clgrad.tensor(rng.standard_normal((2, 3, 9, 9)), dtype=clgrad.float32, device=device,
                      requires_grad=True)
    w = clgrad.tensor(rng.standard_normal((4, 3, 3, 3)), dtype=clgrad.float32, device=device)
    grads = []
    for _ in range(3):
        x.grad = None
        F.conv2d(x, w, stride=1, padding=2, dilation=2).sum().backward()
        grads.append(x.grad.numpy())
    assert all(np.array_equal(grads[0], g) for g in grads[1:])


def test_empty_batch(device):
    x = clgrad.randn(0, 3, 5, 5, device=device, requires_grad=True)
    w = clgrad.randn(4, 3, 3, 3, device=device, requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (0, 4, 5, 5)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 5, 5) and np.all(w.grad.numpy() == 0)
    assert F.conv_transpose2d(y, w).shape == (0, 3, 7, 7)


def test_conv_errors(device):
    x = clgrad.randn(1, 4, 5, 5, device=device)
    with pytest.raises(RuntimeError, match="to have 3 channels, but got 4 channels"):
        F.conv2d(x, clgrad.randn(2, 3, 3, 3, device=device))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input"):
        F.conv2d(x, clgrad.randn(2, 4, 6, 6, device=device))
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        F.conv2d(x, clgrad.randn(2, 4, 3, 3, device=device), stride=2, padding="same")
    with pytest.raises(RuntimeError, match="Expected 3D \\(unbatched\\) or 4D"):
        F.conv2d(clgrad.randn(5, 5, device=device), clgrad.randn(2, 4, 3, 3, device=device))
    with pytest.raises(RuntimeError, match="output padding must be smaller"):
        F.conv_transpose2d(x, clgrad.randn(4, 2, 3, 3, device=device), stride=2,
                           output_padding=2)
    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        F.pad_spatial(x, (5, 5, 0, 0), "reflect")


def test_top_level_exports():
    for name in ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d",
                 "max_pool2d", "avg_pool1d", "adaptive_avg_pool1d", "adaptive_max_pool1d",
                 "pixel_shuffle", "pixel_unshuffle"):
        assert getattr(clgrad, name) is getattr(F, name)


# ---- modules -------------------------------------------------------------------------------------
nn = pytest.importorskip("clgrad.nn", reason="clgrad.nn (Module) is not importable")


def _np(t):
    return t.detach().numpy().astype(np.float64)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_module_padding_modes(device, mode):
    clgrad.manual_seed(0)
    m = nn.Conv2d(2, 3, (3, 2), padding=(2, 1), padding_mode=mode, device=device,
                  dtype=clgrad.float64)
    x = clgrad.randn(1, 2, 4, 5, device=device, dtype=clgrad.float64, requires_grad=True)
    ref = np_conv(np_pad(_np(x), (1, 1, 2, 2), mode), _np(m.weight), _np(m.bias))
    np.testing.assert_allclose(_np(m(x)), ref, atol=1e-12)
    if device.has_fp64:
        assert gradcheck(lambda t: m(t), [x], atol=1e-5)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_conv_module_same_padding_modes(device, mode):
    # 'same' with an even kernel pads one more on the right, in every padding mode
    clgrad.manual_seed(1)
    m = nn.Conv1d(2, 2, 4, padding="same", dilation=1, padding_mode=mode, device=device)
    x = clgrad.randn(2, 2, 6, device=device)
    ref = np_conv(np_pad(_np(x), (1, 2), mode), _np(m.weight), _np(m.bias))
    np.testing.assert_allclose(_np(m(x)), ref, atol=1e-5, rtol=1e-4)
    assert m(x).shape == (2, 2, 6)


def test_conv_transpose_module(device):
    clgrad.manual_seed(2)
    m = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, device=device)
    assert tuple(m.weight.shape) == (4, 3, 3, 3)
    x = clgrad.randn(2, 4, 3, 3, device=device)
    y = m(x)
    assert y.shape == (2, 6, 5, 5)
    np.testing.assert_allclose(_np(y), np_conv_transpose(_np(x), _np(m.weight), _np(m.bias),
                                                         stride=2, padding=1, groups=2),
                               atol=1e-5, rtol=1e-4)
    assert m(x, output_size=(6, 6)).shape == (2, 6, 6, 6)
    with pytest.raises(ValueError, match="requested an output size"):
        m(x, output_size=(8, 8))
    m1 = nn.ConvTranspose1d(2, 3, 3, stride=2, output_padding=1, device=device)
    assert m1(clgrad.randn(1, 2, 4, device=device)).shape == (1, 3, 10)


MODULE_KEYS = [
    (lambda d: nn.Conv1d(3, 4, 3, device=d), ["weight", "bias"], (4, 3, 3)),
    (lambda d: nn.Conv2d(3, 4, (3, 2), bias=False, device=d), ["weight"], (4, 3, 3, 2)),
    (lambda d: nn.Conv2d(4, 6, 3, groups=2, device=d), ["weight", "bias"], (6, 2, 3, 3)),
    (lambda d: nn.ConvTranspose1d(3, 4, 3, device=d), ["weight", "bias"], (3, 4, 3)),
    (lambda d: nn.ConvTranspose2d(4, 6, 2, groups=2, device=d), ["weight", "bias"],
     (4, 3, 2, 2)),
]


@pytest.mark.parametrize("make_m,keys,wshape", MODULE_KEYS)
def test_conv_module_state_dict(device, make_m, keys, wshape):
    m = make_m(device)
    sd = m.state_dict()
    assert list(sd.keys()) == keys
    assert tuple(sd["weight"].shape) == wshape


def test_conv_default_init_bounds(device):
    # PyTorch: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in)), with
    # fan_in = weight.size(1) * prod(kernel) (for transposed convs too: PyTorch's convention)
    clgrad.manual_seed(3)
    for m, fan_in in ((nn.Conv2d(8, 64, 3, device=device), 8 * 9),
                      (nn.Conv1d(6, 128, 5, groups=2, device=device), 3 * 5),
                      (nn.ConvTranspose2d(16, 32, 3, groups=2, device=device), 16 * 9)):
        bound = 1 / math.sqrt(fan_in)
        w, b = _np(m.weight), _np(m.bias)
        assert np.abs(w).max() <= bound + 1e-7 and np.abs(b).max() <= bound + 1e-7
        assert np.abs(w).max() > 0.9 * bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound
        assert abs(w.mean()) < 0.1 * bound


def test_conv_module_repr_and_errors(device):
    m = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False, padding_mode="reflect",
                  device=device)
    assert repr(m) == ("Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), "
                       "bias=False, padding_mode=reflect)")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 6, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        nn.Conv2d(3, 6, 3, stride=2, padding="same")


def test_lenet_overfits_tiny_batch(device):
    missing = [n for n in ("ReLU", "Flatten", "Sequential", "Linear") if not hasattr(nn, n)]
    if missing:
        pytest.skip(f"clgrad.nn lacks {missing} (another helper's modules) on this branch")

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84),
                nn.ReLU(), nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    clgrad.manual_seed(0)
    model = LeNet().to(device)
    rng = np.random.default_rng(0)
    x = clgrad.tensor(rng.standard_normal((8, 1, 28, 28)), dtype=clgrad.float32, device=device)
    onehot = np.eye(10)[rng.integers(0, 10, 8)]
    target = clgrad.tensor(onehot, dtype=clgrad.float32, device=device)
    losses = []
    for _ in range(80):
        for p in model.parameters():
            p.grad = None
        diff = model(x) - target
        loss = (diff * diff).sum() / 8            # squared error per sample: plain SGD, no optim
        loss.backward()
        with clgrad.no_grad():
            for p in model.parameters():
                p -= 0.05 * p.grad
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses[::10]


@pytest.mark.parametrize("shape,cin", [((4, 1, 12, 12), 1), ((4, 3, 6, 6), 3)],
                         ids=["batched-cols", "folded-cols"])
def test_conv_bias_epilogue_and_kept_columns(device, shape, cin):
    """The forward adds the bias in its GEMM (im2col + one GEMM) and keeps its columns for the
    weight gradient: the same gradients as with create_graph (which recomputes them
    differentiably), and both against numpy."""
    rng = np.random.default_rng(3)
    xa = rng.standard_normal(shape).astype(np.float32)
    wa = rng.standard_normal((5, cin, 3, 3)).astype(np.float32)
    ba = rng.standard_normal(5).astype(np.float32)
    ga = rng.standard_normal((shape[0], 5, shape[2] - 2, shape[3] - 2)).astype(np.float32)
    grads = []
    for create_graph in (False, True):
        x, w, b = (clgrad.tensor(a, device=device, requires_grad=True) for a in (xa, wa, ba))
        y = F.conv2d(x, w, b)
        assert y.grad_fn.name() == "ConvolutionBackward0"
        np.testing.assert_allclose(y.detach().numpy(), np_conv(xa, wa, ba), rtol=1e-4,
                                   atol=1e-4)
        gs = clgrad.autograd.grad(y, (x, w, b), clgrad.tensor(ga, device=device),
                                  create_graph=create_graph)
        grads.append([t.detach().numpy() for t in gs])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[0][2], ga.sum((0, 2, 3)), rtol=1e-4, atol=1e-4)


def test_conv_launches_per_step(device):
    """Forward: im2col and one GEMM with the bias; backward: the bias reduction, the input
    gradient's GEMM and col2im, the weight gradient's copy of g and GEMM (the forward's columns
    are reused)."""
    x = clgrad.randn(8, 6, 12, 12, device=device, requires_grad=True)
    w = clgrad.randn(16, 6, 5, 5, device=device, requires_grad=True)
    b = clgrad.randn(16, device=device, requires_grad=True)
    g = clgrad.randn(8, 16, 8, 8, device=device)
    F.conv2d(x, w, b).backward(g)                          # builds the kernels
    x.grad = w.grad = b.grad = None
    memory.reset_stats()
    y = F.conv2d(x, w, b)
    assert memory.stats()["launches"] == 2
    y.backward(g)
    assert memory.stats()["launches"] <= 7


def test_pointwise_conv_skips_im2col_and_col2im(device):
    """A 1x1 convolution at stride 1 without padding reads its input as the GEMM's operand: the
    forward is one GEMM (bias in its epilogue), the input gradient one GEMM and no col2im."""
    rng = np.random.default_rng(4)
    xa = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    wa = rng.standard_normal((7, 4, 1, 1)).astype(np.float32)
    ba = rng.standard_normal(7).astype(np.float32)
    ga = rng.standard_normal((3, 7, 5, 6)).astype(np.float32)
    x, w, b = (clgrad.tensor(a, device=device, requires_grad=True) for a in (xa, wa, ba))
    F.conv2d(x, w, b)
    memory.reset_stats()
    y = F.conv2d(x, w, b)
    if clgrad.runtime.gemm.family_for(device, x.dtype) == "cpu":
        assert memory.stats()["launches"] == 1
    np.testing.assert_allclose(y.detach().numpy(), np_conv(xa, wa, ba), rtol=1e-4, atol=1e-4)
    y.backward(clgrad.tensor(ga, device=device))
    np.testing.assert_allclose(x.grad.numpy(), np.einsum("nohw,oc->nchw", ga, wa[:, :, 0, 0]),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w.grad.numpy()[:, :, 0, 0],
                               np.einsum("nohw,nchw->oc", ga, xa), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.grad.numpy(), ga.sum((0, 2, 3)), rtol=1e-4, atol=1e-4)
