"""Creation functions, random draws, and the ways out: numpy(), item(), tolist(), repr."""
import numpy as np
import pytest

import clgrad
from clgrad import runtime

ALL_DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def _dtypes(device):
    return [d for d in ALL_DTYPES if d != "float64" or device.has_fp64]


def _eq(t, want, dtype=None):
    got = t.numpy()
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if dtype is not None:
        assert t.dtype is getattr(clgrad, dtype) if dtype != "bool" else t.dtype is clgrad.bool
        assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


# ---- from host data ------------------------------------------------------------------------------
def test_tensor_infers_dtypes(device):
    assert clgrad.tensor([1.5, 2], device=device).dtype is clgrad.float32
    assert clgrad.tensor([1, 2], device=device).dtype is clgrad.int64
    assert clgrad.tensor([True, False], device=device).dtype is clgrad.bool
    assert clgrad.tensor(3, device=device).dtype is clgrad.int64
    assert clgrad.tensor(3.0, device=device).dtype is clgrad.float32
    assert clgrad.tensor([], device=device).dtype is clgrad.float32
    assert clgrad.tensor(np.zeros(2, np.int32), device=device).dtype is clgrad.int32
    assert clgrad.tensor(np.zeros(2, np.uint8), device=device).dtype is clgrad.uint8
    if device.has_fp64:
        assert clgrad.tensor(np.zeros(2), device=device).dtype is clgrad.float64
    assert clgrad.tensor([[1, 2], [3, 4]], device=device).shape == (2, 2)
    with pytest.raises(ValueError, match="rectangular"):
        clgrad.tensor([[1, 2], [3]], device=device)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_round_trip_every_dtype(device, dtype):
    if dtype == "float64" and not device.has_fp64:
        pytest.skip("no cl_khr_fp64")
    rng = np.random.default_rng(0)
    for shape in [(), (1,), (7,), (3, 5), (2, 0, 3), (2, 3, 4)]:
        if dtype == "bool":
            a = rng.random(shape) < 0.5
        elif np.dtype(dtype).kind == "f":
            a = rng.uniform(-100, 100, size=shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
        t = clgrad.tensor(a, dtype=dtype, device=device)
        assert t.shape == a.shape and t.numel() == a.size and t.ndim == a.ndim
        assert t.element_size() == a.itemsize
        _eq(t, a, dtype)
        assert t.tolist() == a.tolist()
        if a.size == 1:
            assert t.item() == a.reshape(()).item()
            assert type(t.item()) is type(a.reshape(()).item())


def test_tensor_copies_and_as_tensor_shares(device):
    a = np.arange(4, dtype=np.float32)
    t = clgrad.tensor(a, device=device)
    a[0] = 99
    assert t.numpy()[0] == 0
    assert clgrad.as_tensor(t) is t
    assert clgrad.as_tensor(t, dtype=clgrad.float32) is t
    assert clgrad.as_tensor(t, dtype=clgrad.int32).dtype is clgrad.int32
    _eq(clgrad.as_tensor([1, 2], device=device), [1, 2], "int64")
    c = clgrad.tensor(t, device=device)
    assert c._buf is not t._buf
    _eq(c, t.numpy())


def test_from_numpy(device):
    a = np.arange(6, dtype=np.int16).reshape(2, 3)[:, ::2]     # non-contiguous source
    t = clgrad.from_numpy(a, device=device)
    _eq(t, a, "int16")
    with pytest.raises(TypeError, match="expected np.ndarray"):
        clgrad.from_numpy([1, 2])
    with pytest.raises(TypeError, match="can't convert"):
        clgrad.from_numpy(np.array(["a"]))


# ---- filled --------------------------------------------------------------------------------------
def test_filled(device):
    for dtype in _dtypes(device):
        d = getattr(clgrad, dtype) if dtype != "bool" else clgrad.bool
        _eq(clgrad.zeros(2, 3, dtype=d, device=device), np.zeros((2, 3), dtype), dtype)
        _eq(clgrad.ones((4,), dtype=d, device=device), np.ones(4, dtype), dtype)
        _eq(clgrad.full((3, 1), 1, dtype=d, device=device), np.full((3, 1), 1, dtype), dtype)
        assert clgrad.empty(2, 5, dtype=d, device=device).shape == (2, 5)
    _eq(clgrad.zeros(device=device), np.zeros((), np.float32))
    _eq(clgrad.zeros(0, 4, device=device), np.zeros((0, 4), np.float32))
    _eq(clgrad.ones([2, 2], device=device), np.ones((2, 2), np.float32), "float32")
    # full infers its dtype from the value, as PyTorch does
    _eq(clgrad.full((2,), 7, device=device), [7, 7], "int64")
    _eq(clgrad.full((2,), 2.5, device=device), [2.5, 2.5], "float32")
    _eq(clgrad.full((2,), True, device=device), [True, True], "bool")
    _eq(clgrad.full((2,), 0.5, dtype=clgrad.bool, device=device), [True, True], "bool")
    _eq(clgrad.full((2,), -1.75, dtype=clgrad.int32, device=device), [-1, -1], "int32")
    with pytest.raises(RuntimeError, match="negative dimension"):
        clgrad.zeros(2, -1, device=device)


def test_like(device):
    x = clgrad.ones(2, 3, dtype=clgrad.int32, device=device)
    for fn, want in [(clgrad.zeros_like, 0), (clgrad.ones_like, 1)]:
        _eq(fn(x), np.full((2, 3), want, np.int32), "int32")
    _eq(clgrad.full_like(x, 4), np.full((2, 3), 4, np.int32), "int32")
    _eq(clgrad.zeros_like(x, dtype=clgrad.float32), np.zeros((2, 3), np.float32), "float32")
    e = clgrad.empty_like(x)
    assert e.shape == x.shape and e.dtype is x.dtype and e.device is x.device
    r = clgrad.rand_like(x, dtype=clgrad.float32)
    assert r.shape == (2, 3) and r.dtype is clgrad.float32
    assert clgrad.randn_like(r).dtype is clgrad.float32
    ri = clgrad.randint_like(x, 3, 5).numpy()
    assert ri.dtype == np.int32 and ri.min() >= 3 and ri.max() < 5
    assert clgrad.ones_like(x, requires_grad=False).requires_grad is False
    assert clgrad.zeros_like(r, requires_grad=True).requires_grad is True


# ---- ranges --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,kw", [
    ((5,), {}), ((0,), {}), ((1,), {}), ((2, 11, 3), {}), ((10, 2, -3), {}), ((0.0, 1.0, 0.1), {}),
    ((-1.5, 2.5), {}), ((1, 4), {"dtype": "float32"}), ((3,), {"dtype": "uint8"}),
    ((0, 1, 0.25), {}), ((5, 5), {}),
])
def test_arange(device, args, kw):
    dtype = kw.get("dtype")
    t = clgrad.arange(*args, dtype=getattr(clgrad, dtype) if dtype else None, device=device)
    want = np.arange(*args, dtype=dtype)
    if dtype is None:
        want = want.astype(np.float32 if want.dtype.kind == "f" else np.int64)
    assert t.dtype.np == want.dtype
    np.testing.assert_allclose(t.numpy(), want, rtol=0, atol=1e-6)


