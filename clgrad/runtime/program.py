"""Render kernels_cl/ templates, build them (with in-memory and on-disk caches) and launch kernels."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import string
import tempfile
import threading
from threading import get_ident
import warnings
from pathlib import Path

import numpy as np
import pyopencl as cl

from ..version import __version__
from . import lazy
from .device import Device
from .errors import KernelBuildError
from . import memory
from .memory import _counters, count

BUILD_OPTIONS = ("-cl-std=CL1.2",)
_lock = threading.RLock()
_programs: dict = {}          # (device, source, options) -> cl.Program
_kernels: dict = {}           # (device, source, options, name) -> Kernel
_logs: dict = {}              # (device, source, options) -> the compiler's build log
_memo: dict = {}              # (function name, *spec) -> what a @memoize'd function made
_record = None                # runtime/capture.py sets it while a step is being captured


def _cached(store: dict, key, make):
    """store[key], made once by make(): the lookup takes no lock, a miss makes under the build
    lock and looks again, so two threads never make (or fetch from a program) the same kernel.
    A None result is not kept."""
    value = store.get(key)
    if value is not None:
        return value
    with _lock:
        value = store.get(key)
        if value is None:
            value = make()
            if value is not None:
                store[key] = value
        return value


def memoize(fn=None, *, key=None):
    """Decorator: remember what fn(device, *spec) returns (a kernel, or a tuple of them) by its
    positional arguments, which must be hashable, or by key(*args, **kwargs) when given (then
    keyword arguments are allowed). `_memo.clear()` forgets all (tools/render_kernel.py does,
    to see each source requested)."""
    if fn is None:
        return functools.partial(memoize, key=key)
    tag = fn.__name__
    get = _memo.get

    if key is None:
        # the hot path (every elementwise op asks): positional arguments only, one tuple
        @functools.wraps(fn)
        def wrapper(*args):
            k = (tag, *args)
            value = get(k)
            if value is None:
                value = _cached(_memo, k, lambda: fn(*args))
            return value
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            k = (tag, *key(*args, **kwargs))
            value = get(k)
            if value is None:
                value = _cached(_memo, k, lambda: fn(*args, **kwargs))
            return value
    return wrapper


def kernels_dir() -> Path:
    """The folder of .cl templates: CLGRAD_KERNELS_DIR, the checkout's kernels_cl/, or the
    copy installed as package data (clgrad/kernels_cl)."""
    env = os.environ.get("CLGRAD_KERNELS_DIR")
    if env:
        return Path(env)
    pkg = Path(__file__).resolve().parent.parent
    for cand in (pkg.parent / "kernels_cl", pkg / "kernels_cl"):
        if cand.is_dir() and any(cand.glob("*.cl")):
            return cand
    raise FileNotFoundError(
        f"clgrad's kernel templates (kernels_cl/*.cl) were not found next to {pkg}; "
        "reinstall clgrad or set CLGRAD_KERNELS_DIR.")


_templates: dict = {}


def template(family: str) -> string.Template:
    path = kernels_dir() / f"{family}.cl"
    key = str(path)
    t = _templates.get(key)
    if t is None:
        t = _templates[key] = string.Template(path.read_text())
    return t


def render(family: str, **subst) -> str:
    """Substitute ${name} placeholders; a missing value raises KeyError naming it."""
    try:
        return template(family).substitute(**{k: str(v) for k, v in subst.items()})
    except KeyError as e:
        raise KeyError(f"template {family}.cl needs a value for {e.args[0]!r}") from None


# ---- disk cache -----------------------------------------------------------------------------
def cache_dir() -> Path:
    env = os.environ.get("CLGRAD_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "clgrad"


def cache_enabled() -> bool:
    return os.environ.get("CLGRAD_NO_CACHE", "") not in ("1", "true", "yes")


def cache_key(source: str, options, device: Device) -> str:
    h = hashlib.sha256()
    for part in (source, " ".join(options), __version__, cl.VERSION_TEXT, *device.identity):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def cache_info() -> dict:
    root = cache_dir()
    entries, size = 0, 0
    if root.is_dir():
        for meta in root.glob("*/*/meta.json"):
            entries += 1
            size += sum(f.stat().st_size for f in meta.parent.iterdir())
    return {"path": str(root), "entries": entries, "bytes": size, "enabled": cache_enabled()}


def clear_cache() -> int:
    root = cache_dir()
    n = cache_info()["entries"]
    if root.is_dir():
        shutil.rmtree(root, ignore_errors=True)
    return n


def _entry(key: str) -> Path:
    return cache_dir() / key[:2] / key


@contextlib.contextmanager
def _quiet_compiler():
    # pyopencl turns every non-empty build log into a CompilerWarning, and Intel's compiler
    # logs on success ("... vectorized ... Done."): clgrad keeps the log in its build record
    # instead (build_log()), so only clgrad's own builds are silenced
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.CompilerWarning)
        yield


def _load_cached(key, device, options):
    entry = _entry(key)
    try:
        binary = (entry / "binary.bin").read_bytes()
    except OSError:
        return None, ""
    try:
        with _quiet_compiler():
            prg = cl.Program(device.context, [device.cl_device], [binary]).build(
                options=list(options))
    except cl.Error:
        # stale or corrupt entry: drop it so the rebuilt program can take its place
        shutil.rmtree(entry, ignore_errors=True)
        return None, ""
    count("disk_cache_hits")
    try:
        log = (entry / "build.log").read_text()
    except OSError:
        log = ""
    return prg, log


def _store_cached(key, source, options, device, prg, log):
    try:
        binaries = prg.get_info(cl.program_info.BINARIES)
        if not binaries or not binaries[0]:
            return
        final = _entry(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        (tmp / "source.cl").write_text(source)
        (tmp / "binary.bin").write_bytes(bytes(binaries[0]))
        (tmp / "build.log").write_text(log)
        (tmp / "meta.json").write_text(json.dumps({
            "options": list(options), "clgrad": __version__, "pyopencl": cl.VERSION_TEXT,
            "device": list(device.identity)}))
        try:
            os.rename(tmp, final)          # atomic; a concurrent writer may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass                                # a read-only cache dir must not break computation


def _failed_source_path(name: str, source: str) -> Path:
    d = Path(tempfile.gettempdir()) / "clgrad-failed-builds"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:12]}.cl"
    path.write_text(source)
    return path


def _build_log(prg, device) -> str:
    try:
        return prg.get_build_info(device.cl_device, cl.program_build_info.LOG) or ""
    except cl.Error:
        return ""


def build_log(device: Device, source: str, options=BUILD_OPTIONS) -> str | None:
    """The compiler's log from building `source` for `device` (kept with the cached program,
    so a program loaded from disk still has the log of its original build); None if this
    process has not built it."""
    return _logs.get((device, source, tuple(options) + device.build_defines))


def build(device: Device, source: str, name: str, options=BUILD_OPTIONS):
    """Return a built cl.Program for `source`, from memory, disk, or a fresh build."""
    options = tuple(options) + device.build_defines
    mkey = (device, source, options)
    prg = _programs.get(mkey)
    if prg is not None:
        return prg
    with _lock:
        prg = _programs.get(mkey)
        if prg is not None:
            return prg
        use_disk = cache_enabled()
        key = cache_key(source, options, device) if use_disk else None
        prg, log = _load_cached(key, device, options) if use_disk else (None, "")
        if prg is None:
            count("builds")
            try:
                # cache_dir=False: pyopencl's own binary cache would hand back a reloaded
                # binary whose log is not the compiler's; clgrad's cache stands in for it
                with _quiet_compiler():
                    prg = cl.Program(device.context, source).build(options=list(options),
                                                                   cache_dir=False)
            except cl.RuntimeError as e:
                logs = getattr(e, "build_log", None)
                text = "\n".join(x[1] for x in logs) if logs else str(e)
                raise KernelBuildError(name, _failed_source_path(name, source), text,
                                       options) from None
            log = _build_log(prg, device)
            if use_disk:
                _store_cached(key, source, options, device, prg, log)
        _logs[mkey] = log
        _programs[mkey] = prg
        return prg


LOCAL = None     # marker for a __local pointer argument in a list of argument types

# C scalar type -> the numpy type a Python value is packed as (half travels as float)
CTYPES = {"float": np.float32, "double": np.float64, "int": np.int32, "long": np.int64,
          "uchar": np.uint8, "char": np.int8, "short": np.int16, "ulong": np.uint64,
          "uint": np.uint32, "half": np.float32}


class Args:
    """A kernel's parameter list, declared once: str(args) is the C parameter list a template
    takes as ${args}, and `types` the argument types the built Kernel packs with (None for a
    buffer or __local scratch, the numpy type for a scalar).

    >>> str(Args().buffer("float", "out").scalar("int", "n"))
    '__global float* out, int n'
    """

    __slots__ = ("decls", "types")

    def __init__(self):
        self.decls: list[str] = []
        self.types: list = []

    def buffer(self, ctype: str, name: str, const: bool = False) -> Args:
        self.decls.append(f"__global {'const ' if const else ''}{ctype}* {name}")
        self.types.append(None)
        return self

    def scalar(self, ctype: str, *names: str) -> Args:
        for name in names:
            self.decls.append(f"{ctype} {name}")
            self.types.append(CTYPES[ctype])
        return self

    def local(self, ctype: str, name: str) -> Args:
        self.decls.append(f"__local {ctype}* {name}")
        self.types.append(LOCAL)
        return self

    def __len__(self) -> int:
        return len(self.types)

    def __str__(self) -> str:
        return ", ".join(self.decls)


class Kernel:
    """One entry point of a built program: its argument layout (an Args, or for templates with
    a hand-written parameter list, the list of argument types) checked against the kernel's own
    argument count, and the one place clgrad sets arguments and enqueues."""

    def __init__(self, device: Device, prg, name: str, layout):
        self.device = device
        self.name = name
        self.cl_kernel = getattr(prg, name)      # fetched exactly once per program and name
        self.layout = layout
        types = list(layout.types if isinstance(layout, Args) else layout)
        n_args = self.cl_kernel.get_info(cl.kernel_info.NUM_ARGS)
        if n_args != len(types):
            raise TypeError(f"kernel {name!r} takes {n_args} arguments but clgrad declares "
                            f"{len(types)}; its template and its argument layout disagree")
        self.cl_kernel.set_scalar_arg_dtypes(types)
        info = cl.kernel_work_group_info
        self.max_group = self.cl_kernel.get_work_group_info(info.WORK_GROUP_SIZE,
                                                            device.cl_device)
        self.group_multiple = self.cl_kernel.get_work_group_info(
            info.PREFERRED_WORK_GROUP_SIZE_MULTIPLE, device.cl_device)
        # launch_1d's work-group depends only on the device and the kernel: chosen once here
        self.group_1d = device.elementwise_group_size(self.max_group, self.group_multiple)
        # PoCL compiles a work-group function for every local size a kernel is launched with:
        # there launch code keeps one local size per kernel (two for reduce and softmax, see
        # codegen._group_2d)
        self.one_local = device.compiles_per_local_size
        self.queue = device.queue
        # one cl_kernel serves every thread, and setting its arguments then enqueueing is two
        # steps: without this lock two threads launching the same kernel interleave them and one
        # launch runs with the other's arguments (tests/test_threads.py)
        self._lock = threading.Lock()

    def __call__(self, global_size, local_size, *args):
        """Set the arguments (packed by the layout's types) and enqueue; never waits. Every
        clgrad launch passes through here."""
        if lazy.pending and lazy.owner != get_ident():
            lazy.realize()       # pending results read what this launch may overwrite
        _counters["launches"] += 1
        if _record is not None:
            _record(self, global_size, local_size, args)
        with self._lock:
            self.cl_kernel(self.queue, global_size, local_size, *args)

    def sizes_1d(self, n: int):
        """(global, local) sizes of launch_1d for n > 0 elements: callers that launch the same
        n again (the eager fast path) compute them once."""
        if self.one_local:
            local = self.group_1d
        else:       # a small n gets a group its size: nothing to compile per size here
            local = min(self.group_1d, max(1, 1 << (int(n) - 1).bit_length()))
        return ((n + local - 1) // local * local,), (local,)

    def fixed_group(self, glob, local):
        """(global, local) for a kernel whose group the driver may choose: None (the driver's
        choice, which follows the shape) except where the device compiles per local size
        (PoCL): there `local`, with `glob` rounded up to it (the kernel guards the edge)."""
        if not self.one_local or self.max_group < local[0] * local[1] * local[2]:
            return tuple(glob), None
        return tuple((g + n - 1) // n * n for g, n in zip(glob, local)), tuple(local)

    def launch_1d(self, n: int, *args):
        """One work-item per element; the kernel guards against the rounded-up tail."""
        if n <= 0:
            return
        self(*self.sizes_1d(n), *args)


_capture: list | None = None


@contextlib.contextmanager
def capture_sources():
    """Collect (name, options, source) of every kernel requested inside the block; this is how
    tools/render_kernel.py shows the exact source that is built."""
    global _capture
    prev, _capture = _capture, []
    try:
        yield _capture
    finally:
        _capture = prev


def kernel(device: Device, source: str, name: str, layout, options=BUILD_OPTIONS) -> Kernel:
    """The Kernel `name` of `source` built for `device` (from memory, disk or a fresh build);
    `layout` is its Args, or the list of its argument types."""
    if _capture is not None:
        _capture.append((name, tuple(options), source))
    return _cached(_kernels, (device, source, tuple(options), name),
                   lambda: Kernel(device, build(device, source, name, options), name, layout))



def local_mem(nbytes: int):
    return cl.LocalMemory(max(int(nbytes), 4))


def np_scalar(dtype):
    return np.dtype(dtype).type


# ---- host writes on an emulator (see runtime/memory.py for why) --------------------------------
_staging: dict = {}      # device index -> [buffer, size]; older, smaller ones kept alive in _kept
_kept: list = []
_staging_lock = threading.Lock()
_WORDS = ((8, "ulong"), (4, "uint"), (1, "uchar"))
_COPY_SRC = """__kernel void clg_copy_in_{t}(__global {t}* dst, ulong dst_off,
                               __global const {t}* src, ulong n)
{{
    size_t i = get_global_id(0);
    if (i < n)
        dst[dst_off + i] = src[i];
}}
"""


def emulator_copy_in(device: Device, dst, byte_offset: int, host: np.ndarray) -> None:
    """Copy `host` into buffer `dst` at `byte_offset` through the staging buffer and a kernel
    (see above); blocking, like the direct write."""
    with _staging_lock:
        stage = _staging.get(device.index)
        if stage is None or stage[1] < host.nbytes:
            if stage is not None:
                _kept.append(stage[0])      # released, its index would pass its shadow on
            size = max(4096, 1 << (host.nbytes - 1).bit_length())
            stage = _staging[device.index] = [cl.Buffer(device.context, cl.mem_flags.READ_ONLY,
                                                         size), size]
        cl.enqueue_copy(device.queue, stage[0], host, is_blocking=True)
        width, ctype = next((w, t) for w, t in _WORDS
                            if byte_offset % w == 0 and host.nbytes % w == 0)
        layout = Args().buffer(ctype, "dst").scalar("ulong", "dst_off") \
            .buffer(ctype, "src", const=True).scalar("ulong", "n")
        k = kernel(device, _COPY_SRC.format(t=ctype), f"clg_copy_in_{ctype}", layout)
        n = host.nbytes // width
        local = min(64, k.max_group)
        with k._lock:   # launched directly: an upload is not an op (no count, no jit record)
            k.cl_kernel(device.queue, ((n + local - 1) // local * local,), (local,),
                        dst, byte_offset // width, stage[0], n)
        device.queue.finish()     # the staging buffer is written again by the next upload


memory.emulator_copy_in = emulator_copy_in
