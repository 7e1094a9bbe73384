"""Device-side error flags: a kernel that meets a bad value (an index out of range, an integer
division by zero) records it in a small per-device buffer instead of reading out of bounds, and
the host raises at the next sync (a host read, or synchronize()), not after every launch.

The flag is eight int32 words: the fault's site code (claimed with atomic_cmpxchg, so the first
fault of a run wins), an auxiliary word (a dimension), the bad value and the limit as two words
each. A site is what the message needs that the kernel cannot know: the op's name, the exception
type and its message template, registered once (`site`) and passed to the kernel as an int.
A launch that may fault asks for the flag with `flag(device)`, which also arms the device; only an
armed device's flag is read back, by the same in-order queue just before the host read that was
going to wait anyway, so a training step gains one 32-byte read per sync and no wait."""
from __future__ import annotations

import threading

import numpy as np
import pyopencl as cl

from .errors import DeviceIndexError, DeviceZeroDivisionError  # noqa: F401 (sites name them)


# The C side, added to the preamble of every kernel that takes a flag (`__global int* clg_err`).
C_MACRO = r"""
#define CLG_FAULT(err, code, aux, value, limit) do { \
    if (atomic_cmpxchg((volatile __global int*)(err), 0, (code)) == 0) { \
        (err)[1] = (int)(aux); \
        (err)[2] = (int)((long)(value) & 0xffffffffL); (err)[3] = (int)((long)(value) >> 32); \
        (err)[4] = (int)((long)(limit) & 0xffffffffL); (err)[5] = (int)((long)(limit) >> 32); \
    } } while (0)
"""
WORDS = 8


_lock = threading.Lock()
_sites: list = [None]          # code -> (op, exception type, message template)
_site_codes: dict = {}
_flags: dict = {}              # device index -> (raw buffer, device)
_raws: dict = {}               # raw buffer -> device index (captures look launches up here)
_armed: set = set()            # indices of devices whose flag may be set
count = None                   # runtime/memory.py's counter (it imports this module)


def site(op: str, exc: type, template: str) -> int:
    """The code of a fault site: `template` is formatted with value, aux and limit."""
    key = (op, exc, template)
    code = _site_codes.get(key)
    if code is None:
        with _lock:
            code = _site_codes.get(key)
            if code is None:
                code = _site_codes[key] = len(_sites)
                _sites.append(key)
    return code


def flag_buffer(device):
    """The device's flag buffer without arming it (launches that cannot fault)."""
    return _raw(device)


def _raw(device):
    entry = _flags.get(device.index)
    if entry is None:
        with _lock:
            entry = _flags.get(device.index)
            if entry is None:
                raw = cl.Buffer(device.context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR,
                                hostbuf=np.zeros(WORDS, np.int32))
                entry = _flags[device.index] = (raw, device)
                _raws[raw] = device.index
    return entry[0]


def flag(device):
    """The device's flag buffer, for a launch that may report a fault; arms the device."""
    raw = _raw(device)
    _armed.add(device.index)
    return raw


def arm_raws(raws) -> None:
    """Arm the devices whose flag buffers are among `raws` (a captured step replaying)."""
    for raw in raws:
        index = _raws.get(raw)
        if index is not None:
            _armed.add(index)


def flag_raws(args) -> list:
    """The flag buffers among a launch's arguments."""
    return [a for a in args if isinstance(a, cl.MemoryObjectHolder) and a in _raws]


def armed(device) -> bool:
    return device.index in _armed


def enqueue_read(device, queue):
    """Queue a read of the armed device's flag; returns (event, host words) for `check`."""
    _armed.discard(device.index)
    host = np.empty(WORDS, np.int32)
    count("flag_reads")
    evt = cl.enqueue_copy(queue, host, _raw(device), is_blocking=False)
    return evt, host


def check(device, pending) -> None:
    """Raise the fault a queued flag read found (and clear the flag), if any."""
    evt, host = pending
    evt.wait()
    if host[0] == 0:
        return
    raw = _raw(device)
    cl.enqueue_copy(device.queue, raw, np.zeros(WORDS, np.int32), is_blocking=True)
    raise _exception(device, host)


def sync_check(device, queue) -> None:
    """At a synchronize(): read the flag if the device is armed and raise what it holds."""
    if device.index in _armed:
        check(device, enqueue_read(device, queue))


def _word64(lo, hi) -> int:
    return (int(lo) & 0xffffffff) | (int(hi) << 32)


def _exception(device, host):
    code = int(host[0])
    value, limit = _word64(host[2], host[3]), _word64(host[4], host[5])
    if not 0 < code < len(_sites):
        return RuntimeError(f"a kernel on {device.spec} reported an unknown fault {code}")
    op, exc, template = _sites[code]
    text = template.format(value=value, aux=int(host[1]), limit=limit)
    return exc(f"{text} [{op} on {device.spec}: found by the kernel, raised at the first sync "
               "after its launch]")
