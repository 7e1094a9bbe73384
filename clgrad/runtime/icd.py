"""Registering a pip-installed Intel CPU OpenCL runtime with the ICD loader, before OpenCL starts.

`intel-opencl-rt` ships `lib/libintelocl.so` but an `.icd` file naming a placeholder path, so the
ICD loader never sees it. clgrad writes a vendors folder (in its cache dir) holding a corrected
`.icd` plus every ICD the loader would have read anyway, and points `OCL_ICD_VENDORS` at it. This
must happen before the first platform query of the process; `device.devices()` calls `register()`
first. Nothing here imports pyopencl.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import site
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

OPT_OUT = "CLGRAD_NO_INTEL_ICD"
ICD_NAME = "intel-cpu.icd"
SYSTEM_VENDORS = "/etc/OpenCL/vendors"
# where the wheel puts the runtime below an installation prefix, per OS
_LIBRARIES = {
    "win32": (("Library", "bin", "intelocl64.dll"), ("bin", "intelocl64.dll")),
}
_DEFAULT_LIBRARY = (("lib", "libintelocl.so"),)
# the libraries intel-cmplr-lib-rt provides; a loader error naming one means it is missing
_COMPILER_RUNTIME = ("libimf", "libsvml", "libirng", "libintlc")

_lock = threading.Lock()
_status: "IcdStatus | None" = None


@dataclass(frozen=True)
class IcdStatus:
    """What `register()` did, for `clgrad info`.

    state is one of: registered, already registered, not installed, fails to load,
    system runtime present, opted out, not written."""

    state: str
    detail: str
    library: str | None = None
    vendors_dir: str | None = None

    @property
    def visible(self) -> bool:
        """Whether the ICD loader should now list the Intel CPU runtime."""
        return self.state in ("registered", "already registered", "system runtime present")


def prefixes() -> list[Path]:
    """Installation prefixes a pip-installed runtime may sit under: the environment, the
    base interpreter, and the user base (`pip install --user`)."""
    out = [Path(sys.prefix), Path(sys.base_prefix)]
    try:
        out.append(Path(site.getuserbase()))
    except Exception:  # site may be stripped down (embedded interpreters)
        pass
    # site-packages sits at lib/pythonX.Y/site-packages (Lib/site-packages on Windows)
    up = 1 if sys.platform == "win32" else 2
    try:
        out += [Path(p).parents[up] for p in site.getsitepackages()]
    except Exception:  # virtualenv's old site.py has no getsitepackages
        pass
    return list(dict.fromkeys(out))


def find_library(roots=None) -> Path | None:
    """The first Intel CPU runtime library under one of `roots` (default: `prefixes()`)."""
    layouts = _LIBRARIES.get(sys.platform, _DEFAULT_LIBRARY)
    for root in roots if roots is not None else prefixes():
        for parts in layouts:
            path = Path(root).joinpath(*parts)
            if path.is_file():
                return path
    return None


def load_error(path) -> str | None:
    """None if the library loads in this process, else the loader's reason with a hint."""
    try:
        ctypes.CDLL(str(path))
    except OSError as e:
        msg = str(e)
        if any(name in msg for name in _COMPILER_RUNTIME):
            msg += (" (the Intel compiler runtime is missing: install intel-cmplr-lib-rt, "
                    "which clgrad's `cpu` extra includes)")
        return msg
    return None


def _source_entries(env) -> tuple[list[tuple[str, str]], str]:
    """(file name, library named) of every ICD the loader would read without clgrad, and
    where they come from: the user's OCL_ICD_VENDORS (a folder, an .icd file or a library),
    else OPENCL_VENDOR_PATH, else /etc/OpenCL/vendors."""
    user = env.get("OCL_ICD_VENDORS")
    if user:
        origin, path = f"OCL_ICD_VENDORS={user}", Path(user)
    else:
        folder = env.get("OPENCL_VENDOR_PATH") or SYSTEM_VENDORS
        origin, path = folder, Path(folder)
    if path.is_dir():
        files = sorted(path.glob("*.icd"))
    elif path.suffix == ".icd" and path.is_file():
        files = [path]
    elif path.is_file():
        return [(f"user-{path.stem}.icd", str(path))], origin
    else:
        files = []
    out = []
    for f in files:
        try:
            lines = f.read_text().split("\n")
        except (OSError, UnicodeDecodeError):
            continue
        lib = lines[0].strip()
        if lib:
            out.append((f.name, lib))
    return out, origin


