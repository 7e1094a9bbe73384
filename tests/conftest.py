"""Test configuration: devices come from CLGRAD_TEST_DEVICES (default: every device), and each
test runs with the kernel cache and config in temporary folders unless it asks otherwise."""
import gc
import os
from types import SimpleNamespace

import pytest

import clgrad
from clgrad import runtime
from clgrad.runtime import lazy


def _test_devices():
    spec = os.environ.get("CLGRAD_TEST_DEVICES")
    if spec:
        return [runtime.get_device(s) for s in spec.split(",") if s.strip()]
    return runtime.devices()


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devs = _test_devices()
        metafunc.parametrize("device", devs, ids=[f"{d.spec}-{d.name[:20]}" for d in devs])


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory, monkeypatch):
    # a developer's saved default device or CLGRAD_DEVICE must not steer the tests
    monkeypatch.setenv("CLGRAD_CONFIG_DIR", str(tmp_path_factory.getbasetemp() / "config"))
    monkeypatch.delenv("CLGRAD_DEVICE", raising=False)
    yield


@pytest.fixture(autouse=True)
def _no_fault_left_unread():
    """A device fault (runtime/faults.py) raises at the first sync after its kernel: one a test
    leaves unread would fail whichever test syncs next on that worker. Read it here instead, so
    the test that caused it is the one that fails."""
    yield
    from clgrad.runtime import faults
    if not faults._armed:
        return
    errors = []
    for d in runtime.devices():
        if d.index in faults._armed:
            try:
                d.synchronize()
            except Exception as e:          # noqa: BLE001 - reported below
                errors.append(f"{d.spec}: {e}")
    if errors:
        pytest.fail("the test left a device fault unread: " + "; ".join(errors))


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    # one kernel cache for the whole run, outside the user's home
    os.environ.setdefault("CLGRAD_CACHE_DIR", str(tmp_path_factory.mktemp("kcache")))
    yield


@pytest.fixture
def fp64(device):
    if not device.has_fp64:
        pytest.skip(f"{device.name} has no cl_khr_fp64: float64 gradcheck cannot run")
    return device


class FakeDevice(runtime.Device):
    """A Device with made-up properties, for the selection rules and the CLI's formatting (never
    touches OpenCL; its probe answer is preset)."""

    def __init__(self, index, plat, dev, name, kind, cus=8, vendor="Acme", platform="Acme CL",
                 unified=False, probe=(True, "")):
        super().__init__(index, plat, dev, SimpleNamespace(preferred_vector_width_float=4))
        self._props = dict(name=name, kind=kind, cus=cus, vendor=vendor, platform=platform,
                           unified=unified)
        self._probe = probe

    name = property(lambda self: self._props["name"])
    vendor = property(lambda self: self._props["vendor"])
    platform_name = property(lambda self: self._props["platform"])
    platform_version = property(lambda self: "OpenCL 1.2 made-up")
    kind = property(lambda self: self._props["kind"])
    compute_units = property(lambda self: self._props["cus"])
    host_unified_memory = property(lambda self: self._props["unified"])
    clock_mhz = property(lambda self: 1000)

    def properties(self) -> dict:
        return {"index": self.index, "spec": self.spec, "platform": self.platform_name,
                "name": self.name, "vendor": self.vendor, "type": self.kind,
                "compute_units": self.compute_units, "global_mem": 1 << 30, "fp16": False,
                "fp64": True, "opencl_c_version": "OpenCL C 1.2",
                "speed_class": self.speed_label}


@pytest.fixture
def fake_device():
    return FakeDevice


@pytest.fixture
def fake_devices(monkeypatch):
    """Four made-up devices in place of the real ones: a PoCL CPU and three GPUs."""
    from clgrad.runtime import device as devmod
    devs = [FakeDevice(0, 0, 0, "pthread-Zen CPU", "cpu", cus=32,
                       platform="Portable Computing Language"),
            FakeDevice(1, 1, 0, "GeForce small", "gpu", cus=10, vendor="NVIDIA Corporation",
                       platform="NVIDIA CUDA"),
            FakeDevice(2, 1, 1, "GeForce big", "gpu", cus=80, vendor="NVIDIA Corporation",
                       platform="NVIDIA CUDA"),
            FakeDevice(3, 2, 0, "gfx1030", "gpu", cus=40, vendor="AMD", platform="AMD APP")]
    monkeypatch.setattr(devmod, "_devices", devs)
    runtime.reset_default()
    yield devs
    runtime.reset_default()


@pytest.fixture
def no_gc():
    """No garbage collection during the test, after settling what earlier tests left (pending
    lazy work holds buffers until it is realized; a cycle collected mid-test would free its
    buffers and move the allocated figure under the test)."""
    lazy.flush()
    gc.collect()
    gc.disable()
    yield
    gc.enable()
