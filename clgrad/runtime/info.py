"""What `clgrad info` reports: the device the rules pick now, the kernel cache, and versions."""
from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path

import numpy as np
import pyopencl as cl

from ..version import __version__
from . import device as _device
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


def runtime_info() -> dict:
    """The chosen device and the rule that chose it, cache state and versions (never raises
    for a missing device: the error text goes into the report instead)."""
    info: dict = {"versions": {
        "clgrad": __version__, "pyopencl": cl.VERSION_TEXT, "numpy": np.__version__,
        "pocl-binary-distribution": _dist_version("pocl-binary-distribution"),
    }}
    try:
        dev, rule = _device.choose_device()
        info["device"] = dev.properties()
        info["rule"] = rule
    except CLGradError as e:
        info["device"] = None
        info["rule"] = f"none: {e}"
    info["devices"] = len(_device.devices())
    info["config"] = str(_device.config_path())
    info["saved_default"] = _device._read_config().get("device")
    info["env_device"] = os.environ.get("CLGRAD_DEVICE") or None
    info["cache"] = cache_info()
    info["pocl"] = pocl_builds()
    info["icd"] = icd_sources()
    return info
