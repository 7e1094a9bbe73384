"""float16 and bfloat16 as storage dtypes: creation, conversion, host round-trips, checkpoints,
printing, and op results against numpy (float16 numpy; bfloat16 by float32 rounding emulation).
float16 computes in half where the device reports cl_khr_fp16 and in float elsewhere."""
import math

import numpy as np
import pytest

import clgrad
from clgrad import ops
from clgrad import safetensors as st
from clgrad.ops.base import Op
from clgrad.runtime import codegen

LOW = ["float16", "bfloat16"]


def bf16(a):
    """Round to the nearest bfloat16, ties to even, as float32 (the test's own emulation)."""
    a = np.asarray(a, dtype=np.float32)
    out = np.empty_like(a)
    for i, v in np.ndenumerate(a):
        if math.isnan(v):
            out[i] = np.nan
            continue
        bits = int(np.float32(v).view(np.uint32))
        low, high = bits & 0xFFFF, bits >> 16
        if low > 0x8000 or (low == 0x8000 and high & 1):
            high += 1
        out[i] = np.uint32((high & 0xFFFF) << 16).view(np.float32)
    return out


def rounded(a, dtype):
    return bf16(a) if dtype == "bfloat16" else np.asarray(a, np.float32).astype(np.float16)


# 16-bit results are compared at their resolution: float16 keeps 11 significant bits, bfloat16 8
TOL = {"float16": dict(rtol=2e-3, atol=2e-3), "bfloat16": dict(rtol=1.6e-2, atol=1.6e-2)}


# ---- the dtype itself --------------------------------------------------------------------------
def test_names_and_promotion():
    assert clgrad.half is clgrad.float16
    assert clgrad.bfloat16.itemsize == 2 and clgrad.bfloat16.is_floating
    P = clgrad.promote_types
    assert P(clgrad.float16, clgrad.bfloat16) is clgrad.float32     # as PyTorch
    assert P(clgrad.bfloat16, clgrad.float32) is clgrad.float32
    assert P(clgrad.int64, clgrad.bfloat16) is clgrad.bfloat16
    assert clgrad.tensor([1.0], dtype="bfloat16").type() == "clgrad.BFloat16Tensor"


def test_module_casts(device):
    m = clgrad.nn.Linear(3, 2).to(device)
    assert m.bfloat16().weight.dtype is clgrad.bfloat16
    assert m.half().bias.dtype is clgrad.float16
    assert m.float().weight.dtype is clgrad.float32
    # host values into bfloat16 parameters arrive as values, not as bits
    m.bfloat16().load_state_dict({"weight": np.array([[1.5, 2.25, 3.0], [4.0, -1.0, 0.5]]),
                                  "bias": [0.5, 1.0]})
    np.testing.assert_array_equal(m.weight.detach().numpy(), [[1.5, 2.25, 3.0],
                                                              [4.0, -1.0, 0.5]])
    y = clgrad.nn.functional.rms_norm(clgrad.ones(2, 4, dtype=clgrad.bfloat16, device=device),
                                      (4,))
    assert y.dtype is clgrad.bfloat16
    np.testing.assert_array_equal(y.numpy(), np.ones((2, 4)))


@pytest.mark.parametrize("dtype", LOW)
def test_round_trips(device, dtype):
    dt = getattr(clgrad, dtype)
    a = np.array([1.0, 1.00390625, 1.01171875, -2.5e4, 3.14159, 0.0, -0.0, np.inf, np.nan],
                 np.float32)
    want = rounded(a, dtype)
    for t in (clgrad.tensor(a, dtype=dt, device=device),
              clgrad.tensor(a, device=device).to(dt),
              getattr(clgrad.tensor(a, device=device), "half" if dtype == "float16" else dtype)()):
        assert t.dtype is dt
        got = t.numpy()
        np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))
        assert np.signbit(got[6])
    t = clgrad.tensor(a, dtype=dt, device=device)
    assert t[4].item() == float(want[4])
    np.testing.assert_array_equal(t.float().numpy(), want.astype(np.float32))
    np.testing.assert_array_equal(t.double().numpy() if clgrad.device(device).has_fp64 else
                                  want, want.astype(np.float64) if clgrad.device(device).has_fp64
                                  else want)
    assert t.tolist()[0] == 1.0
    assert f"dtype=clgrad.{dtype}" in repr(t)


def test_bfloat16_rounds_to_nearest_even(device):
    # halfway cases both ways, just above/below halfway, overflow to inf, NaN stays NaN
    a = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, 1 + 2**-8 - 2**-20,
                  3.4e38, -3.38e38, np.nan, 1e-40], np.float32)
    got = clgrad.tensor(a, device=device).bfloat16().float().numpy()
    np.testing.assert_array_equal(got, bf16(a))
    assert got[0] == 1.0 and got[1] == 1 + 2**-6 and np.isinf(got[4])


