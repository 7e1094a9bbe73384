"""`clgrad.accelerator`: PyTorch's device-agnostic accelerator API over OpenCL devices.

A script written for PyTorch picks its device with
`torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"`;
with clgrad every tensor lives on an OpenCL device, so the accelerator is the device clgrad
would use by default (a GPU when one passes its probe, else the fastest CPU runtime) and its
`type` is 'cl', which `clgrad.device`, `Tensor.to` and `Module.to` resolve to that device."""
from __future__ import annotations

from . import runtime

__all__ = ["current_accelerator", "current_device_idx", "current_device_index", "device_count",
           "is_available", "set_device_idx", "set_device_index", "synchronize"]


def is_available() -> bool:
    """True when at least one OpenCL device is visible (no driver at all: False, no error)."""
    try:
        return bool(runtime.devices())
    except runtime.CLGradError:
        return False


def device_count() -> int:
    try:
        return len(runtime.devices())
    except runtime.CLGradError:
        return 0


def current_accelerator(check_available: bool = False):
    """The default device (a `clgrad.device`), or None when there is none and
    `check_available` is true (PyTorch's contract); without a driver and with
    `check_available=False` the first op explains what to install, as PyTorch's would."""
    if check_available and not is_available():
        return None
    return runtime.default_device()


def current_device_index() -> int:
    return runtime.default_device().index


def set_device_index(device) -> None:
    """Make `device` (an index, 'cl:N' or a device) the default for new tensors."""
    runtime.set_default_device(device)


current_device_idx = current_device_index
set_device_idx = set_device_index


def synchronize(device=None) -> None:
    """Wait until every kernel queued on `device` (default: the current one) has finished."""
    runtime.get_device(device).synchronize()
