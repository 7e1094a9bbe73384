"""What `clgrad info` reports: the device the rules pick now and why, the Intel runtime's
registration, the kernel cache, and versions."""
from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path

import numpy as np
import pyopencl as cl

from ..version import __version__
from . import device as _device
from . import select
from . import icd
from .errors import CLGradError
from .program import cache_info


def _dist_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def icd_sources() -> list[str]:
    """Where the OpenCL ICD loader looks for drivers on this machine (for `clgrad info`)."""
    out = []
    env = os.environ.get("OCL_ICD_VENDORS")
    if env:
        out.append(f"OCL_ICD_VENDORS={env}")
    vendors = Path("/etc/OpenCL/vendors")
    if vendors.is_dir():
        out += [str(p) for p in sorted(vendors.glob("*.icd"))]
    return out


def pocl_builds() -> list[dict]:
    """Each PoCL platform visible, and whether it is the pip wheel (pocl-binary-distribution,
    a relocatable build) or a system package: they differ a lot in speed (POCL-FACTS)."""
    out = []
    for d in _device.devices():
        if "portable computing language" not in d.platform_name.lower():
            continue
        ver = d.platform_version
        origin = "pip pocl-binary-distribution" if "RELOC" in ver else "system package"
        out.append({"spec": d.spec, "device": d.name, "platform_version": ver,
                    "origin": origin})
    return out


def intel_runtime() -> dict:
    """Whether a pip-installed Intel CPU runtime is registered with the ICD loader, and if it
    is not visible, why (call after the devices were listed)."""
    st = icd.status() or icd.register()
    out = {"state": st.state, "detail": st.detail, "library": st.library,
           "vendors_dir": st.vendors_dir}
    visible = [d.spec for d in _device.devices() if d.speed_label == "Intel CPU runtime"]
    out["devices"] = visible
    if st.visible and not visible:
        out["detail"] += ("; but no Intel CPU device appeared: OpenCL was already initialised "
                          "in this process before clgrad registered the runtime (import clgrad "
                          "and create a tensor before other OpenCL code, or set OCL_ICD_VENDORS "
                          "yourself)")
    return out


def runtime_info() -> dict:
    """The chosen device and the rule that chose it, cache state and versions (never raises
    for a missing device: the error text goes into the report instead)."""
    info: dict = {"versions": {
        "clgrad": __version__, "pyopencl": cl.VERSION_TEXT, "numpy": np.__version__,
        "pocl-binary-distribution": _dist_version("pocl-binary-distribution"),
        "intel-opencl-rt": _dist_version("intel-opencl-rt"),
        "intel-cmplr-lib-rt": _dist_version("intel-cmplr-lib-rt"),
    }}
    try:
        dev, rule = select.choose_device()
        info["device"] = dev.properties()
        info["rule"] = rule
        info["device"]["reason"] = dev.speed_reason
        info["device"]["rank"] = _device.ranked().index(dev) + 1
    except CLGradError as e:
        info["device"] = None
        info["rule"] = f"none: {e}"
    info["devices"] = len(_device.devices())
    info["config"] = str(select.config_path())
    info["saved_default"] = select._read_config().get("device")
    info["env_device"] = os.environ.get("CLGRAD_DEVICE") or None
    info["cache"] = cache_info()
    info["pocl"] = pocl_builds()
    info["icd"] = icd_sources()
    info["intel"] = intel_runtime()
    return info
