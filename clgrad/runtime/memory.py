"""Device buffers, the size-bucketed buffer pool, host<->device transfers and the runtime counters."""
from __future__ import annotations

import itertools
import threading
import weakref
from collections import Counter, defaultdict

import numpy as np
import pyopencl as cl

from . import faults, lazy
from .device import Device
from .errors import OutOfMemoryError

_counters: Counter = Counter()
_pinned: dict = {}     # raw buffer -> its pin: a step capture replays into it (runtime/capture.py)
_on_transfer = None    # runtime/capture.py watches host transfers while it records
_reuse = None          # ... and hands the recording step the buffers it freed


def count(name: str, n: int = 1) -> None:
    _counters[name] += n


def stats() -> dict:
    """Counters since the last reset: kernel launches, transfers (and bytes; a copy from one
    device to another also counts as d2d, on top of the host legs it takes), program builds,
    captured-step replays (clgrad.jit; each replay's launches also count as launches), fused
    kernels launched for chains of two or more elementwise ops or a GEMM with an op folded
    into its epilogue (`fused`) and the ops they computed (`fused_ops`: `fused_ops - fused`
    launches saved), and reads of the device error flag (runtime/faults.py: at most one per
    sync, queued with it)."""
    keys = ("launches", "h2d", "d2h", "h2d_bytes", "d2h_bytes", "d2d", "d2d_bytes", "builds",
            "disk_cache_hits", "allocs", "pool_hits", "replays", "replay_launches", "fused",
            "fused_ops", "flag_reads")
    lazy.flush()        # pending results count once they would have launched
    return {k: _counters.get(k, 0) for k in keys}


faults.count = count


def reset_stats() -> None:
    lazy.flush()        # work asked for before the reset counts before it
    _counters.clear()


def _bucket(nbytes: int) -> int:
    # Round up so that near-equal requests share pooled buffers: 256 B steps below 64 KiB, then
    # eight steps per power of two (at most 12.5% slack).
    nbytes = max(int(nbytes), 1)
    if nbytes <= 65536:
        return (nbytes + 255) & ~255
    step = 1 << max(nbytes.bit_length() - 4, 8)
    return (nbytes + step - 1) // step * step


class Pool:
    """Parks freed device buffers by bucketed size and hands them out again.

    A Buffer has no `__del__`. Its death runs no Python code: a weak reference's callback, the
    C method `dead.append`, queues that reference, and the pool takes the buffer back (`reap`)
    before its next allocation or whenever its figures are read. A `__del__` is Python code, so
    the interpreter may deliver a pending Ctrl-C inside it, where the KeyboardInterrupt is
    printed as "Exception ignored" and lost: a training loop that drops a tensor at the wrong
    moment would not stop (CI saw it once in test_dataloader_ctrl_c_exits_promptly).
    """

    def __init__(self, device: Device):
        self.device = device
        self.free: dict[int, list] = defaultdict(list)
        self.live: dict = {}            # weak reference to a live Buffer -> (raw, size)
        self.dead: list = []            # weak references whose Buffer died, not yet reaped
        self.on_death = self.dead.append
        self.pooled_bytes = 0
        self.allocated_bytes = 0
        self.peak_bytes = 0
        self.lock = threading.RLock()   # a gc pass inside alloc may free buffers
        self.max_alloc = device.max_alloc_size

    def _raw_alloc(self, size: int):
        limit = self.device.global_mem_size
        if self.allocated_bytes + self.pooled_bytes + size > limit:
            self.empty()
        if self.allocated_bytes + size > limit:
            raise cl.MemoryError("clgrad pool", cl.status_code.MEM_OBJECT_ALLOCATION_FAILURE, "")
        count("allocs")
        return cl.Buffer(self.device.context, cl.mem_flags.READ_WRITE, size)

    def track(self, buf, raw, size: int) -> None:
        self.live[weakref.ref(buf, self.on_death)] = (raw, size)

    def reap(self) -> None:
        """Take back the buffers of Buffers that died (list.pop and dict.pop are atomic)."""
        dead, live = self.dead, self.live
        while dead:
            try:
                ref = dead.pop()
            except IndexError:      # another thread took the last one
                return
            raw, size = live.pop(ref)
            self.release(raw, size)

    def alloc(self, nbytes: int):
        if self.dead:
            self.reap()
        size = _bucket(nbytes)
        if _reuse is not None:
            raw = _reuse(self, size)
            if raw is not None:
                return raw, size
        with self.lock:
            # the hot path: a parked buffer of this bucket (every repeated op ends here)
            bucket = self.free.get(size)
            if bucket:
                raw = bucket.pop()
                self.pooled_bytes -= size
                _counters["pool_hits"] += 1
            else:
                raw = self._new(nbytes, size)
            self.allocated_bytes += size
            if self.allocated_bytes > self.peak_bytes:
                self.peak_bytes = self.allocated_bytes
            return raw, size

    def _new(self, nbytes: int, size: int):
        if nbytes > self.max_alloc:
            raise OutOfMemoryError(
                f"A single tensor of {nbytes} bytes exceeds the largest allocation "
                f"{self.device.name} ({self.device.spec}) allows: CL_DEVICE_MAX_MEM_ALLOC_SIZE = "
                f"{self.device.max_alloc_size} bytes.")
        try:
            return self._raw_alloc(size)
        except (cl.MemoryError, cl.RuntimeError):
            self.empty()
            try:
                return self._raw_alloc(size)
            except (cl.MemoryError, cl.RuntimeError) as e:
                raise OutOfMemoryError(
                    f"Could not allocate {nbytes} bytes on {self.device.spec} "
                    f"({self.device.name}): {self.allocated_bytes} bytes are in use by "
                    f"tensors of {self.device.global_mem_size} bytes of device memory "
                    f"(largest single allocation {self.device.max_alloc_size}). "
                    f"[{e}]") from None

    def release(self, raw, size: int) -> None:
        pin = _pinned.get(raw) if _pinned else None
        if pin is not None:
            pin.free(self, size)            # still allocated: the capture owns it now
            return
        with self.lock:
            self.allocated_bytes -= size
            self.free[size].append(raw)
            self.pooled_bytes += size

    def empty(self) -> None:
        self.reap()
        for bucket in self.free.values():
            for raw in bucket:
                raw.release()
        self.free.clear()
        self.pooled_bytes = 0


