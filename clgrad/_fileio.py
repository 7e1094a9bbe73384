"""Atomic file writes shared by the checkpoint and safetensors writers."""
from __future__ import annotations

import os
import tempfile
import time


def atomic_write(path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one:
    a temp file in the same folder, fsync, rename over, fsync the folder. File-like objects
    (with .write) are simply written to."""
    if hasattr(path, "write"):
        path.write(data)
        return
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=folder)
    try:
        # mkstemp creates the file 0600: give it the mode a plain open() would (umask applied)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        except (AttributeError, OSError):
            pass
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _hook_before_rename(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass          # some filesystems cannot fsync a directory; the rename is still atomic


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _hook_before_rename(tmp, path) -> None:
    """Test hook: with CLGRAD_TEST_SAVE_PAUSE=<seconds>, sleep between the fsynced temp file
    and the rename, so a crash test can kill the process mid-save."""
    pause = os.environ.get("CLGRAD_TEST_SAVE_PAUSE")
    if pause:
        time.sleep(float(pause))


def read_all(path) -> bytes:
    if hasattr(path, "read"):
        return path.read()
    with open(os.fspath(path), "rb") as f:
        return f.read()