def test_arange_errors(device):
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        clgrad.arange(0, 3, 0, device=device)
    with pytest.raises(RuntimeError, match="inconsistent with step sign"):
        clgrad.arange(3, 0, 1, device=device)


@pytest.mark.parametrize("start,end,steps", [(0, 1, 5), (-1, 2, 1), (2, -3, 7), (0, 1, 0),
                                              (0, 10, 11), (1.5, 1.5, 3), (0, 1, 1000)])
def test_linspace(device, start, end, steps):
    t = clgrad.linspace(start, end, steps, device=device)
    assert t.dtype is clgrad.float32
    np.testing.assert_allclose(t.numpy(), np.linspace(start, end, steps), rtol=0, atol=2e-6)
    if steps > 1:
        got = t.numpy()
        assert got[0] == np.float32(start) and got[-1] == np.float32(end)   # exact endpoints


def test_eye(device):
    _eq(clgrad.eye(3, device=device), np.eye(3, dtype=np.float32), "float32")
    _eq(clgrad.eye(2, 5, device=device), np.eye(2, 5, dtype=np.float32))
    _eq(clgrad.eye(4, 1, dtype=clgrad.int64, device=device), np.eye(4, 1, dtype=np.int64))
    _eq(clgrad.eye(3, dtype=clgrad.bool, device=device), np.eye(3, dtype=bool))
    _eq(clgrad.eye(0, device=device), np.eye(0, dtype=np.float32))


