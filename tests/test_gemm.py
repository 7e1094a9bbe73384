"""The CPU GEMM kernels tile by tile against numpy (odd sizes, k-blocks, transposed, strided and
broadcast-batched operands, the bias/relu epilogue), the child-process probe and its fallback,
and the tuning store."""
import json
import warnings
from dataclasses import replace

import numpy as np
import pytest

import clgrad
from clgrad.dtypes import float32, float64
from clgrad.runtime import gemm, tune
from helpers import make

T = gemm.Tile
TILES = [T("nn", 8, 8, kb=256), T("nn", 8, 16, kb=256), T("nn", 3, 4, kb=8, rows_first=True),
         T("nn", 12, 2, kb=0, local=(1, 1)), T("nt", 4, 8, rn=2, kb=512),
         T("nt", 4, 4, rn=4, kb=8), T("nt", 1, 16, rn=3, kb=0, rows_first=True)]
SIZES = [(1, 1, 1), (7, 17, 33), (33, 7, 17), (17, 33, 1), (1, 40, 9), (40, 1, 70), (19, 21, 64)]


@pytest.fixture(autouse=True)
def _fresh_choices():
    gemm.forget()
    yield
    gemm.forget()


def _usable(device, dt, tile):
    """A risky tile runs here only after its probe passed (pip's PoCL crashes on some)."""
    return not tile.risky(dt) or gemm.probe_ok(device, dt, tile)


def _force(monkeypatch, tile):
    monkeypatch.setattr(gemm, "family_for", lambda dev, dt: "cpu")
    monkeypatch.setattr(gemm, "choose", lambda dev, fam, dt, cls="large":
                        tile if fam == tile.family else gemm.safe_tile(fam, dt))


