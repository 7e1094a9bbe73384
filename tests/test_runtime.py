"""Runtime: device selection rules and errors, the program cache, build errors, the buffer pool,
memory limits, dtype support and the device probe."""
import json
import subprocess
import sys
import threading
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import clgrad
from clgrad import runtime
from clgrad.runtime import device as devmod
from clgrad.runtime import codegen, memory, program


# ---- device selection ---------------------------------------------------------------------------
def test_specs_resolve(fake_devices):
    d = fake_devices
    assert runtime.get_device("cl:1") is d[1]
    assert runtime.get_device(2) is d[2]
    assert runtime.get_device("cl:1:1") is d[2]
    assert runtime.get_device("CL:2:0") is d[3]
    assert runtime.get_device("gpu") is d[2]            # the GPU with the most compute
    assert runtime.get_device("cpu") is d[0]
    assert runtime.get_device("nvidia") is d[2]         # vendor substring, best match
    assert runtime.get_device("SMALL") is d[1]          # name, case-insensitive
    assert runtime.get_device("gfx1030") is d[3]
    assert runtime.get_device(d[1]) is d[1]


def test_spec_without_match_lists_devices(fake_devices):
    for spec in ("cl:9", "cl:0:5", "intel", "accelerator"):
        with pytest.raises(clgrad.DeviceNotFoundError) as e:
            runtime.get_device(spec)
        msg = str(e.value)
        assert repr(spec) in msg
        for dev in fake_devices:
            assert dev.spec in msg and dev.name in msg


BEST = "fastest device class that passes its probe: "


