"""The OpenCL runtime: the only package that imports pyopencl."""
from .device import Device, devices, ranked
from .errors import (CLGradError, DeviceNotFoundError, KernelBuildError, NoOpenCLError,
                     OutOfMemoryError, UnsupportedDTypeError)
from .memory import Buffer, empty_cache, memory_stats, reset_peak_memory_stats, reset_stats, stats
from .program import cache_dir, cache_info, clear_cache, kernels_dir
from .codegen import check_dtype
from .probe import ProbeResult, probe, probe_all
from .select import (choose_device, config_path, default_device, default_rule, get_device,
                     reset_default, save_default_spec, set_default_device)
from .info import runtime_info

__all__ = [
    "Device", "choose_device", "config_path", "default_device", "default_rule", "devices",
    "get_device", "ranked", "reset_default", "save_default_spec", "set_default_device",
    "CLGradError",
    "DeviceNotFoundError", "KernelBuildError", "NoOpenCLError", "OutOfMemoryError",
    "UnsupportedDTypeError", "Buffer", "empty_cache", "memory_stats", "reset_peak_memory_stats",
    "reset_stats", "stats", "cache_dir", "cache_info", "clear_cache", "kernels_dir",
    "check_dtype", "ProbeResult", "probe", "probe_all", "runtime_info",
]