def _np(dtype):
    return {"float32": np.float32, "float64": np.float64}[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tile", TILES, ids=lambda t: t.key())
def test_tile_matches_numpy(device, monkeypatch, tile, dtype):
    dt = clgrad.dtypes.to_dtype(dtype)
    if dt is float64 and not device.has_fp64:
        pytest.skip("no cl_khr_fp64")
    if dt is float64:      # the same vector bytes: double16 only stalls pip PoCL's compiler
        tile = replace(tile, vw=max(2, tile.vw // 2))
    if not _usable(device, dt, tile):
        assert gemm.choose(device, tile.family, dt) != tile
        return
    _force(monkeypatch, tile)
    rng = np.random.default_rng(1)
    for M, N, K in SIZES:
        # small integers: every sum is exact, so the comparison can be exact
        a = rng.integers(-3, 4, (M, K)).astype(_np(dtype))
        b = rng.integers(-3, 4, (K, N)).astype(_np(dtype))
        at, bt = make(a.T.copy(), dtype, device).mT, make(b.T.copy(), dtype, device).mT
        for la, lb in [("contiguous", "contiguous"), ("contiguous", "T"), ("T", "contiguous"),
                       ("T", "T"), ("sliced", "sliced"), ("permuted", "sliced")]:
            x = at if la == "T" else make(a, dtype, device, la)
            y = bt if lb == "T" else make(b, dtype, device, lb)
            np.testing.assert_array_equal((x @ y).numpy(), a @ b,
                                          err_msg=f"{tile.key()} {la}@{lb} {M}x{N}x{K}")


@pytest.mark.parametrize("tile", [TILES[2], TILES[5]], ids=lambda t: t.key())
def test_batched_broadcast(device, monkeypatch, tile):
    _force(monkeypatch, tile)
    rng = np.random.default_rng(2)
    for sa, sb in [((3, 1, 9, 20), (4, 20, 11)), ((5, 17), (2, 3, 17, 6)), ((2, 7, 33), (33, 9))]:
        a = rng.integers(-3, 4, sa).astype(np.float32)
        b = rng.integers(-3, 4, sb).astype(np.float32)
        got = make(a, "float32", device) @ make(b, "float32", device, "sliced").mT.mT
        np.testing.assert_array_equal(got.numpy(), a @ b)
        got = make(a, "float32", device) @ make(np.swapaxes(b, -1, -2).copy(), "float32",
                                                 device).mT
        np.testing.assert_array_equal(got.numpy(), a @ b)


def test_k0_and_empty(device):
    for sa, sb in [((3, 0), (0, 5)), ((0, 4), (4, 5)), ((3, 4), (4, 0)), ((2, 0, 3), (3, 6))]:
        a = np.ones(sa, np.float32)
        b = np.ones(sb, np.float32)
        got = (clgrad.tensor(a, device=device) @ clgrad.tensor(b, device=device)).numpy()
        assert got.shape == (a @ b).shape
        np.testing.assert_array_equal(got, a @ b)


def _raw(t):
    v = t._view
    return gemm.Operand(t._buf.raw, v.offset, v.strides[-2], v.strides[-1], (0,))


@pytest.mark.parametrize("epilogue", ["bias", "bias_relu", "relu"])
@pytest.mark.parametrize("tile", [TILES[0], TILES[2], TILES[4], TILES[5]], ids=lambda t: t.key())
def test_epilogue(device, tile, epilogue):
    rng = np.random.default_rng(3)
    M, N, K = 13, 19, 37
    a = rng.standard_normal((M, K))
    b = rng.standard_normal((K, N))
    ta = clgrad.tensor(a, dtype=clgrad.float32, device=device)
    tb = clgrad.tensor(b.T.copy() if tile.family == "nt" else b, dtype=clgrad.float32,
                       device=device)
    tb = tb.mT if tile.family == "nt" else tb
    for bias_shape, rs, cs in [((N,), 0, 1), ((M,), 1, 0)]:
        bias = rng.standard_normal(bias_shape)
        tbias = clgrad.tensor(bias, dtype=clgrad.float32, device=device)
        c = clgrad.empty((M, N), device=device)
        gemm.cpu_gemm(device, float32, _raw(c), _raw(ta), _raw(tb), M, N, K,
                      bias=gemm.Operand(tbias._buf.raw, 0, rs, cs), epilogue=epilogue,
                      tile=tile)
        want = a @ b
        if epilogue != "relu":
            want = want + (bias[None, :] if cs else bias[:, None])
        if epilogue != "bias":
            want = np.maximum(want, 0)
        np.testing.assert_allclose(c.numpy(), want, rtol=1e-5, atol=1e-5)


def test_layout_choice():
    op = lambda rs, cs: gemm.Operand(None, 0, rs, cs)  # noqa: E731
    M, N, K = 64, 48, 32
    assert gemm.layout(op(K, 1), op(N, 1), M, N, K) == ("nn", False, False)   # A @ B
    assert gemm.layout(op(K, 1), op(1, K), M, N, K) == ("nt", False, False)   # A @ B^T
    assert gemm.layout(op(1, M), op(N, 1), M, N, K) == ("nn", False, False)   # A^T @ B
    assert gemm.layout(op(1, M), op(1, K), M, N, K) == ("nn", True, False)    # A^T @ B^T
    assert gemm.layout(op(2 * K, 2), op(2 * N, 2), M, N, K) == ("nn", False, True)
    assert gemm.layout(op(K, 1), op(1, K), M, 1, K) == ("nt", False, False)   # matrix @ vector


# ---- probe ---------------------------------------------------------------------------------------
@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(gemm.PROBE_ENV, raising=False)
    gemm.forget()
    return tmp_path


def test_probe_failure_falls_back_and_is_remembered(device, own_cache, monkeypatch):
    calls = []
    monkeypatch.setattr(gemm, "run_probe",
                        lambda dev, dt, tile: calls.append(tile) or (False, "simulated crash"))
    risky = T("nn", 8, 16, kb=256)
    monkeypatch.setattr(gemm, "default_tile", lambda dev, fam, dt, cls="large": risky)
    with pytest.warns(RuntimeWarning, match="failed its probe"):
        got = gemm.choose(device, "nn", float32)
    assert got == gemm.safe_tile("nn", float32)
    assert calls == [risky]
    verdicts = json.loads(gemm.store_path(device, "probe").read_text())["entries"]
    assert list(verdicts.values())[0]["ok"] is False
    gemm.forget()                               # a new process: the verdict comes from disk
    assert gemm.choose(device, "nn", float32) == gemm.safe_tile("nn", float32)
    assert len(calls) == 1
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    got = (clgrad.tensor(a, device=device) @ clgrad.tensor(a.T.copy(), device=device)).numpy()
    np.testing.assert_array_equal(got, a @ a.T)


def test_probe_child_really_runs(device, own_cache):
    ok, detail = gemm.run_probe_child(device, float32, gemm.safe_tile("nt", float32))
    assert ok, detail
    ok, detail = gemm.run_probe_child(device, float32, T("nn", 4, 32))   # no float32 vectors
    assert not ok and "exit status" in detail


def test_probe_in_process_checks_the_result(device, own_cache):
    ok, detail = gemm.probe_check(device, float32, gemm.safe_tile("nn", float32))
    assert ok, detail
    ok, detail = gemm.probe_check(device, float32, gemm.safe_tile("nt", float32))
    assert ok, detail


def test_probe_runs_in_process_only_where_trusted(device, own_cache, monkeypatch):
    where = []
    monkeypatch.setattr(gemm, "run_probe_child", lambda dev, dt, tile: where.append("child")
                        or (True, ""))
    monkeypatch.setattr(gemm, "probe_check", lambda dev, dt, tile: where.append("here")
                        or (True, ""))
    assert gemm.probe_ok(device, float32, T("nn", 8, 16))
    assert where == ["here" if device.speed_label in gemm.IN_PROCESS_PROBE else "child"]


def test_probe_verdict_is_per_device_and_driver(device, own_cache, monkeypatch):
    monkeypatch.setattr(gemm, "run_probe", lambda dev, dt, tile: (True, ""))
    assert gemm.probe_ok(device, float32, T("nn", 8, 16))
    path = gemm.store_path(device, "probe")
    assert json.loads(path.read_text())["device"] == list(device.identity)


def test_shape_classes():
    assert gemm.shape_class(6, 576, 25) == "small"
    assert gemm.shape_class(512, 512, 512) == "medium"
    assert gemm.shape_class(1024, 1024, 1024) == "medium"
    assert gemm.shape_class(2048, 2048, 2048) == "large"
    assert gemm.shape_class(64, 64, 4096) == "large"           # deep K: k-blocks
    assert set(gemm.SHAPE_CLASSES) == {c for op in tune.PROBLEMS.values() for c in op}


def test_each_class_has_a_default_that_computes(device, monkeypatch):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((70, 1100)).astype(np.float32)
    b = rng.standard_normal((1100, 90)).astype(np.float32)
    for cls in gemm.SHAPE_CLASSES:
        for fam in ("nn", "nt"):
            tile = gemm.default_tile(device, fam, float32, cls)
            if not _usable(device, float32, tile):
                continue
            c = clgrad.empty(70, 90, device=device)
            bb = clgrad.tensor(b if fam == "nn" else np.ascontiguousarray(b.T), device=device)
            bop = (gemm.Operand(bb._buf.raw, 0, 90, 1) if fam == "nn"
                   else gemm.Operand(bb._buf.raw, 0, 1, 1100))
            aa = clgrad.tensor(a, device=device)
            gemm.cpu_gemm(device, float32, gemm.Operand(c._buf.raw, 0, 90, 1),
                          gemm.Operand(aa._buf.raw, 0, 1100, 1), bop, 70, 90, 1100, tile=tile)
            np.testing.assert_allclose(c.numpy(), a @ b, rtol=1e-4, atol=1e-3)


# ---- tuning store --------------------------------------------------------------------------------
def test_store_round_trip_and_pickup(device, own_cache, monkeypatch):
    tile = T("nn", 4, 8, kb=64, rows_first=True, local=(2, 4))
    path = gemm.store_path(device, "tune")
    gemm.write_store(path, device, {"matmul/nn/float32/large": {
        "tile": tune._asdict(tile), "gflops": 1.0}})
    assert gemm.read_store(path)["matmul/nn/float32/large"]["tile"]["rm"] == 4
    assert gemm.choose(device, "nn", float32, "large") == tile
    a = np.arange(3000.0, dtype=np.float32).reshape(10, 300) % 7
    b = np.arange(300.0 * 500, dtype=np.float32).reshape(300, 500) % 5
    got = (clgrad.tensor(a, device=device) @ clgrad.tensor(b, device=device)).numpy()
    np.testing.assert_array_equal(got, a @ b)
    monkeypatch.setattr(gemm, "probe_ok", lambda dev, dt, tile: True)
    small = gemm.default_tile(device, "nn", float32, "small")
    assert gemm.choose(device, "nn", float32, "small") == small


@pytest.mark.parametrize("text", ["not json{", "[1, 2]", '{"entries": {"matmul/nn/float32/large"'
                                  ': {"tile": {"family": "nn", "rm": 8, "vw": 5}}}}'])
def test_corrupt_store_is_ignored_with_a_warning(device, own_cache, monkeypatch, text):
    monkeypatch.setattr(gemm, "probe_ok", lambda dev, dt, tile: True)
    path = gemm.store_path(device, "tune")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.warns(RuntimeWarning, match="ignoring"):
        got = gemm.choose(device, "nn", float32)
    assert got == gemm.default_tile(device, "nn", float32)


def test_tune_respects_budget_and_stores_winners(device, own_cache, monkeypatch):
    monkeypatch.setattr(gemm, "probe_ok", lambda dev, dt, tile: not tile.risky(dt))
    ticks = iter(range(10_000))
    measured = []

    def fake_measure(dev, dt, tile, p, ops):
        if tile == "blocked":                # the scalar kernel, timed once per family
            return 1.0
        measured.append((p.family, tile))
        return float(tile.rm * tile.vw)      # a stand-in score, bigger blocks "win"

    winners = tune.tune(device, ["matmul"], budget=8, clock=lambda: float(next(ticks)),
                        measure_fn=fake_measure)
    # 8 s shared by nn and nt in two shape classes: 2 ticks each. The clock is read at the start
    # and before each candidate after the first timed one, so each times 1 or 2 candidates
    assert winners.pop("matmul/family/float32")["family"] == "cpu"
    tried = [v["tried"] for v in winners.values()]
    assert len(tried) == 4 and all(1 <= n <= 2 for n in tried)
    assert {k.rsplit("/", 1)[1] for k in winners} == {"medium", "large"}
    per_tile = {k: len(tune.PROBLEMS["matmul"][k.split("/")[3]][k.split("/")[1]])
                for k in winners}
    assert len(measured) == sum(v["tried"] * per_tile[k] for k, v in winners.items())
    assert all(not t.risky(float32) for _, t in measured)
    more = tune.tune(device, ["matmul"], budget=80, clock=lambda: float(next(ticks)),
                     measure_fn=fake_measure)
    assert gemm.uses_cpu_kernels(device, float32)
    assert sum(v.get("tried", 0) for v in more.values()) > sum(tried)
    nn = more["matmul/nn/float32/large"]["tile"]
    assert gemm.choose(device, "nn", float32) == gemm.Tile.from_dict(nn)
    stored = gemm.read_store(gemm.store_path(device, "tune"))
    assert set(stored) == set(more)


def test_tune_cli(device, own_cache, monkeypatch):
    from click.testing import CliRunner

    from clgrad.cli import main
    monkeypatch.setattr(gemm, "probe_ok", lambda dev, dt, tile: not tile.risky(dt))
    r = CliRunner().invoke(main, ["tune", "--op", "bogus"])
    assert r.exit_code != 0 and "unknown op bogus" in r.output
    r = CliRunner().invoke(main, ["tune", "--op", "conv2d", "--budget", "0", "--device",
                                  device.spec])
    assert r.exit_code == 0, r.output
    assert "matmul/nn/float32/small" in r.output and "tried" in r.output
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "matmul/nt/float32/small" in gemm.read_store(gemm.store_path(device, "tune"))


def test_tune_picks_the_scalar_family_when_it_is_faster(device, own_cache, monkeypatch):
    monkeypatch.setattr(gemm, "probe_ok", lambda dev, dt, tile: not tile.risky(dt))
    winners = tune.tune(device, ["matmul"], budget=0,
                        measure_fn=lambda dev, dt, tile, p, ops: 9.0 if tile == "blocked" else 1.0)
    assert winners["matmul/family/float32"]["family"] == "blocked"
    assert not gemm.uses_cpu_kernels(device, float32)
    assert gemm.family_for(device, float32) == "blocked"
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    got = (clgrad.tensor(a, device=device) @ clgrad.tensor(a.T.copy(), device=device)).numpy()
    np.testing.assert_array_equal(got, a @ a.T)


@pytest.mark.parametrize("shape", [(5, 7), (3, 2, 7), (7,), (1, 7), (40, 70)])
def test_linear_is_one_addmm(device, shape, fp64):
    """F.linear with a bias is one GEMM with the bias in its epilogue, AddmmBackward0 as in
    PyTorch (viewed back for other than 2-D inputs), and its gradients check."""
    import clgrad.nn.functional as F
    from clgrad.runtime import memory
    rng = np.random.default_rng(5)
    xa, wa, ba = (rng.standard_normal(s) for s in (shape, (6, shape[-1]), (6,)))
    for dt in ("float32", "float64"):
        x, w, b = (clgrad.tensor(a.astype(dt), device=device, requires_grad=True)
                   for a in (xa, wa, ba))
        F.linear(x, w, b)
        memory.reset_stats()
        y = F.linear(x, w, b)
        # the bias is an epilogue of the CPU kernels; other families add it in a second launch
        assert memory.stats()["launches"] == (1 if gemm.family_for(device, x.dtype) == "cpu"
                                              else 2)
        name = y.grad_fn.name()
        assert name == ("AddmmBackward0" if len(shape) == 2 else "ViewBackward0")
        if name == "ViewBackward0":
            assert y.grad_fn.next_functions[0][0].name() == "AddmmBackward0"
        tol = 1e-5 if dt == "float32" else 1e-12
        np.testing.assert_allclose(y.detach().numpy(), xa @ wa.T + ba, rtol=tol, atol=tol)
    x, w, b = (clgrad.tensor(a, device=device, requires_grad=True) for a in (xa, wa, ba))
    assert clgrad.autograd.gradcheck(F.linear, (x, w, b))
    assert clgrad.autograd.gradgradcheck(F.linear, (x, w, b))


@pytest.mark.parametrize("bias", [False, True])
def test_dot_form_runs_on_a_copy_of_b_for_many_rows_and_short_k(device, bias):
    """x @ W^T with many rows and a short k: on Intel's runtime W^T is copied contiguous and the
    product runs in the outer-product form (one more launch); the values are numpy's either way,
    batched and with the bias epilogue."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 300, 64)).astype(np.float32)
    w = rng.standard_normal((40, 64)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    xt, wt, bt = (clgrad.tensor(v, device=device) for v in (x, w, b))
    a_op, b_op = gemm.Operand(None, 0, 64, 1), gemm.Operand(None, 0, 1, 64)
    copies = gemm.dot_form_copies_b(xt.device, float32, a_op, b_op, 300, 40, 64)
    assert copies == (xt.device.speed_label == "Intel CPU runtime")
    assert not gemm.dot_form_copies_b(xt.device, float32, a_op, b_op, 300, 40, 512)
    assert not gemm.dot_form_copies_b(xt.device, float32, a_op, b_op, 100, 40, 64)
    clgrad.runtime.reset_stats()
    got = clgrad.nn.functional.linear(xt, wt, bt if bias else None).numpy()
    want = x @ w.T + (b if bias else 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert clgrad.runtime.stats()["launches"] == (2 if copies else 1)     # the bias: epilogue


def test_one_row_product_is_one_launch(device):
    """A one-row product over a deep k (a bias gradient as ones @ g) runs as one launch with
    work-items along the columns: no k-blocks, no padding rows."""
    rng = np.random.default_rng(6)
    g = rng.standard_normal((3000, 70)).astype(np.float32)
    gt = clgrad.tensor(g, device=device)
    ones = clgrad.ones(1, 3000, device=device)
    ones.numpy()
    clgrad.runtime.reset_stats()
    got = (ones @ gt).numpy()
    np.testing.assert_allclose(got, g.sum(0, keepdims=True), rtol=1e-4, atol=1e-3)
    if gemm.uses_cpu_kernels(gt.device, float32):
        assert clgrad.runtime.stats()["launches"] == 1


def test_linear_bias_gradient_sums_rows(device, fp64):
    x = clgrad.tensor(np.random.default_rng(7).standard_normal((40, 3)), device=fp64,
                      requires_grad=True)
    w = clgrad.tensor(np.random.default_rng(8).standard_normal((5, 3)), device=fp64,
                      requires_grad=True)
    for shape in ((5,), (1, 5)):
        b = clgrad.zeros(*shape, dtype=clgrad.float64, device=fp64, requires_grad=True)
        f = lambda x, w, b: clgrad.nn.functional.linear(x, w, b) if len(shape) == 1 else \
            clgrad.addmm(b, x, w.t())                                   # noqa: E731
        assert clgrad.autograd.gradcheck(f, (x, w, b))
        assert clgrad.autograd.gradgradcheck(f, (x, w, b))