# ---- random --------------------------------------------------------------------------------------
def test_manual_seed_reproducible(device):
    clgrad.manual_seed(123)
    a = clgrad.rand(5, 7, device=device).numpy()
    b = clgrad.randn(100, device=device).numpy()
    c = clgrad.randint(0, 10, (50,), device=device).numpy()
    clgrad.manual_seed(123)
    np.testing.assert_array_equal(clgrad.rand(5, 7, device=device).numpy(), a)
    np.testing.assert_array_equal(clgrad.randn(100, device=device).numpy(), b)
    np.testing.assert_array_equal(clgrad.randint(0, 10, (50,), device=device).numpy(), c)
    assert clgrad.initial_seed() == 123
    # consecutive draws continue the stream instead of repeating it
    assert not np.array_equal(clgrad.rand(5, 7, device=device).numpy(), a)
    clgrad.manual_seed(124)
    assert not np.array_equal(clgrad.rand(5, 7, device=device).numpy(), a)


def test_rng_state_and_generators(device):
    clgrad.manual_seed(7)
    state = clgrad.get_rng_state()
    a = clgrad.rand(10, device=device).numpy()
    clgrad.set_rng_state(state)
    np.testing.assert_array_equal(clgrad.rand(10, device=device).numpy(), a)
    g1 = clgrad.Generator().manual_seed(99)
    g2 = clgrad.Generator().manual_seed(99)
    x = clgrad.randn(33, generator=g1, device=device).numpy()
    clgrad.rand(3, device=device)       # the default generator does not disturb g2
    np.testing.assert_array_equal(clgrad.randn(33, generator=g2, device=device).numpy(), x)


def test_draws_split_like_one_draw(device):
    # element i of a draw is a function of (seed, offset + i): two draws of 6 and 10 elements
    # equal one draw of 16
    g = clgrad.Generator().manual_seed(3)
    whole = clgrad.rand(16, generator=g, device=device).numpy()
    g.manual_seed(3)
    parts = np.concatenate([clgrad.rand(6, generator=g, device=device).numpy(),
                            clgrad.rand(10, generator=g, device=device).numpy()])
    np.testing.assert_array_equal(parts, whole)