def _same_file(a: str, b: Path) -> bool:
    try:
        return Path(a).is_absolute() and os.path.samefile(a, b)
    except OSError:
        return False


def _is_intel_cpu(lib: str) -> bool:
    return Path(lib).name.startswith("libintelocl.so") or Path(lib).name == "intelocl64.dll"


def _write_folder(root: Path, files: dict[str, str]) -> Path:
    """Write `files` as a folder named after its content; atomic (temp folder, then rename),
    so concurrent processes either write the same folder or use the one that won."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\0".encode())
    final = root / f"vendors-{h.hexdigest()[:16]}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-vendors-", dir=root))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text)
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.is_dir():
            raise
    return final


def vendors_root(env=None) -> Path:
    """Where the vendors folders live: `icd/` under clgrad's cache dir (program.cache_dir()
    uses the same rules; this module cannot import it, program.py opens OpenCL)."""
    env = os.environ if env is None else env
    base = env.get("CLGRAD_CACHE_DIR")
    if not base:
        base = str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clgrad")
    return Path(base) / "icd"


def plan(env=None, roots=None) -> tuple[IcdStatus, dict[str, str] | None]:
    """Decide what to register without writing anything: the status, and the vendors-folder
    content (file name -> text) when one must be written."""
    env = os.environ if env is None else env
    if env.get(OPT_OUT, "") not in ("", "0"):
        return IcdStatus("opted out", f"{OPT_OUT}={env[OPT_OUT]}: clgrad leaves the ICD "
                                      "loader's configuration alone"), None
    lib = find_library(roots)
    if lib is None:
        return IcdStatus("not installed", "no pip-installed Intel CPU runtime (libintelocl) "
                                          "under " + ", ".join(map(str, roots or prefixes()))
                         + "; `pip install 'clgrad[cpu]'` adds it on x86-64"), None
    err = load_error(lib)
    if err:
        return IcdStatus("fails to load", f"{lib} cannot be loaded: {err}", str(lib)), None
    entries, origin = _source_entries(env)
    kept = {}
    for name, target in entries:
        if _same_file(target, lib):
            return IcdStatus("already registered", f"{origin} already names {lib}", str(lib),
                             env.get("OCL_ICD_VENDORS")), None
        if _is_intel_cpu(target):
            if Path(target).is_absolute() and not Path(target).exists():
                continue                     # the wheel's placeholder path: drop it
            return IcdStatus("system runtime present",
                             f"{origin}/{name} registers another Intel CPU runtime ({target}); "
                             f"{lib} is not added, so the device does not appear twice",
                             str(lib)), None
        kept[f"other-{name}" if name == ICD_NAME else name] = target + "\n"
    kept[ICD_NAME] = str(lib) + "\n"
    return IcdStatus("registered", f"{lib} added to the ICDs of {origin}", str(lib)), kept


def register(env=None, roots=None) -> IcdStatus:
    """Make a pip-installed Intel CPU runtime visible to this process and its children (once
    per process; later calls return the first answer). Never raises: problems go into the
    status that `clgrad info` prints."""
    global _status
    with _lock:
        if _status is None:
            _status = _register(os.environ if env is None else env, roots)
        return _status


def _register(env, roots) -> IcdStatus:
    status, files = plan(env, roots)
    if files is None:
        return status
    if sys.platform == "win32":
        # the Khronos loader on Windows reads extra drivers from OCL_ICD_FILENAMES
        old = env.get("OCL_ICD_FILENAMES")
        env["OCL_ICD_FILENAMES"] = status.library + (";" + old if old else "")
        return status
    errors = []
    for root in (vendors_root(env), Path(tempfile.gettempdir()) / f"clgrad-icd-{os.getuid()}"):
        try:
            folder = _write_folder(root, files)
        except OSError as e:
            errors.append(f"{root}: {e}")
            continue
        env["OCL_ICD_VENDORS"] = str(folder)
        return IcdStatus(status.state, status.detail, status.library, str(folder))
    return IcdStatus("not written", "could not write a vendors folder: " + "; ".join(errors),
                     status.library)


def status() -> IcdStatus | None:
    """What `register()` did in this process, or None before the first platform query."""
    return _status
