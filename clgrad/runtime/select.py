"""The device clgrad uses when none is named: the selection rules, the saved default (`clgrad
select`), and `get_device`, which resolves every spec including None."""
from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from .device import Device, _require_devices, ranked
from .device import get_device as resolve
from .probe import probe

_lock = threading.RLock()
_default: Device | None = None
_default_rule: str = ""


def get_device(spec=None) -> Device:
    """Resolve a device spec (see device.get_device); None, and the bare type 'cl' (what
    `clgrad.accelerator.current_accelerator().type` gives, as 'cuda' does in PyTorch), mean the
    default device."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "cl"):
        return default_device()
    return resolve(spec)


def _probe_ok(dev: Device) -> tuple[bool, str]:
    """Whether `dev` runs a tiny kernel correctly (remembered per device)."""
    if dev._probe is None:
        probe(dev)          # remembers its verdict on the device
    return dev._probe


# ---- persisted default (`clgrad select`) ------------------------------------------------------
def config_path() -> Path:
    base = os.environ.get("CLGRAD_CONFIG_DIR")
    if base:
        return Path(base) / "config.json"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "clgrad" / "config.json"


def _read_config() -> dict:
    try:
        return json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}


def save_default_spec(spec: str | None) -> Path:
    """Persist (or, with None, clear) the default device spec; the spec must resolve now."""
    cfg = _read_config()
    if spec is None:
        cfg.pop("device", None)
    else:
        resolve(spec)
        cfg["device"] = spec
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # a temp file of its own: two processes saving at once must not write one temp file
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(cfg, indent=2))
    os.replace(tmp, path)
    reset_default()
    return path


def choose_device(explicit=None) -> tuple[Device, str]:
    """Apply the selection order; return the device and the rule that chose it."""
    if explicit is not None:
        return resolve(explicit), "explicit argument"
    env = os.environ.get("CLGRAD_DEVICE")
    if env:
        return resolve(env), f"CLGRAD_DEVICE={env}"
    saved = _read_config().get("device")
    if saved:
        return resolve(saved), f"saved default {saved!r} in {config_path()}"
    order = ranked(_require_devices())
    failed = []
    for d in order:
        ok, err = _probe_ok(d)
        if ok:
            rule = f"fastest device class that passes its probe: {d.speed_label}"
            if failed:
                rule += " (" + "; ".join(failed) + ")"
            return d, rule
        failed.append(f"{d.spec} {d.speed_label} failed its probe: {err}")
    return order[0], "no device passed its probe; using the best-ranked: " + "; ".join(failed)


def default_device() -> Device:
    global _default, _default_rule
    with _lock:
        if _default is None:
            _default, _default_rule = choose_device()
        return _default


def default_rule() -> str:
    default_device()
    return _default_rule


def set_default_device(spec) -> Device:
    """Make `spec` the device new tensors are created on (for this process)."""
    global _default, _default_rule
    dev = resolve(spec)
    with _lock:
        _default, _default_rule = dev, "set_default_device()"
    return dev


def reset_default() -> None:
    """Forget the chosen default so the selection rules run again (tests, `clgrad select`)."""
    global _default, _default_rule
    with _lock:
        _default, _default_rule = None, ""
