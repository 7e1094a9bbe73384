"""Registering a pip-installed Intel CPU runtime with the ICD loader (runtime/icd.py), on fake
installation layouts in tmp, and once for real in a fresh process."""
import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clgrad.runtime import icd

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3/lib/libintelocl.so"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the vendors-folder layout is the Linux ICD loader's")


def _loaded_libc() -> str:
    # a real shared library that loads anywhere: the C library this process already mapped
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if "/libc.so" in path or "/libc-" in path:
            return path
    pytest.skip("no libc path in /proc/self/maps")


@pytest.fixture
def layout(tmp_path):
    """A fake venv whose lib/libintelocl.so loads, a system vendors folder with an NVIDIA ICD
    and the wheel's placeholder ICD, and an environment dict pointing at them."""
    venv = tmp_path / "venv"
    (venv / "lib").mkdir(parents=True)
    lib = venv / "lib" / "libintelocl.so"
    lib.symlink_to(_loaded_libc())
    system = tmp_path / "etc-vendors"
    system.mkdir()
    (system / "nvidia.icd").write_text("libnvidia-opencl.so.1\n")
    (system / "intel-cpu.icd").write_text(PLACEHOLDER + "\n")
    env = {"CLGRAD_CACHE_DIR": str(tmp_path / "cache"), "OPENCL_VENDOR_PATH": str(system)}
    return venv, lib, env


def _files(folder) -> dict:
    return {p.name: p.read_text() for p in Path(folder).iterdir()}


@linux_only
def test_registers_and_keeps_system_icds(layout, tmp_path):
    venv, lib, env = layout
    st = icd._register(env, [venv])
    assert st.state == "registered" and st.visible and st.library == str(lib)
    folder = Path(env["OCL_ICD_VENDORS"])
    assert str(folder) == st.vendors_dir and folder.parent == tmp_path / "cache" / "icd"
    # the corrected ICD names the venv's library; the system's NVIDIA ICD is kept; the
    # placeholder pointing nowhere is dropped
    assert _files(folder) == {icd.ICD_NAME: f"{lib}\n", "nvidia.icd": "libnvidia-opencl.so.1\n"}
    # a second process writes nothing new: the folder is named after its content
    env2 = {k: v for k, v in env.items() if k != "OCL_ICD_VENDORS"}
    assert icd._register(env2, [venv]).vendors_dir == st.vendors_dir
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]    # no temp folders


@linux_only
def test_user_vendors_are_merged(layout, tmp_path):
    venv, lib, env = layout
    user = tmp_path / "user-vendors"
    user.mkdir()
    (user / "amd.icd").write_text("/opt/rocm/lib/libamdocl64.so\n")
    (user / icd.ICD_NAME).write_text("libsomething-else.so\n")     # same file name as ours
    env["OCL_ICD_VENDORS"] = str(user)
    st = icd._register(env, [venv])
    assert st.state == "registered" and f"OCL_ICD_VENDORS={user}" in st.detail
    # the user's folder replaced the system one, so the system's ICDs stay out
    assert _files(env["OCL_ICD_VENDORS"]) == {icd.ICD_NAME: f"{lib}\n",
                                              "amd.icd": "/opt/rocm/lib/libamdocl64.so\n",
                                              f"other-{icd.ICD_NAME}": "libsomething-else.so\n"}
    # OCL_ICD_VENDORS may also name one .icd file, or a library
    env["OCL_ICD_VENDORS"] = str(user / "amd.icd")
    icd._register(env, [venv])
    assert _files(env["OCL_ICD_VENDORS"])["amd.icd"] == "/opt/rocm/lib/libamdocl64.so\n"
    env["OCL_ICD_VENDORS"] = str(lib.parent / "libother.so")
    (lib.parent / "libother.so").write_text("")
    icd._register(env, [venv])
    assert _files(env["OCL_ICD_VENDORS"])["user-libother.icd"] == f"{lib.parent}/libother.so\n"


@linux_only
def test_already_registered_is_left_alone(layout, tmp_path):
    venv, lib, env = layout
    user = tmp_path / "mine"
    user.mkdir()
    (user / "intel.icd").write_text(f"{lib}\n")
    env["OCL_ICD_VENDORS"] = str(user)
    st = icd._register(env, [venv])
    assert st.state == "already registered" and st.visible
    assert env["OCL_ICD_VENDORS"] == str(user)
    # a child process inherits clgrad's own folder and finds it registered too
    env2 = {k: v for k, v in env.items() if k != "OCL_ICD_VENDORS"}
    first = icd._register(env2, [venv])
    again = icd._register(dict(env2), [venv])
    assert first.state == "registered" and again.state == "already registered"