_pools: dict[Device, Pool] = {}
_by_index: dict[int, Pool] = {}     # the same pools by device index: an int hashes in C


def pool(device: Device) -> Pool:
    p = _by_index.get(device.index)
    if p is None:
        p = _pools.get(device)
        if p is None:
            p = _pools[device] = Pool(device)
        _by_index[device.index] = p
    return p


_serials = itertools.count()


class Buffer:
    """A block of device memory owned by tensors; the pool takes it back after the last one goes.

    `version` is the storage's version counter shared by all views (autograd checks it).
    """

    __slots__ = ("device", "nbytes", "raw", "version", "serial", "__weakref__")

    def __init__(self, device: Device, nbytes: int):
        self.serial = next(_serials)      # never reused, unlike id(): fusion's read set keys on it
        self.device = device
        self.nbytes = nbytes = int(nbytes)
        p = _by_index.get(device.index)
        if p is None:
            p = pool(device)
        self.raw, size = p.alloc(nbytes)
        p.track(self, self.raw, size)
        self.version = 0

    # ---- transfers: the only ways data crosses between host and device ------------------
    def write(self, host: np.ndarray, byte_offset: int = 0) -> None:
        host = np.ascontiguousarray(host)
        if host.nbytes == 0:
            return
        if lazy.pending:
            lazy.realize()
        count("h2d")
        count("h2d_bytes", host.nbytes)
        if _on_transfer is not None:
            _on_transfer("h2d")
        if _emulated(self.device):
            emulator_copy_in(self.device, self.raw, byte_offset, host)
            return
        cl.enqueue_copy(self.device.queue, self.raw, host, dst_offset=byte_offset, is_blocking=True)

    def read(self, out: np.ndarray, byte_offset: int = 0) -> np.ndarray:
        if out.nbytes == 0:
            return out
        if lazy.pending:
            lazy.realize()       # a pending write may be on its way into this buffer
        count("d2h")
        count("d2h_bytes", out.nbytes)
        if _on_transfer is not None:
            _on_transfer("d2h")
        device = self.device
        queue = device.queue
        # a kernel since the last sync may have reported a fault: its flag comes back with this
        # read (same in-order queue), so checking it costs no extra wait
        pending = faults.enqueue_read(device, queue) if device.index in faults._armed else None
        cl.enqueue_copy(queue, out, self.raw, src_offset=byte_offset, is_blocking=True)
        if pending is not None:
            faults.check(device, pending)
        return out


# ---- host writes on an emulator -------------------------------------------------------------
# Oclgrind (21.10, and its later releases as of this writing) keeps one shadow per buffer for
# --uninitialized, with two gaps that turn correct host code into reports:
# - a host write of n bytes (clEnqueueWriteBuffer, clEnqueueCopyBuffer, COPY_HOST_PTR) replaces
#   the shadow of the whole buffer by one n bytes long (Uninitialized::hostMemoryStore calls
#   ShadowMemory::allocate(address, n)): after a 32-byte upload into a 256-byte pooled buffer,
#   kernel stores past byte 32 are dropped from the shadow and later loads there are reported
#   as uninitialised although a kernel wrote them;
# - a released buffer's shadow is never freed (no memoryDeallocated handler), and Oclgrind
#   reuses the freed buffer's index for the next buffer, which inherits that stale shadow.
# tools/oclgrind_check.sh reproduces the first with plain pyopencl. So on an emulator a host
# write goes (runtime/program.py's emulator_copy_in) into a staging buffer that is never
# released, written from its byte 0 (its shadow is exactly the bytes written, all clean), and a
# kernel copies it into place: kernel stores keep the destination's full-size shadow exact.
# Other devices write directly.
_emulated_devices: dict = {}


def _emulated(device: Device) -> bool:
    flag = _emulated_devices.get(device.index)
    if flag is None:
        flag = _emulated_devices[device.index] = device.speed_label == "emulator"
    return flag


# runtime/program.py sets this to its emulator_copy_in (it builds the copy kernel; memory is
# below program, so the function is handed down rather than imported)
emulator_copy_in = None


def memory_stats(device: Device) -> dict:
    p = pool(device)
    p.reap()
    return {"allocated_bytes": p.allocated_bytes,
            "reserved_bytes": p.allocated_bytes + p.pooled_bytes,
            "peak_allocated_bytes": p.peak_bytes}


def reset_peak_memory_stats(device: Device) -> None:
    p = pool(device)
    p.reap()
    p.peak_bytes = p.allocated_bytes


def empty_cache(device: Device | None = None) -> None:
    for dev, p in list(_pools.items()):
        if device is None or dev == device:
            with p.lock:
                p.empty()
