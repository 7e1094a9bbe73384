"""Test configuration: devices come from CLGRAD_TEST_DEVICES (default: every device), and each
test runs with the kernel cache and config in temporary folders unless it asks otherwise."""
import os

import pytest

import clgrad
from clgrad import runtime


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