def test_bfloat16_matches_torch(device):
    torch = pytest.importorskip("torch", reason="torch is not installed: parity check skipped")
    a = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 100
    want = torch.tensor(a).bfloat16().float().numpy()
    np.testing.assert_array_equal(clgrad.tensor(a, device=device).bfloat16().float().numpy(), want)
    b = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    tb = torch.tensor(a).bfloat16() * torch.tensor(b).bfloat16() + 1
    cb = clgrad.tensor(a, device=device).bfloat16() * clgrad.tensor(b, device=device).bfloat16() + 1
    np.testing.assert_array_equal(cb.numpy(), tb.float().numpy())


@pytest.mark.parametrize("dtype", LOW)
def test_save_load_and_safetensors(device, dtype, tmp_path):
    dt = getattr(clgrad, dtype)
    t = clgrad.tensor([1.5, -2.25, 3.14159, 6.5e4], dtype=dt, device=device)
    clgrad.save({"t": t}, tmp_path / "x.pt")
    back = clgrad.load(tmp_path / "x.pt")["t"]
    assert back.dtype is dt
    np.testing.assert_array_equal(back.numpy(), t.numpy())
    back = st.load(st.save({"t": t}))["t"]
    assert back.dtype is dt
    np.testing.assert_array_equal(back.numpy(), t.numpy())


# ---- arithmetic --------------------------------------------------------------------------------
def test_half_arithmetic_follows_the_device(device):
    # one op whose intermediate overflows half: computed in half (cl_khr_fp16) it is inf, in
    # float (storage only) it is exact; the same source serves both devices
    probe = Op("probe_sqdiv", "x0 * x0 / x0")
    h = clgrad.tensor([300.0, 2.0], dtype=clgrad.float16, device=device)
    got = ops.ew(probe, h).numpy()
    dev = clgrad.device(device)
    if dev.has_fp16 and "-DCLG_HALF_AS_FLOAT" not in dev.build_defines:
        assert np.isinf(got[0]) and got[1] == 2.0
    else:
        np.testing.assert_array_equal(got, np.float16([300.0, 2.0]))
    # bfloat16 always computes in float: 1e19 squared is 1e38, inside float's range
    b = clgrad.tensor([1e19, 2.0], dtype=clgrad.bfloat16, device=device)
    np.testing.assert_array_equal(ops.ew(probe, b).numpy(), bf16([1e19, 2.0]))


UNARY = [("exp", np.exp, (-3, 3)), ("log", np.log, (0.5, 4)), ("sqrt", np.sqrt, (0.1, 4)),
         ("tanh", np.tanh, (-3, 3)), ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), (-4, 4)),
         ("relu", lambda x: np.maximum(x, 0), (-2, 2)), ("neg", np.negative, (-2, 2)),
         ("abs", np.abs, (-2, 2)), ("sin", np.sin, (-3, 3))]


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("name,ref,rng", UNARY, ids=[u[0] for u in UNARY])
def test_unary(device, dtype, name, ref, rng):
    a = rounded(np.random.default_rng(2).uniform(*rng, size=(7, 33)), dtype).astype(np.float32)
    x = clgrad.tensor(a, dtype=getattr(clgrad, dtype), device=device)
    y = getattr(x, name)()
    assert y.dtype is x.dtype
    np.testing.assert_allclose(y.numpy().astype(np.float32), rounded(ref(a), dtype), **TOL[dtype])


