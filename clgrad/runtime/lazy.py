"""The queue of pending elementwise results (fusion, docs/architecture.md): the Array seam
(clgrad/array.py) appends to it and installs `realize`; every point where device memory is
written or a launch is recorded drains it first, so a pending result always reads its inputs
as they were when it was asked for."""
from __future__ import annotations

import contextlib
import os
import threading

# CLGRAD_FUSION=0 turns fusion off (every elementwise op launches at once, as before)
enabled = os.environ.get("CLGRAD_FUSION", "1").strip().lower() not in ("0", "false", "no", "off")
pending: list = []          # pending nodes in the order they were asked for
# serials of the buffers pending nodes read (a write must wait for them): a serial is never
# reused, so a buffer freed with a dropped chain leaves no entry another buffer could match
# (keyed by id(), a reused id cut chains at random)
reads: set = set()
writes = 0                  # pending writes into existing memory
lock = threading.RLock()
owner = None                # the thread whose flush is under way
realize = None              # clgrad/array.py installs the function that launches `pending`


def flush() -> None:
    """Launch every pending result now (nothing to do when none is pending)."""
    if pending:
        realize()


@contextlib.contextmanager
def aside():
    """Device work on buffers of its own (the GEMM probe, runtime/gemm.py) runs without launching
    what is pending: the queue is set aside meanwhile, so where a model's chains are cut does
    not depend on whether a probe ran (a cold and a warm process fuse alike)."""
    global pending
    with lock:
        saved, pending = pending, []
        try:
            yield
        finally:
            saved.extend(pending)
            pending = saved


def set_enabled(flag: bool) -> bool:
    """Turn fusion on or off (results pending so far are launched first); returns the old
    setting. Tests compare fused and unfused runs of one chain with it."""
    global enabled
    flush()
    old, enabled = enabled, bool(flag)
    return old
