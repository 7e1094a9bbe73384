"""`clgrad bench`: the structure and units of its rows on tiny sizes. No test asserts a time."""
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clgrad import bench
from clgrad.cli import main

ROOT = Path(__file__).resolve().parent.parent
FAST = [s for s in bench.SECTIONS if s != "first_step"]


def _invoke(*args):
    r = CliRunner().invoke(main, ["bench", *args])
    assert r.exit_code == 0, r.output
    return r


def _check_row(row, device):
    assert (row["spec"], row["device"], row["platform"], row["driver"]) == (
        device.spec, device.name, device.platform_name, device.driver_version)
    assert row["section"] in bench.SECTIONS and row["case"]
    assert row["better"] == bench.UNITS[row["unit"]]
    assert "clgrad" in row["seconds"] and set(row["values"]) == set(row["seconds"])
    for impl, s in row["seconds"].items():
        assert impl in bench.IMPLS and s > 0 and math.isfinite(s)
        v = row["values"][impl]
        if row["unit"] in ("µs", "ms", "s"):
            scale = {"µs": 1e6, "ms": 1e3, "s": 1.0}[row["unit"]]
            assert v == pytest.approx(s * scale)
        else:
            assert v > 0 and v * s == pytest.approx(row["values"]["clgrad"]
                                                    * row["seconds"]["clgrad"])
    for key, ratio in row["ratios"].items():
        a, b = key.split("/")
        assert ratio == pytest.approx(row["seconds"][a] / row["seconds"][b])


def test_bench_quick_json(device):
    r = _invoke("--quick", "--json", "--repeat", "1", "--device", device.spec,
                *(f"--section={s}" for s in FAST))
    out = json.loads(r.stdout)
    meta, rows = out["meta"], out["rows"]
    assert meta["spec"] == device.spec and meta["quick"] and meta["repeat"] == 1
    assert meta["sections"] == FAST
    for key in ("load_before", "load_after"):
        assert meta[key] is None or meta[key] >= 0
    for row in rows:
        _check_row(row, device)
    by = {}
    for row in rows:
        by.setdefault(row["section"], []).append(row)
    assert [r["case"] for r in by["gemm"]] == ["64x64x64 fp32", "128x128x128 fp32"]
    n = 64
    g = by["gemm"][0]
    assert g["unit"] == "GFLOP/s"
    assert g["values"]["clgrad"] == pytest.approx(2 * n ** 3 / g["seconds"]["clgrad"] / 1e9)
    assert "clgrad/numpy" in g["ratios"]
    assert len(by["conv"]) == 2 and all(r["unit"] == "ms" for r in by["conv"])
    e, = by["elementwise"]
    assert e["unit"] == "GB/s" and {"clgrad", "numpy"} <= set(e["values"])
    assert e["values"]["numpy"] == pytest.approx(12 * bench.QUICK.elementwise
                                                 / e["seconds"]["numpy"] / 1e9)
    assert [r["unit"] for r in by["launch"]] == ["µs", "µs", "µs"]
    assert len(by["train"]) == 3 and all(r["unit"] == "ms" for r in by["train"])
    assert len(by["jit"]) == 4 and all(r["unit"] == "ms" for r in by["jit"])
    assert [r["case"].split()[0] for r in by["jit"]] == ["MLP", "MLP", "LSTM", "VAE"]
    for r in by["jit"]:
        assert "jit" in r["values"] and "clgrad/jit" in r["ratios"] and r["launches"] > 0
        assert ("jit/torch" in r["ratios"]) == (bench._torch() is not None)
    torch_ok = bench._torch() is not None
    for row in by["conv"] + by["launch"] + by["train"] + by["jit"]:
        assert ("torch" in row["values"]) == torch_ok
        assert ("clgrad/torch" in row["ratios"]) == torch_ok


def test_bench_table(device):
    r = _invoke("--quick", "--repeat", "1", "--device", device.spec, "--section", "launch")
    lines = r.stdout.splitlines()
    assert device.name in lines[0] and device.platform_name in lines[0]
    assert device.driver_version in lines[0] and "load " in lines[1]
    head = next(i for i, line in enumerate(lines) if line.startswith("device "))
    assert lines[head].split()[:5] == ["device", "section", "case", "unit", "clgrad"]
    body = [line for line in lines[head + 2:] if line.startswith(device.spec)]
    assert len(body) == 3 and all(" launch " in line and " µs " in line for line in body)
    assert "time ratios" in lines[-1]


