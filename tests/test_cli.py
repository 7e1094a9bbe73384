"""The `clgrad` command through click's CliRunner (and once as `python -m clgrad`)."""
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import clgrad
from clgrad import runtime, selftest
from clgrad.cli import main
from clgrad.runtime import device as devmod
from clgrad.runtime import icd


@pytest.fixture
def cli(monkeypatch, tmp_path):
    monkeypatch.setenv("CLGRAD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("CLGRAD_DEVICE", raising=False)
    runtime.reset_default()
    yield lambda *args: CliRunner().invoke(main, list(args))
    runtime.reset_default()


def test_devices_table(cli):
    r = cli("devices")
    assert r.exit_code == 0, r.output
    ranked = runtime.ranked()
    for d in runtime.devices():
        row = next(line for line in r.output.splitlines() if line.split()[:2] == [str(d.index),
                                                                                   d.spec])
        assert d.name in row and row.rstrip().endswith("PASS")
        assert row.split()[2] == str(ranked.index(d) + 1) and d.speed_label in row
        assert f"{ranked.index(d) + 1}. {d.spec} {d.speed_label}: {d.speed_reason}" in r.output
    assert "fp64" in r.output and "OpenCL C" in r.output
    dev, rule = runtime.choose_device()
    assert f"default: {dev.spec} ({rule})" in r.output


def test_devices_ranked_on_synthetic_devices(cli, fake_devices, monkeypatch):
    monkeypatch.setattr(runtime, "probe_all",
                        lambda devs: [runtime.ProbeResult(d, True) for d in devs])
    r = cli("devices")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    ranking = lines[lines.index(next(x for x in lines if x.startswith("ranking"))) + 1:][:4]
    assert [x.split()[1] for x in ranking] == ["cl:2", "cl:3", "cl:1", "cl:0"]
    assert "4. cl:0 PoCL:" in r.output and "1. cl:2 discrete GPU:" in r.output
    assert "default: cl:2 (fastest device class that passes its probe: discrete GPU)" in r.output
    rows = json.loads(cli("devices", "--json").output)
    assert [(x["spec"], x["rank"], x["speed_class"]) for x in rows] == [
        ("cl:0", 4, "PoCL"), ("cl:1", 3, "discrete GPU"), ("cl:2", 1, "discrete GPU"),
        ("cl:3", 2, "discrete GPU")]
    assert all(x["reason"] for x in rows)


def test_devices_json(cli):
    r = cli("devices", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [row["spec"] for row in rows] == [d.spec for d in runtime.devices()]
    for row in rows:
        assert row["probe"] == "PASS" and row["error"] is None
        for key in ("platform", "name", "type", "compute_units", "global_mem", "fp16", "fp64",
                    "opencl_c_version"):
            assert key in row


def test_devices_failure_exits_nonzero(cli, monkeypatch):
    def bad(devs):
        return [runtime.ProbeResult(d, False, "kaboom") for d in devs]
    monkeypatch.setattr(runtime, "probe_all", bad)
    r = cli("devices")
    assert r.exit_code == 1 and "FAIL" in r.output and "kaboom" in r.output


def test_devices_without_opencl(cli, monkeypatch):
    monkeypatch.setattr(devmod, "_devices", [])
    r = cli("devices")
    assert r.exit_code == 1 and "clgrad[cpu]" in r.output


def test_info(cli, monkeypatch):
    monkeypatch.setenv("CLGRAD_CACHE_DIR", "/nonexistent/clgrad-cache")
    r = cli("info")
    assert r.exit_code == 0, r.output
    dev, rule = runtime.choose_device()
    assert dev.spec in r.output and dev.name in r.output
    assert f"chosen by: {rule}" in r.output
    assert "/nonexistent/clgrad-cache" in r.output
    assert f"clgrad {clgrad.__version__}" in r.output and "pyopencl" in r.output
    assert "numpy" in r.output
    if any("Portable" in d.platform_name for d in runtime.devices()):
        assert "PoCL:" in r.output
    assert f"runtime:   {dev.speed_label}, rank {runtime.ranked().index(dev) + 1}" in r.output
    st = icd.status()
    assert f"Intel CPU: {st.state}: {st.detail}" in r.output
    j = json.loads(cli("info", "--json").output)
    assert j["device"]["spec"] == dev.spec and j["rule"] == rule
    assert j["intel"]["state"] == st.state and j["device"]["speed_class"] == dev.speed_label


def test_info_says_why_intel_is_not_visible(cli, fake_devices, monkeypatch):
    monkeypatch.setattr(icd, "_status", icd.IcdStatus(
        "fails to load", "/v/lib/libintelocl.so cannot be loaded: libimf.so: cannot open "
        "shared object file (the Intel compiler runtime is missing: install intel-cmplr-lib-rt)",
        "/v/lib/libintelocl.so"))
    r = cli("info")
    assert "Intel CPU: fails to load: /v/lib/libintelocl.so cannot be loaded" in r.output
    assert "intel-cmplr-lib-rt" in r.output
    # registered, yet no Intel device listed: OpenCL started before clgrad registered it
    monkeypatch.setattr(icd, "_status", icd.IcdStatus("registered", "added", "/v/lib/x.so",
                                                      "/c/icd/vendors-1"))
    r = cli("info")
    assert "Intel CPU: registered: added; but no Intel CPU device appeared" in r.output
    assert "already initialised" in r.output


def test_info_follows_env(cli, monkeypatch):
    d = runtime.devices()[-1]
    monkeypatch.setenv("CLGRAD_DEVICE", d.spec)
    r = cli("info")
    assert f"chosen by: CLGRAD_DEVICE={d.spec}" in r.output


def test_select_and_clear(cli, tmp_path):
    d = runtime.devices()[0]
    r = cli("select", d.spec)
    assert r.exit_code == 0, r.output
    cfg = tmp_path / "config" / "config.json"
    assert json.loads(cfg.read_text()) == {"device": d.spec}
    assert "saved default" in cli("info").output
    r = cli("select", "--clear")
    assert r.exit_code == 0 and "cleared" in r.output
    assert json.loads(cfg.read_text()) == {}


def test_select_errors(cli):
    r = cli("select", "no-such-device-anywhere")
    assert r.exit_code == 1 and "Available devices" in r.output
    assert cli("select").exit_code == 2              # neither SPEC nor --clear
    assert cli("select", "cpu", "--clear").exit_code == 2


def test_selftest_family(cli, device):
    r = cli("selftest", "--device", device.spec, "--family", "random", "-v")
    assert r.exit_code == 0, r.output
    assert "PASS  random" in r.output and f"passed on {device.spec}" in r.output
    assert "FAIL" not in r.output


def test_selftest_failure_exits_nonzero(cli, monkeypatch, device):
    def one_bad(dev):
        def bad():
            raise selftest._Mismatch("3 of 7 differ")
        yield "random", "deliberately wrong", bad
    monkeypatch.setitem(selftest._CASES, "random", one_bad)
    r = cli("selftest", "--device", device.spec, "--family", "random")
    assert r.exit_code == 1
    assert "FAIL  random       deliberately wrong" in r.output and "3 of 7 differ" in r.output


def test_selftest_bad_device(cli):
    r = cli("selftest", "--device", "no-such-device-anywhere")
    assert r.exit_code == 1 and "Available devices" in r.output


def test_selftest_all_families(device):
    # the function behind `clgrad selftest`, every family: the kernels are shared with the
    # primitive tests, so this mostly checks that no case is broken
    results = selftest.run_selftest(device)
    bad = [f"{r.family} {r.case}: {r.detail}" for r in results if not r.ok]
    assert not bad, "\n".join(bad)
    assert {r.family for r in results} == set(selftest.FAMILIES)


def test_cache_commands(cli, monkeypatch, tmp_path, device):
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(tmp_path / "kc"))
    from clgrad.runtime import program
    tag = uuid.uuid4().hex[:12]
    program.kernel(device, f"__kernel void k_{tag}(__global int* x) {{ x[0] = 1; }}",
                   f"k_{tag}", [None])
    r = cli("cache", "info")
    assert r.exit_code == 0 and str(tmp_path / "kc") in r.output and "entries: 1" in r.output
    r = cli("cache", "clear")
    assert r.exit_code == 0 and "removed 1 cached programs" in r.output
    assert "entries: 0" in cli("cache", "info").output


def test_version(cli):
    r = cli("--version")
    assert r.exit_code == 0 and clgrad.__version__ in r.output


def test_python_dash_m():
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "clgrad", "--help"], capture_output=True,
                         text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    for cmd in ("devices", "info", "select", "selftest", "cache"):
        assert cmd in out.stdout