def test_selection_order(fake_devices, monkeypatch, tmp_path):
    d = fake_devices
    monkeypatch.setenv("CLGRAD_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("CLGRAD_DEVICE", raising=False)
    assert runtime.choose_device() == (d[2], BEST + "discrete GPU")
    runtime.save_default_spec("gfx")
    assert json.loads((tmp_path / "config.json").read_text()) == {"device": "gfx"}
    dev, rule = runtime.choose_device()
    assert dev is d[3] and "saved default" in rule
    monkeypatch.setenv("CLGRAD_DEVICE", "cl:1")
    assert runtime.choose_device() == (d[1], "CLGRAD_DEVICE=cl:1")
    assert runtime.choose_device("cpu") == (d[0], "explicit argument")
    runtime.reset_default()
    assert runtime.default_device() is d[1]
    assert runtime.default_rule() == "CLGRAD_DEVICE=cl:1"
    monkeypatch.delenv("CLGRAD_DEVICE")
    runtime.save_default_spec(None)
    assert runtime.choose_device()[0] is d[2]
    runtime.set_default_device("cl:0")
    assert runtime.default_device() is d[0]


def test_no_gpu_falls_back_to_cpu(fake_devices, monkeypatch):
    monkeypatch.setattr(devmod, "_devices", [fake_devices[0]])
    assert runtime.choose_device() == (fake_devices[0], BEST + "PoCL")


# one synthetic description per speed class, fastest first
CLASSES = [
    ("gpu", "NVIDIA CUDA", "GeForce RTX", False, "discrete GPU"),
    ("gpu", "Intel(R) OpenCL Graphics", "Intel(R) UHD Graphics", True, "integrated GPU"),
    ("cpu", "Intel(R) OpenCL", "AMD EPYC", True, "Intel CPU runtime"),
    ("cpu", "AMD Accelerated Parallel Processing", "AMD Ryzen", True, "other CPU runtime"),
    ("cpu", "Portable Computing Language", "pthread-AMD EPYC", True, "PoCL"),
    ("accelerator", "Xilinx", "xilinx_u250", False, "other accelerator"),
    ("cpu", "Oclgrind", "Oclgrind Simulator", False, "emulator"),
    ("accelerator", "Intel(R) FPGA Emulation Platform for OpenCL(TM)",
     "Intel(R) FPGA Emulation Device", False, "emulator"),
]


def test_speed_classes_in_order():
    got = [devmod.SPEED_CLASSES[devmod.speed_class(k, p, n, u)][0] for k, p, n, u, _ in CLASSES]
    assert got == [c[-1] for c in CLASSES]
    assert [devmod.speed_class(k, p, n, u) for k, p, n, u, _ in CLASSES] == \
        sorted(devmod.speed_class(k, p, n, u) for k, p, n, u, _ in CLASSES)
    # PoCL can drive a GPU (pocl-cuda): a GPU is ranked as a GPU whatever its runtime
    assert devmod.speed_class("gpu", "Portable Computing Language", "NVIDIA A100", False) == 0


def test_emulator_builds_halves_as_float(fake_device):
    # Oclgrind reports cl_khr_fp16 but aborts on half arithmetic: its programs get the macro
    # that makes float16 storage-only (codegen's _HALF_DEFS), every other device gets nothing
    for i, (k, p, n, u, label) in enumerate(CLASSES):
        d = fake_device(i, i, 0, n, k, platform=p, unified=u)
        assert d.build_defines == (("-DCLG_HALF_AS_FLOAT",) if label == "emulator" else ())
    from clgrad.runtime import codegen
    assert "!defined(CLG_HALF_AS_FLOAT)" in codegen._HALF_DEFS


def test_ranking_of_synthetic_devices(monkeypatch, fake_device):
    # enumerated slowest first: the ranking reverses them, and cl:N keeps enumeration order
    devs = [fake_device(i, i, 0, n, k, platform=p, unified=u)
            for i, (k, p, n, u, _) in enumerate(reversed(CLASSES))]
    monkeypatch.setattr(devmod, "_devices", devs)
    runtime.reset_default()
    try:
        assert [d.speed_label for d in runtime.ranked()] == [c[-1] for c in CLASSES]
        assert [d.spec for d in runtime.devices()] == [f"cl:{i}" for i in range(len(devs))]
        assert runtime.choose_device() == (devs[-1], BEST + "discrete GPU")
        assert runtime.get_device("cpu").speed_label == "Intel CPU runtime"
    finally:
        runtime.reset_default()


def test_default_skips_a_device_that_fails_its_probe(fake_devices, monkeypatch):
    d = fake_devices
    d[2]._probe = (False, "CL_BUILD_PROGRAM_FAILURE")
    dev, rule = runtime.choose_device()
    assert dev is d[3] and rule.startswith(BEST + "discrete GPU")
    assert "cl:2 discrete GPU failed its probe: CL_BUILD_PROGRAM_FAILURE" in rule
    for x in d:
        x._probe = (False, "broken")
    dev, rule = runtime.choose_device()
    assert dev is d[2] and rule.startswith("no device passed its probe")


def test_real_devices_ranked():
    devs = runtime.devices()
    order = runtime.ranked()
    assert sorted(order, key=lambda d: d.index) == devs
    classes = [d.speed_class for d in order]
    assert classes == sorted(classes)
    # on a machine with both CPU runtimes (CI), Intel's is preferred to PoCL
    labels = [d.speed_label for d in order]
    if "Intel CPU runtime" in labels and "PoCL" in labels:
        assert labels.index("Intel CPU runtime") < labels.index("PoCL")


def test_saving_an_unknown_spec_fails_and_keeps_config(fake_devices, monkeypatch, tmp_path):
    monkeypatch.setenv("CLGRAD_CONFIG_DIR", str(tmp_path))
    with pytest.raises(clgrad.DeviceNotFoundError):
        runtime.save_default_spec("no-such-device")
    assert not (tmp_path / "config.json").exists()


def test_bad_env_spec_is_an_error(fake_devices, monkeypatch):
    monkeypatch.setenv("CLGRAD_DEVICE", "quantum")
    with pytest.raises(clgrad.DeviceNotFoundError, match="quantum"):
        runtime.choose_device()


def test_no_platform(monkeypatch):
    monkeypatch.setattr(devmod, "_devices", None)
    monkeypatch.setattr(devmod, "_platforms", lambda: [])
    runtime.reset_default()
    try:
        assert runtime.devices() == []
        for call in (lambda: runtime.get_device("cl:0"), runtime.choose_device,
                     runtime.default_device):
            with pytest.raises(clgrad.NoOpenCLError) as e:
                call()
            assert "pip install 'clgrad[cpu]'" in str(e.value) and "ICD" in str(e.value)
    finally:
        monkeypatch.setattr(devmod, "_devices", None)
        runtime.reset_default()


def test_device_properties(device):
    p = device.properties()
    for key in ("index", "spec", "platform", "name", "vendor", "type", "compute_units",
                "clock_mhz", "global_mem", "local_mem", "max_alloc", "max_work_group_size",
                "fp16", "fp64", "opencl_c_version", "driver_version"):
        assert key in p
    assert p["spec"] == f"cl:{p['index']}" and p["compute_units"] >= 1
    assert clgrad.device(device.spec) is device
    assert device == device.spec and hash(device) == hash(clgrad.device(device.spec))
    assert clgrad.zeros(2, device=device).device is device


def test_probe_passes(device):
    r = runtime.probe(device)
    assert r.ok, r.error
    assert r.status == "PASS"


def test_probe_reports_failure(device, monkeypatch):
    from clgrad.runtime import codegen

    def broken(*a, **k):
        raise RuntimeError("driver fell over")
    monkeypatch.setattr(codegen, "elementwise_kernel", broken)
    r = runtime.probe(device)
    assert not r.ok and r.status == "FAIL" and "driver fell over" in r.error


def test_import_touches_no_device():
    code = ("import clgrad, clgrad.runtime.device as d, clgrad.runtime.memory as m,"
            " clgrad.runtime.select as s;"
            "assert d._devices is None and s._default is None;"
            "assert not m._pools; print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "clean" in out.stdout


# ---- program cache -------------------------------------------------------------------------------
def _unique_source():
    tag = uuid.uuid4().hex[:12]
    return (f"/* {tag} */\n__kernel void probe_{tag}(__global float* x)\n"
            "{ x[get_global_id(0)] *= 2.0f; }\n"), f"probe_{tag}"


def _forget_in_memory(monkeypatch):
    monkeypatch.setattr(program, "_programs", {})
    monkeypatch.setattr(program, "_kernels", {})


def _run(device, src, name):
    k = program.kernel(device, src, name, [None])
    b = memory.Buffer(device, 16)
    b.write(np.arange(4, dtype=np.float32))
    k((4,), None, b.raw)
    return b.read(np.empty(4, np.float32))


def test_cache_miss_then_hit(device, monkeypatch, tmp_path):
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CLGRAD_NO_CACHE", raising=False)
    src, name = _unique_source()
    runtime.reset_stats()
    np.testing.assert_array_equal(_run(device, src, name), [0, 2, 4, 6])
    assert runtime.stats()["builds"] == 1 and runtime.stats()["disk_cache_hits"] == 0
    key = program.cache_key(src, program.BUILD_OPTIONS, device)
    entry = tmp_path / key[:2] / key
    assert sorted(p.name for p in entry.iterdir()) == ["binary.bin", "build.log", "meta.json",
                                                       "source.cl"]
    assert (entry / "source.cl").read_text() == src
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["options"] == list(program.BUILD_OPTIONS) and meta["clgrad"] == clgrad.__version__
    assert not list(tmp_path.glob("*/.tmp-*")), "temporary entry left behind"
    # same process, memory cache: no build, no disk read
    runtime.reset_stats()
    _run(device, src, name)
    assert runtime.stats()["builds"] == 0 and runtime.stats()["disk_cache_hits"] == 0
    # a fresh process (memory caches gone): the disk entry is used
    _forget_in_memory(monkeypatch)
    runtime.reset_stats()
    np.testing.assert_array_equal(_run(device, src, name), [0, 2, 4, 6])
    assert runtime.stats()["builds"] == 0 and runtime.stats()["disk_cache_hits"] == 1
    info = runtime.cache_info()
    assert info["path"] == str(tmp_path) and info["entries"] == 1 and info["bytes"] > 0
    assert runtime.clear_cache() == 1 and runtime.cache_info()["entries"] == 0


def test_cache_key_changes(device):
    src, _ = _unique_source()
    k = program.cache_key(src, ("-cl-std=CL1.2",), device)
    assert k == program.cache_key(src, ("-cl-std=CL1.2",), device)
    assert k != program.cache_key(src + " ", ("-cl-std=CL1.2",), device)
    assert k != program.cache_key(src, ("-cl-std=CL1.2", "-cl-fast-relaxed-math"), device)
    for i in range(len(device.identity)):
        ident = list(device.identity)
        ident[i] += "x"                     # another platform, device, version or driver
        assert k != program.cache_key(src, ("-cl-std=CL1.2",), SimpleNamespace(identity=ident))


def test_no_cache_env(device, monkeypatch, tmp_path):
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CLGRAD_NO_CACHE", "1")
    src, name = _unique_source()
    runtime.reset_stats()
    _run(device, src, name)
    _forget_in_memory(monkeypatch)
    _run(device, src, name)
    assert runtime.stats()["builds"] == 2 and runtime.stats()["disk_cache_hits"] == 0
    assert not any(tmp_path.iterdir())
    assert runtime.cache_info()["enabled"] is False


def test_corrupt_entry_rebuilds(device, monkeypatch, tmp_path):
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CLGRAD_NO_CACHE", raising=False)
    src, name = _unique_source()
    _run(device, src, name)
    key = program.cache_key(src, program.BUILD_OPTIONS, device)
    binary = tmp_path / key[:2] / key / "binary.bin"
    binary.write_bytes(b"this is not a program binary")
    _forget_in_memory(monkeypatch)
    runtime.reset_stats()
    np.testing.assert_array_equal(_run(device, src, name), [0, 2, 4, 6])
    assert runtime.stats()["builds"] == 1
    assert binary.read_bytes() != b"this is not a program binary"    # replaced by the rebuild
    _forget_in_memory(monkeypatch)
    runtime.reset_stats()
    _run(device, src, name)
    assert runtime.stats()["disk_cache_hits"] == 1


def test_unwritable_cache_still_computes(device, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(blocker / "cache"))   # under a regular file
    src, name = _unique_source()
    np.testing.assert_array_equal(_run(device, src, name), [0, 2, 4, 6])


def test_build_error_has_log_and_source(device):
    src = ("__kernel void clg_broken(__global float* x)\n"
           "{ x[0] = clg_no_such_function(x[1]); }\n")
    with pytest.raises(clgrad.KernelBuildError) as e:
        program.kernel(device, src, "clg_broken", [None])
    err = e.value
    assert err.kernel_name == "clg_broken"
    assert Path(err.source_path).read_text() == src
    assert "clg_no_such_function" in err.build_log
    assert str(err.source_path) in str(err) and "-cl-std=CL1.2" in str(err)


def test_build_log_kept_with_the_program(device, monkeypatch, tmp_path):
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CLGRAD_NO_CACHE", raising=False)
    src, name = _unique_source()
    assert program.build_log(device, src) is None           # not built yet
    _run(device, src, name)
    log = program.build_log(device, src)
    assert isinstance(log, str)
    if device.speed_label == "Intel CPU runtime":
        assert log.strip()                                   # Intel's compiler talks on success
    key = program.cache_key(src, program.BUILD_OPTIONS, device)
    assert (tmp_path / key[:2] / key / "build.log").read_text() == log
    # loaded from disk in a "new process": the record still has the original build's log
    _forget_in_memory(monkeypatch)
    monkeypatch.setattr(program, "_logs", {})
    runtime.reset_stats()
    _run(device, src, name)
    assert runtime.stats()["disk_cache_hits"] == 1 and program.build_log(device, src) == log


def test_no_compiler_warning_escapes(device, monkeypatch, tmp_path):
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CLGRAD_NO_CACHE", raising=False)
    tag = uuid.uuid4().hex[:12]
    # an unused variable: compilers that stay quiet on success still log a warning here
    src = (f"__kernel void chatty_{tag}(__global float* x)\n"
           "{ int unused = 3; x[get_global_id(0)] += 1.0f; }\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        program.kernel(device, src, f"chatty_{tag}", [None])        # source build
        _forget_in_memory(monkeypatch)
        program.kernel(device, src, f"chatty_{tag}", [None])        # binary from disk
        warnings.warn("a user's own", program.cl.CompilerWarning)   # not silenced for others
    compiler = [w for w in seen if issubclass(w.category, program.cl.CompilerWarning)]
    assert [str(w.message) for w in compiler] == ["a user's own"]


def test_render_names_missing_placeholder():
    with pytest.raises(KeyError, match="elementwise.cl needs a value for"):
        program.render("elementwise", name="x")


def test_kernels_dir(monkeypatch, tmp_path):
    d = runtime.kernels_dir()
    assert (d / "elementwise.cl").is_file()
    monkeypatch.setenv("CLGRAD_KERNELS_DIR", str(tmp_path))
    assert runtime.kernels_dir() == tmp_path


def test_memoize_makes_once_across_threads():
    calls, gate = [], threading.Barrier(8)

    @program.memoize
    def make(tag, n):
        calls.append((tag, n))
        return [tag] * n

    def race(_):
        gate.wait()
        return make("memo-x", 3)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(race, range(8)))
    assert calls == [("memo-x", 3)]
    assert all(g is got[0] for g in got)
    assert make("memo-x", 3) is got[0] and len(calls) == 1
    assert make("memo-y", 1) == ["memo-y"] and len(calls) == 2

    @program.memoize
    def maybe(tag):
        calls.append(tag)
        return None                          # "cannot run here" is asked again, not kept
    assert maybe("none") is None and maybe("none") is None
    assert calls[-2:] == ["none", "none"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optim_lerp_weight_branch_is_torchs(device, dtype):
    """clg_lerp in optimizer kernels switches formula at |w| = 0.5 (torch.lerp), negative
    weights included; compared with a float64 reference of both sides."""
    if dtype == "float64" and not device.has_fp64:
        pytest.skip(f"{device.name} has no cl_khr_fp64")
    dt = getattr(clgrad, dtype)
    k = codegen.optim_kernel(device, f"optim_lerp_test_{dt.short}", dt, (), ("w",),
                             "p = clg_lerp(p, g, w);", False)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(37) * 3
    b = rng.standard_normal(37) * 3
    tol = 1e-6 if dtype == "float32" else 1e-14
    for w in (-2.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0):
        p = clgrad.tensor(a, dtype=dt, device=device)
        g = clgrad.tensor(b, dtype=dt, device=device)
        k.launch_1d(a.size, p._buf.raw, g._buf.raw, w, 0, a.size)
        ref = a + w * (b - a)
        np.testing.assert_allclose(p.numpy(), ref, rtol=tol, atol=tol * 10, err_msg=f"w={w}")
        if w == 1.0:
            # the far-side formula makes weight 1 give exactly the end point
            np.testing.assert_array_equal(p.numpy(), b.astype(p.numpy().dtype))


def test_kernel_layout_checked_against_source(device):
    src = "__kernel void clg_layout_probe(__global float* x, int n) { if (n) x[0] = 1; }"
    with pytest.raises(TypeError, match="takes 2 arguments but clgrad declares 3"):
        program.kernel(device, src, "clg_layout_probe", [None, np.int32, np.int32])
    args = program.Args().buffer("float", "x").scalar("int", "n")
    assert str(args) == "__global float* x, int n"
    k = program.kernel(device, f"__kernel void clg_layout_ok({args}) {{ if (n) x[0] = 1; }}",
                       "clg_layout_ok", args)
    assert k.layout is args


@pytest.mark.parametrize("family,bases", [
    ("conv", ("pad", "pad_grad")),
    ("pool", ("max_pool", "max_pool_grad", "avg_pool", "avg_pool_grad", "unpool",
              "unpool_grad")),
    ("upsample", ("bilinear", "bilinear_grad")),
    ("nearest", ("nearest", "nearest_grad"))])
def test_window_layouts_match_templates(device, family, bases):
    # Kernel raises when a declared layout and the built kernel's argument count disagree
    for base in bases:
        assert codegen.window_kernel(device, family, base, clgrad.float32).name.startswith(base)
    if family in ("pool", "nearest"):           # these two also build for integer types
        for dt in (clgrad.int64, clgrad.uint8):
            assert codegen.window_kernel(device, family, bases[0], dt).name.startswith(bases[0])


# ---- memory --------------------------------------------------------------------------------------
def test_pool_reuses_buffers(device):
    runtime.empty_cache(device)
    runtime.reset_stats()
    b = memory.Buffer(device, 12345)
    raw = b.raw
    del b
    assert runtime.stats()["allocs"] == 1
    b2 = memory.Buffer(device, 12345 - 7)          # same size bucket
    assert b2.raw is raw
    s = runtime.stats()
    assert s["allocs"] == 1 and s["pool_hits"] == 1
    x = clgrad.ones(1000, device=device)
    clgrad.synchronize(device)    # a pending fill holds its buffer until it is launched
    del x
    runtime.reset_stats()
    y = clgrad.ones(1000, device=device)
    assert runtime.stats()["pool_hits"] == 1 and runtime.stats()["allocs"] == 0
    del y, b2


def test_memory_stats_and_empty_cache(device):
    runtime.empty_cache(device)
    runtime.reset_peak_memory_stats(device)
    base = clgrad.memory_stats(device)
    assert base["reserved_bytes"] == base["allocated_bytes"]
    x = clgrad.empty(1 << 18, device=device)              # 1 MiB of float32
    s = clgrad.memory_stats(device)
    assert s["allocated_bytes"] - base["allocated_bytes"] >= 1 << 20
    assert s["peak_allocated_bytes"] >= s["allocated_bytes"]
    del x
    s2 = clgrad.memory_stats(device)
    assert s2["allocated_bytes"] == base["allocated_bytes"]
    assert s2["reserved_bytes"] >= base["reserved_bytes"] + (1 << 20)    # parked in the pool
    assert s2["peak_allocated_bytes"] == s["peak_allocated_bytes"]
    clgrad.empty_cache()
    s3 = clgrad.memory_stats(device)
    assert s3["reserved_bytes"] == s3["allocated_bytes"] == base["allocated_bytes"]


def test_tensor_over_max_alloc(device):
    n = device.max_alloc_size // 4 + 1
    with pytest.raises(clgrad.OutOfMemoryError) as e:
        clgrad.empty(n, device=device)
    msg = str(e.value)
    assert str(device.max_alloc_size) in msg and "MAX_MEM_ALLOC_SIZE" in msg
    assert str(n * 4) in msg and device.spec in msg


def test_allocation_failure_empties_pool_then_raises(device, monkeypatch):
    p = memory.pool(device)
    p.empty()        # earlier tests may have parked a buffer of the size asked for below
    parked = memory.Buffer(device, 4096)
    del parked
    p.reap()        # (alloc reaps too, but before it is patched below)
    assert p.pooled_bytes > 0
    calls = []

    def failing(size):
        calls.append(size)
        raise memory.cl.MemoryError("test", memory.cl.status_code.MEM_OBJECT_ALLOCATION_FAILURE,
                                    "")
    monkeypatch.setattr(p, "_raw_alloc", failing)
    with pytest.raises(clgrad.OutOfMemoryError) as e:
        memory.Buffer(device, 1 << 20)
    assert len(calls) == 2 and p.pooled_bytes == 0          # retried once after emptying
    assert str(1 << 20) in str(e.value) and device.spec in str(e.value)


def _python_calls_while(fn):
    """The Python functions that run while fn() runs (C functions do not count)."""
    calls = []

    def profile(frame, event, arg):
        if event == "call":
            calls.append(frame.f_code.co_name)
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return [c for c in calls if c != "<lambda>"]


def test_dropping_a_buffer_or_a_tensor_runs_no_python_code(device, no_gc):
    """A pending Ctrl-C is delivered when Python code starts; inside a __del__ it would be
    printed as "Exception ignored" and lost. So the death of a Buffer, or of a tensor, runs
    only C code, and the pool takes the memory back at its next allocation or reading."""
    held = [memory.Buffer(device, 1000)]
    assert _python_calls_while(lambda: held.clear()) == []
    t = [clgrad.arange(300.0, device=device) * 2]
    t[0].numpy()
    assert _python_calls_while(lambda: t.clear()) == []
    p = memory.pool(device)
    before = runtime.memory_stats(device)["allocated_bytes"]
    b = [memory.Buffer(device, 5000)]
    assert runtime.memory_stats(device)["allocated_bytes"] == before + 5120
    b.clear()
    assert p.dead                                       # queued, not yet taken back
    assert runtime.memory_stats(device)["allocated_bytes"] == before
    again = memory.Buffer(device, 5000)                 # ... and handed out again
    assert not p.dead and again.raw is not None


def test_buffers_dying_on_many_threads_all_return(device, no_gc):
    p = memory.pool(device)
    before = runtime.memory_stats(device)["allocated_bytes"]

    def churn(k):
        for i in range(200):
            memory.Buffer(device, 256 * (1 + (i + k) % 5))
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(churn, range(8)))
    assert runtime.memory_stats(device)["allocated_bytes"] == before
    assert not p.dead


def test_float64_needs_fp64(device, monkeypatch):
    monkeypatch.setattr(runtime.Device, "has_fp64", property(lambda self: False))
    with pytest.raises(clgrad.UnsupportedDTypeError, match="cl_khr_fp64"):
        clgrad.zeros(2, dtype=clgrad.float64, device=device)
    with pytest.raises(clgrad.UnsupportedDTypeError):
        clgrad.ones(2, device=device).double()
    # float16 is storage on every device: it still works
    h = clgrad.ones(3, dtype=clgrad.float16, device=device)
    assert h.numpy().dtype == np.float16


def test_transfers_counted(device):
    runtime.reset_stats()
    x = clgrad.tensor([1.0, 2.0, 3.0], device=device)
    x.numpy()
    s = runtime.stats()
    assert s["h2d"] == 1 and s["d2h"] == 1 and s["h2d_bytes"] == 12 and s["d2h_bytes"] == 12


def test_concurrent_store_keeps_one_entry(device, monkeypatch, tmp_path):
    # a second writer of the same key (another process that built the same program) loses the
    # rename race quietly: the first entry stays whole and no temporary folder is left
    monkeypatch.setenv("CLGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CLGRAD_NO_CACHE", raising=False)
    src, name = _unique_source()
    _run(device, src, name)
    key = program.cache_key(src, program.BUILD_OPTIONS, device)
    entry = tmp_path / key[:2] / key
    before = {p.name: p.read_bytes() for p in entry.iterdir()}
    prg = program.build(device, src, name)
    program._store_cached(key, src, program.BUILD_OPTIONS, device, prg, "second writer")
    assert {p.name: p.read_bytes() for p in entry.iterdir()} == before
    assert [p.name for p in entry.parent.iterdir()] == [key]