BINARY = [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("div", np.divide),
          ("maximum", np.maximum)]


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("name,ref", BINARY, ids=[b[0] for b in BINARY])
def test_binary_broadcast_and_views(device, dtype, name, ref):
    r = np.random.default_rng(3)
    a = rounded(r.uniform(-2, 2, size=(5, 6)), dtype).astype(np.float32)
    b = rounded(r.uniform(0.5, 2, size=(6,)), dtype).astype(np.float32)
    dt = getattr(clgrad, dtype)
    x, y = clgrad.tensor(a, dtype=dt, device=device), clgrad.tensor(b, dtype=dt, device=device)
    for xx, aa in ((x, a), (x.t().contiguous().t(), a), (x[:, ::2], a[:, ::2])):
        yy, bb = (y, b) if xx.shape[-1] == 6 else (y[::2], b[::2])
        got = getattr(xx, name)(yy)
        assert got.dtype is dt
        np.testing.assert_allclose(got.numpy().astype(np.float32), rounded(ref(aa, bb), dtype),
                                   **TOL[dtype])
    got = x * 2.5 + 1                     # Python scalars keep the 16-bit dtype
    assert got.dtype is dt
    np.testing.assert_allclose(got.numpy().astype(np.float32), rounded(a * 2.5 + 1, dtype),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", LOW)
def test_reductions_accumulate_in_float(device, dtype):
    dt = getattr(clgrad, dtype)
    n = 4097
    x = clgrad.ones(n, dtype=dt, device=device)
    # a 16-bit accumulator would stop at 2048 (float16) or 256 (bfloat16); float gets 4097,
    # which the 16-bit result then rounds
    assert x.sum().item() == float(rounded(np.float32(n), dtype))
    a = rounded(np.random.default_rng(4).uniform(0, 1, size=(9, 300)), dtype).astype(np.float32)
    t = clgrad.tensor(a, dtype=dt, device=device)
    np.testing.assert_allclose(t.sum(1).numpy().astype(np.float32), rounded(a.sum(1), dtype),
                               **TOL[dtype])
    np.testing.assert_allclose(t.mean(0).numpy().astype(np.float32), rounded(a.mean(0), dtype),
                               **TOL[dtype])
    np.testing.assert_array_equal(t.amax(1).numpy().astype(np.float32), a.max(1))


@pytest.mark.parametrize("dtype", LOW)
def test_matmul_softmax_conv(device, dtype):
    dt = getattr(clgrad, dtype)
    F = clgrad.nn.functional
    r = np.random.default_rng(5)
    a = rounded(r.standard_normal((3, 17, 40)), dtype).astype(np.float32)
    b = rounded(r.standard_normal((3, 40, 9)), dtype).astype(np.float32)
    x, y = clgrad.tensor(a, dtype=dt, device=device), clgrad.tensor(b, dtype=dt, device=device)
    got = (x @ y)
    assert got.dtype is dt
    # float accumulation: only the final rounding (and the inputs') separate it from float64
    want = np.einsum("bik,bkj->bij", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got.numpy().astype(np.float32), rounded(want, dtype),
                               **TOL[dtype])
    s = F.softmax(x, -1)
    e = np.exp(a - a.max(-1, keepdims=True))
    np.testing.assert_allclose(s.numpy().astype(np.float32),
                               rounded(e / e.sum(-1, keepdims=True), dtype), **TOL[dtype])
    img = rounded(r.standard_normal((2, 3, 8, 8)), dtype).astype(np.float32)
    w = rounded(r.standard_normal((4, 3, 3, 3)) * 0.3, dtype).astype(np.float32)
    c = F.conv2d(clgrad.tensor(img, dtype=dt, device=device),
                 clgrad.tensor(w, dtype=dt, device=device), padding=1)
    assert c.dtype is dt
    ref = F.conv2d(clgrad.tensor(img, device=device), clgrad.tensor(w, device=device),
                   padding=1).numpy()
    np.testing.assert_allclose(c.numpy().astype(np.float32), rounded(ref, dtype), **TOL[dtype])


@pytest.mark.parametrize("dtype", LOW)
def test_gradients(device, dtype):
    # the gradient of a 16-bit graph equals the float32 gradient of the same (rounded) inputs,
    # within 16-bit resolution; gradients keep their tensor's dtype
    dt = getattr(clgrad, dtype)
    r = np.random.default_rng(6)
    a = rounded(r.standard_normal((6, 8)), dtype).astype(np.float32)
    w = rounded(r.standard_normal((8, 5)) * 0.5, dtype).astype(np.float32)

    def run(d):
        x = clgrad.tensor(a, dtype=d, device=device, requires_grad=True)
        m = clgrad.tensor(w, dtype=d, device=device, requires_grad=True)
        ((x @ m).tanh() * x.sum(1, keepdim=True).sigmoid()).float().sum().backward()
        return x.grad, m.grad

    gx, gm = run(dt)
    fx, fm = run(clgrad.float32)
    assert gx.dtype is dt and gm.dtype is dt
    tol = {"float16": dict(rtol=1e-2, atol=1e-2), "bfloat16": dict(rtol=6e-2, atol=6e-2)}[dtype]
    np.testing.assert_allclose(gx.numpy().astype(np.float32), fx.numpy(), **tol)
    np.testing.assert_allclose(gm.numpy().astype(np.float32), fm.numpy(), **tol)


def test_rendered_source_has_both_paths(device):
    src = codegen._extensions("half")
    assert "#if defined(cl_khr_fp16) && !defined(CLG_HALF_AS_FLOAT)" in src and "vload_half" in src and "vstore_half_rte" in src
    assert "clg_bf16_store" in codegen._extensions("ushort")
