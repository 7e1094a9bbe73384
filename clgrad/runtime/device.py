"""OpenCL platforms and devices: discovery, spec parsing, the speed ranking, and device quirks."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pyopencl as cl

from . import faults, icd, lazy
from .errors import DeviceNotFoundError, NoOpenCLError

_lock = threading.RLock()
_devices: list["Device"] | None = None

NO_PLATFORM_HELP = (
    "No OpenCL platform was found. Install the OpenCL driver (ICD) of your GPU vendor, "
    "or CPU devices with `pip install 'clgrad[cpu]'` (Intel's CPU runtime on x86-64, and PoCL)."
)


@dataclass(eq=False)
class Device:
    """One OpenCL device; its context and in-order queue are created on first use."""

    index: int
    platform_index: int
    device_index: int
    cl_device: object = field(repr=False)
    _context: object = field(default=None, repr=False)
    _queue: object = field(default=None, repr=False)
    _probe: tuple | None = field(default=None, repr=False)

    # ---- identity -------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        return f"cl:{self.index}"

    def __str__(self) -> str:
        return self.spec

    def __repr__(self) -> str:
        return f"device(type='cl', index={self.index}, name={self.name!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = get_device(other)
            except DeviceNotFoundError:
                return False
        return isinstance(other, Device) and other.index == self.index

    def __hash__(self) -> int:
        return hash(("cl", self.index))

    @property
    def type(self) -> str:
        return "cl"

    # ---- properties -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.cl_device.name.strip()

    @property
    def vendor(self) -> str:
        return self.cl_device.vendor.strip()

    @property
    def platform_name(self) -> str:
        return self.cl_device.platform.name.strip()

    @property
    def platform_version(self) -> str:
        return self.cl_device.platform.version.strip()

    @property
    def kind(self) -> str:
        t = self.cl_device.type
        if t & cl.device_type.GPU:
            return "gpu"
        if t & cl.device_type.ACCELERATOR:
            return "accelerator"
        if t & cl.device_type.CPU:
            return "cpu"
        return "other"

    @property
    def compute_units(self) -> int:
        return self.cl_device.max_compute_units

    @property
    def clock_mhz(self) -> int:
        return self.cl_device.max_clock_frequency

    @property
    def global_mem_size(self) -> int:
        return self.cl_device.global_mem_size

    @property
    def local_mem_size(self) -> int:
        return self.cl_device.local_mem_size

    @property
    def local_mem_is_global(self) -> bool:
        return self.cl_device.local_mem_type == cl.device_local_mem_type.GLOBAL

    @property
    def max_alloc_size(self) -> int:
        return self.cl_device.max_mem_alloc_size

    @property
    def max_work_group_size(self) -> int:
        return self.cl_device.max_work_group_size

    @property
    def extensions(self) -> frozenset:
        return frozenset(self.cl_device.extensions.split())

    @property
    def has_fp64(self) -> bool:
        return "cl_khr_fp64" in self.extensions or self.cl_device.double_fp_config != 0

    @property
    def has_fp16(self) -> bool:
        return "cl_khr_fp16" in self.extensions

    @property
    def opencl_c_version(self) -> str:
        return self.cl_device.opencl_c_version.strip()

    @property
    def version(self) -> str:
        return self.cl_device.version.strip()

    @property
    def driver_version(self) -> str:
        return self.cl_device.driver_version.strip()

    @property
    def host_unified_memory(self) -> bool:
        try:
            return bool(self.cl_device.host_unified_memory)
        except (AttributeError, cl.Error):       # dropped from the OpenCL 3.0 core
            return False

    @property
    def speed_class(self) -> int:
        """Index into SPEED_CLASSES; lower is faster (see `ranked`)."""
        return speed_class(self.kind, self.platform_name, self.name, self.host_unified_memory)

    @property
    def speed_label(self) -> str:
        return SPEED_CLASSES[self.speed_class][0]

    @property
    def speed_reason(self) -> str:
        return SPEED_CLASSES[self.speed_class][1]

    @property
    def identity(self) -> tuple:
        """What distinguishes one compiled binary target from another (the cache key uses it)."""
        return (self.platform_name, self.platform_version, self.name, self.version,
                self.driver_version)

    def properties(self) -> dict:
        return {
            "index": self.index, "spec": self.spec,
            "platform": self.platform_name, "name": self.name, "vendor": self.vendor,
            "type": self.kind, "compute_units": self.compute_units, "clock_mhz": self.clock_mhz,
            "global_mem": self.global_mem_size, "local_mem": self.local_mem_size,
            "max_alloc": self.max_alloc_size, "max_work_group_size": self.max_work_group_size,
            "fp16": self.has_fp16, "fp64": self.has_fp64,
            "opencl_c_version": self.opencl_c_version, "driver_version": self.driver_version,
            "speed_class": self.speed_label,
        }

    # ---- quirks: everything kernels may need to know about the device lives here ------------
    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    @property
    def build_defines(self) -> tuple:
        """Macros every program on this device is built with. Oclgrind reports cl_khr_fp16 but
        aborts on half arithmetic ("Unsupported float size: 2 bytes"), so there halves are
        storage only and computed in float (runtime/codegen.py's _HALF_DEFS)."""
        if self.speed_label == "emulator":
            return ("-DCLG_HALF_AS_FLOAT",)
        return ()

    @property
    def compiles_per_local_size(self) -> bool:
        """PoCL builds (and caches under POCL_CACHE_DIR) one work-group function per kernel and
        local size: a local size that follows the input shape costs a compile per new shape
        (about 0.1-1 s each on pip's PoCL), which clgrad's own program cache does not see.
        Launch code keeps a fixed local size per kernel on such a device."""
        return self.speed_label == "PoCL"

    def elementwise_group_size(self, kernel_max: int, multiple: int) -> int:
        """A work-group size for streaming kernels that the device and the kernel both accept."""
        want = 256 if not self.is_cpu else 512
        size = max(1, min(want, kernel_max, self.max_work_group_size))
        if multiple > 1 and size >= multiple:
            size -= size % multiple
        return size

    # ---- context and queue ----------------------------------------------------------------
    @property
    def context(self):
        if self._context is None:
            with _lock:
                if self._context is None:
                    self._context = cl.Context([self.cl_device])
        return self._context

    @property
    def queue(self):
        if self._queue is None:
            with _lock:
                if self._queue is None:
                    self._queue = cl.CommandQueue(self.context)
        return self._queue

    def synchronize(self) -> None:
        """Wait for every queued kernel; raise a fault one of them reported (runtime/faults.py)."""
        lazy.flush()
        if self._queue is not None:
            self._queue.finish()
            faults.sync_check(self, self._queue)


def _platforms():
    icd.register()      # must precede the process's first platform query
    try:
        return cl.get_platforms()
    except cl.LogicError:  # PLATFORM_NOT_FOUND_KHR from the ICD loader
        return []


def devices() -> list[Device]:
    """Every OpenCL device of every platform, numbered as `clgrad devices` prints them."""
    global _devices
    with _lock:
        if _devices is None:
            found = []
            for p, plat in enumerate(_platforms()):
                try:
                    devs = plat.get_devices()
                except cl.Error:
                    devs = []
                for d, dev in enumerate(devs):
                    found.append(Device(len(found), p, d, dev))
            _devices = found
        return list(_devices)


def _require_devices() -> list[Device]:
    devs = devices()
    if not devs:
        raise NoOpenCLError(NO_PLATFORM_HELP)
    return devs


def _describe(devs) -> str:
    return "; ".join(f"{d.spec} ({d.platform_name}: {d.name}, {d.kind})" for d in devs)


def get_device(spec) -> Device:
    """Resolve a device spec: a Device, an int, 'cl:N', 'cl:P:D', 'gpu'/'cpu', or a name substring
    (None, the default device, is resolved by select.get_device)."""
    if isinstance(spec, Device):
        return spec
    devs = _require_devices()
    if isinstance(spec, int):
        text = f"cl:{spec}"
    else:
        text = str(spec).strip()
    low = text.lower()
    parts = low.split(":")
    if parts[0] == "cl" and 2 <= len(parts) <= 3 and all(x.isdigit() for x in parts[1:]):
        nums = [int(x) for x in parts[1:]]
        for d in devs:
            if (len(nums) == 1 and d.index == nums[0]) or \
               (len(nums) == 2 and (d.platform_index, d.device_index) == tuple(nums)):
                return d
    elif low in ("gpu", "cpu", "accelerator"):
        matches = [d for d in devs if d.kind == low]
        if matches:
            return _best(matches)
    elif low:
        matches = [d for d in devs if low in d.name.lower() or low in d.vendor.lower()
                   or low in d.platform_name.lower()]
        if matches:
            return _best(matches)
    raise DeviceNotFoundError(
        f"No OpenCL device matches {text!r}. Available devices: {_describe(devs)}. "
        "Specs: cl:N, cl:P:D, gpu, cpu, or part of a device/vendor/platform name.")


# ---- ranking: which device is fastest, decided here and nowhere else ---------------------------
# Speed classes, fastest first, with the reason `clgrad devices` prints. The CPU classes follow
# shared/POCL-FACTS.md: Intel's runtime compiles and runs ~5x faster than pip's PoCL on the same
# CPU (it vectorizes across work-items); emulators exist to check kernels, not to be fast.
SPEED_CLASSES = (
    ("discrete GPU", "its own memory and the most parallel compute"),
    ("integrated GPU", "shares host memory (host_unified_memory): below a discrete GPU"),
    ("Intel CPU runtime", "vectorizes across work-items; measured ~5x faster than PoCL to "
                          "compile and run on the same CPU"),
    ("other CPU runtime", "a vendor's CPU runtime other than Intel's: assumed faster than PoCL"),
    ("PoCL", "portable and correct, but slower to compile and run than a vendor's runtime"),
    ("other accelerator", "unknown speed for clgrad's kernels"),
    ("emulator", "Oclgrind or an FPGA emulator: for checking kernels, not for speed"),
)
_CLASS_INDEX = {label: i for i, (label, _) in enumerate(SPEED_CLASSES)}


def speed_class(kind: str, platform: str, name: str, unified_memory: bool) -> int:
    """The index into SPEED_CLASSES for a device description (0 is fastest)."""
    plat, low = platform.lower(), name.lower()
    if any(w in plat or w in low for w in ("oclgrind", "emulat")):
        label = "emulator"
    elif kind == "gpu":          # PoCL driving a GPU (pocl-cuda) is ranked as a GPU too
        label = "integrated GPU" if unified_memory else "discrete GPU"
    elif "portable computing language" in plat or plat.startswith("pocl"):
        label = "PoCL"
    elif kind == "cpu":
        label = "Intel CPU runtime" if "intel" in plat else "other CPU runtime"
    else:
        label = "other accelerator"
    return _CLASS_INDEX[label]


def _rank_key(d: Device):
    # within a class: the most compute, then the widest preferred float vector (between two
    # PoCL builds on one CPU, Debian's AVX-512 one beats pip's AVX2 one), then the lower index
    try:
        vec = d.cl_device.preferred_vector_width_float
    except (AttributeError, cl.Error):
        vec = 0
    return (d.speed_class, -d.compute_units * max(d.clock_mhz, 1), -vec, d.index)


def ranked(devs=None) -> list[Device]:
    """Devices best first: by speed class, then compute within a class."""
    return sorted(devices() if devs is None else devs, key=_rank_key)


def _best(devs: list[Device]) -> Device:
    return ranked(devs)[0]