def test_bench_first_step_cold_then_warm(device):
    out = bench.run(device, quick=True, repeat=1, sections=["first_step"])
    cold, warm = out["rows"]
    _check_row(cold, device)
    _check_row(warm, device)
    assert "cold" in cold["case"] and "warm" in warm["case"] and cold["unit"] == "s"
    c, w = cold["detail"], warm["detail"]
    # the cold process builds its programs (it may load the one a GEMM probe child built and
    # saved); the warm one, on the same cache folder, builds nothing and loads every binary
    assert c["builds"] > 0
    assert w["builds"] == 0
    # (the second step, also run by both, may build a program the first did not need: a fused
    # chain that appears once the optimizer has its state; cache_entries counts it too)
    assert w["disk_cache_hits"] == c["builds"] + c["disk_cache_hits"] <= cold["cache_entries"]
    assert c["launches"] == w["launches"] > 0
    assert c["first_step_s"] == pytest.approx(c["context_s"] + c["model_s"] + c["step_s"])


def test_bench_without_torch(device, monkeypatch):
    monkeypatch.setattr(bench, "_torch", lambda: None)
    out = bench.run(device, quick=True, repeat=1, sections=["elementwise", "launch"])
    for row in out["rows"]:
        _check_row(row, device)
        assert "torch" not in row["values"] and not any("torch" in k for k in row["ratios"])
    assert out["rows"][0]["values"].keys() == {"clgrad", "numpy"}
    assert out["meta"]["versions"]["torch"] is None


class _FakeBlast:
    """Stands in for pyclblast, which is optional: a product through the host, or an error."""

    def __init__(self, fail):
        self.fail = fail
        self.calls = 0

    def gemm(self, queue, m, n, k, a, b, c, a_ld, b_ld, c_ld):
        self.calls += 1
        if self.fail:
            raise RuntimeError("no kernel for this device")
        c.set(a.get() @ b.get())


@pytest.mark.parametrize("fail", [False, True], ids=["works", "fails"])
def test_bench_clblast_column(device, monkeypatch, fail):
    fake = _FakeBlast(fail)
    monkeypatch.setattr(bench, "_pyclblast", lambda: fake)
    out = bench.run(device, quick=True, repeat=1, sections=["gemm"])
    assert fake.calls > 0
    for row in out["rows"]:
        _check_row(row, device)
        assert ("clblast" in row["values"]) == (not fail)
        assert ("clblast/numpy" in row["ratios"]) == (not fail)
        assert ("no kernel for this device" in row.get("note", "")) == fail


def test_interleaved_alternates_and_takes_medians():
    calls = []
    fns = {k: (lambda k=k: calls.append(k)) for k in ("a", "b")}
    s = bench.interleaved(fns, repeat=3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert set(s) == {"a", "b"} and all(v >= 0 for v in s.values())


def test_bench_sections():
    with pytest.raises(ValueError, match="unknown bench section 'nope'"):
        bench.run(sections=["nope"])
    r = CliRunner().invoke(main, ["bench", "--section", "nope"])
    assert r.exit_code == 2 and "nope" in r.output


def test_same_models_in_both_libraries():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: parity skipped")
    import clgrad
    for build in (lambda lib: bench.mlp(lib, (784, 512, 512, 10)), bench.lenet,
                  lambda lib: bench.gpt(lib, 128, 4, 64, 2, 64),
                  lambda lib: bench.lstm_lm(lib, *bench.FULL.lstm[:4]),
                  lambda lib: bench.vae(lib, *bench.FULL.vae[:3])):
        ours = [tuple(p.shape) for p in build(clgrad).parameters()]
        theirs = [tuple(p.shape) for p in build(torch).parameters()]
        assert ours == theirs and ours


def test_tools_bench_wrapper(device, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "--quick", "--json",
                        "--repeat", "1", "--device", device.spec, "--section", "launch"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [row["section"] for row in out["rows"]] == ["launch", "launch", "launch"]
    assert np.isfinite(out["rows"][0]["values"]["clgrad"])