def test_draw_statistics(device):
    g = clgrad.Generator().manual_seed(2024)
    n = 200_000
    u = clgrad.rand(n, generator=g, device=device).numpy().astype(np.float64)
    assert u.min() >= 0 and u.max() < 1
    se = 1 / np.sqrt(n)
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12) * se
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180) * se
    # uniform histogram: 20 bins, each within 6 sigma of n/20
    h = np.histogram(u, bins=20, range=(0, 1))[0]
    assert np.all(np.abs(h - n / 20) < 6 * np.sqrt(n / 20))
    z = clgrad.randn(n, generator=g, device=device).numpy().astype(np.float64)
    assert np.all(np.isfinite(z))
    assert abs(z.mean()) < 5 * se and abs(z.std() - 1) < 5 * se
    assert abs(np.mean(z ** 3)) < 5 * np.sqrt(15) * se                # symmetric
    assert abs(np.mean(z ** 4) - 3) < 5 * np.sqrt(96) * se            # normal kurtosis
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005
    ri = clgrad.randint(-5, 5, (n,), generator=g, device=device).numpy()
    assert ri.dtype == np.int64 and ri.min() == -5 and ri.max() == 4
    counts = np.bincount(ri + 5, minlength=10)
    assert np.all(np.abs(counts - n / 10) < 6 * np.sqrt(n / 10))
    # neighbouring elements are uncorrelated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 * se


def test_random_dtypes_and_shapes(device):
    for dtype in [clgrad.float32, clgrad.float16] + ([clgrad.float64] if device.has_fp64 else []):
        r = clgrad.rand(3, 4, dtype=dtype, device=device)
        assert r.dtype is dtype and r.shape == (3, 4)
        a = r.numpy()
        assert a.min() >= 0 and a.max() <= 1
        assert clgrad.randn((2, 2), dtype=dtype, device=device).shape == (2, 2)
    assert clgrad.rand(0, device=device).shape == (0,)
    assert clgrad.randn(device=device).shape == ()
    assert clgrad.randint(5, (3,), device=device).numpy().max() < 5
    for dtype in (clgrad.int32, clgrad.uint8, clgrad.int16):
        a = clgrad.randint(0, 7, (100,), dtype=dtype, device=device).numpy()
        assert a.dtype == dtype.np and a.min() >= 0 and a.max() < 7
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        clgrad.rand(3, dtype=clgrad.int64, device=device)
    with pytest.raises(RuntimeError, match="from=3 >= to=3"):
        clgrad.randint(3, 3, (2,), device=device)
    assert clgrad.rand(2, requires_grad=True, device=device).requires_grad


def test_same_seed_same_numbers_on_every_device():
    devs = runtime.devices()
    draws = [clgrad.randn(64, generator=clgrad.Generator().manual_seed(11), device=d).numpy()
             for d in devs]
    for d in draws[1:]:
        np.testing.assert_allclose(d, draws[0], rtol=1e-6, atol=1e-6)


# ---- ways out ------------------------------------------------------------------------------------
def test_item_tolist_numpy(device):
    t = clgrad.tensor([[1.5, -2.0], [3.0, 4.25]], device=device)
    assert t.tolist() == [[1.5, -2.0], [3.0, 4.25]]
    assert t[1, 1].item() == 4.25 and isinstance(t[1, 1].item(), float)
    assert clgrad.tensor(7, device=device).item() == 7
    assert clgrad.tensor([True], device=device).item() is True
    assert t.T.numpy().tolist() == [[1.5, 3.0], [-2.0, 4.25]]
    assert float(t[0, 0]) == 1.5 and int(t[1, 0]) == 3
    with pytest.raises(RuntimeError, match="a Tensor with 4 elements cannot be converted"):
        t.item()
    g = clgrad.ones(2, requires_grad=True, device=device)
    with pytest.raises(RuntimeError, match="Use tensor.detach\\(\\).numpy\\(\\)"):
        g.numpy()
    assert g.tolist() == [1.0, 1.0]
    assert np.asarray(t).shape == (2, 2)