@linux_only
def test_other_intel_runtime_is_not_doubled(layout, tmp_path):
    venv, lib, env = layout
    system_lib = tmp_path / "opt" / "libintelocl.so"
    system_lib.parent.mkdir()
    system_lib.write_text("")
    (Path(env["OPENCL_VENDOR_PATH"]) / "intel-system.icd").write_text(f"{system_lib}\n")
    st = icd._register(env, [venv])
    assert st.state == "system runtime present" and str(system_lib) in st.detail
    assert "OCL_ICD_VENDORS" not in env


def test_opt_out(layout):
    venv, lib, env = layout
    env[icd.OPT_OUT] = "1"
    st = icd._register(env, [venv])
    assert st.state == "opted out" and not st.visible and icd.OPT_OUT in st.detail
    assert "OCL_ICD_VENDORS" not in env and not Path(env["CLGRAD_CACHE_DIR"]).exists()


def test_not_installed(tmp_path):
    env = {"CLGRAD_CACHE_DIR": str(tmp_path / "cache")}
    st = icd._register(env, [tmp_path / "empty-venv"])
    assert st.state == "not installed" and "clgrad[cpu]" in st.detail
    assert str(tmp_path / "empty-venv") in st.detail and "OCL_ICD_VENDORS" not in env


@linux_only
def test_library_that_fails_to_load(layout):
    venv, lib, env = layout
    lib.unlink()
    lib.write_bytes(b"not an ELF file")
    st = icd._register(env, [venv])
    assert st.state == "fails to load" and not st.visible
    assert str(lib) in st.detail and "cannot be loaded" in st.detail
    assert "OCL_ICD_VENDORS" not in env


def test_missing_compiler_runtime_is_named(layout, monkeypatch):
    venv, lib, env = layout

    def fail(path):
        raise OSError("libimf.so: cannot open shared object file: No such file or directory")
    monkeypatch.setattr(ctypes, "CDLL", fail)
    st = icd._register(env, [venv])
    assert st.state == "fails to load"
    assert "libimf.so" in st.detail and "intel-cmplr-lib-rt" in st.detail


@linux_only
def test_unwritable_cache_falls_back_to_temp(layout, tmp_path, monkeypatch):
    venv, lib, env = layout
    blocker = tmp_path / "file"
    blocker.write_text("")
    env["CLGRAD_CACHE_DIR"] = str(blocker / "cache")
    monkeypatch.setattr(icd.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    st = icd._register(env, [venv])
    assert st.state == "registered"
    assert Path(st.vendors_dir).parent == tmp_path / "tmp" / f"clgrad-icd-{os.getuid()}"
    assert _files(st.vendors_dir)[icd.ICD_NAME] == f"{lib}\n"


def test_vendors_root_follows_cache_dir(tmp_path):
    assert icd.vendors_root({"CLGRAD_CACHE_DIR": str(tmp_path)}) == tmp_path / "icd"
    assert icd.vendors_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "clgrad" / "icd"


_LIST = ("import clgrad.runtime as r, clgrad.runtime.icd as icd, os;"
         "print(sorted({d.platform_name for d in r.devices()}));"
         "print(icd.status().state)")


def _fresh(extra_env, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OCL_ICD_VENDORS", icd.OPT_OUT, "CLGRAD_DEVICE")}
    env.update(CLGRAD_CACHE_DIR=str(tmp_path / "cache"), **extra_env)
    out = subprocess.run([sys.executable, "-c", _LIST], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@linux_only
def test_fresh_process_sees_intel_and_pocl(tmp_path):
    # the real installation: no OCL_ICD_VENDORS set by anyone, both CPU runtimes appear
    if icd.find_library() is None:
        pytest.skip("intel-opencl-rt is not installed here (the `cpu` extra adds it on x86-64)")
    out = _fresh({}, tmp_path)
    assert "Intel(R) OpenCL" in out and "registered" in out
    from importlib.util import find_spec
    if find_spec("pocl_binary_distribution"):
        assert "Portable Computing Language" in out
    opted = _fresh({icd.OPT_OUT: "1"}, tmp_path)
    assert "opted out" in opted


def test_import_registers_nothing():
    code = ("import os, clgrad, clgrad.runtime.icd as icd;"
            "assert icd.status() is None and 'OCL_ICD_VENDORS' not in os.environ;"
            "print('clean')")
    env = {k: v for k, v in os.environ.items() if k != "OCL_ICD_VENDORS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "clean" in out.stdout