# Expected strings follow torch 2.x's printer; clgrad appends the device to every tensor.
REPRS = [
    (lambda d: clgrad.tensor([[-1.5, 2], [3, 4]], device=d),
     "tensor([[-1.5000,  2.0000],\n        [ 3.0000,  4.0000]], device='{d}')"),
    (lambda d: clgrad.tensor([1, -2, 3], device=d), "tensor([ 1, -2,  3], device='{d}')"),
    (lambda d: clgrad.tensor([True, False], device=d), "tensor([ True, False], device='{d}')"),
    (lambda d: clgrad.tensor(1.5, device=d), "tensor(1.5000, device='{d}')"),
    (lambda d: clgrad.tensor(-3, device=d), "tensor(-3, device='{d}')"),
    (lambda d: clgrad.tensor([0.0, 0.0], device=d), "tensor([0., 0.], device='{d}')"),
    (lambda d: clgrad.tensor([1.0, -20.0], device=d), "tensor([  1., -20.], device='{d}')"),
    (lambda d: clgrad.tensor([float("nan"), 1.0, float("-inf")], device=d),
     "tensor([nan, 1., -inf], device='{d}')"),
    (lambda d: clgrad.tensor([1.0, 2000.0], device=d),
     "tensor([1.0000e+00, 2.0000e+03], device='{d}')"),
    (lambda d: clgrad.tensor([1e-5, 0.5], device=d),
     "tensor([1.0000e-05, 5.0000e-01], device='{d}')"),
    (lambda d: clgrad.tensor([], device=d), "tensor([], device='{d}')"),
    (lambda d: clgrad.tensor([], dtype=clgrad.int64, device=d),
     "tensor([], device='{d}', dtype=clgrad.int64)"),
    (lambda d: clgrad.zeros(0, 3, device=d), "tensor([], device='{d}', size=(0, 3))"),
    (lambda d: clgrad.tensor([1, 2], dtype=clgrad.int32, device=d),
     "tensor([1, 2], device='{d}', dtype=clgrad.int32)"),
    (lambda d: clgrad.tensor([0.5, 1], dtype=clgrad.float16, device=d),
     "tensor([0.5000, 1.0000], device='{d}', dtype=clgrad.float16)"),
    (lambda d: clgrad.ones(2, requires_grad=True, device=d),
     "tensor([1., 1.], device='{d}', requires_grad=True)"),
    (lambda d: clgrad.ones(2, requires_grad=True, device=d) * 2,
     "tensor([2., 2.], device='{d}', grad_fn=<MulBackward0>)"),
    (lambda d: clgrad.arange(2000, device=d),
     "tensor([   0,    1,    2,  ..., 1997, 1998, 1999], device='{d}')"),
    (lambda d: clgrad.arange(12, device=d).reshape(2, 1, 6),
     "tensor([[[ 0,  1,  2,  3,  4,  5]],\n\n        [[ 6,  7,  8,  9, 10, 11]]], device='{d}')"),
    (lambda d: clgrad.arange(12.0, device=d) / 8,
     "tensor([0.0000, 0.1250, 0.2500, 0.3750, 0.5000, 0.6250, 0.7500, 0.8750, 1.0000,\n"
     "        1.1250, 1.2500, 1.3750], device='{d}')"),
]


@pytest.mark.parametrize("make,want", REPRS, ids=[str(i) for i in range(len(REPRS))])
def test_repr(device, make, want):
    t = make(device)
    assert repr(t) == want.format(d=device.spec)
    assert str(t) == repr(t)


def test_repr_summarises_2d(device):
    text = repr(clgrad.arange(2000.0, device=device).reshape(40, 50))
    lines = text.splitlines()
    assert lines[0] == "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 4.7000e+01, 4.8000e+01,"
    assert "        ...," in lines
    assert text.endswith("1.9990e+03]], device='" + device.spec + "')")


def test_repr_parity_with_torch(device):
    torch = pytest.importorskip("torch")
    cases = [[[-1.5, 2.0], [3.0, 4.0]], [1.0, -20.0], [1e-5, 0.5], list(range(30)),
             [[0.1 * i - 1 for i in range(12)]] * 3, 2.5]
    for data in cases:
        want = repr(torch.tensor(data)).replace("tensor(", "").rstrip(")")
        got = repr(clgrad.tensor(data, device=device))
        assert got.startswith("tensor(" + want.split(", device")[0])
