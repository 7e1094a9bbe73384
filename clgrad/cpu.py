"""`clgrad.cpu`: PyTorch's `torch.cpu` spellings that scripts use, for CPU OpenCL devices:
`clgrad.cpu.amp.autocast` (bfloat16 by default, as PyTorch's) and `clgrad.cpu.amp.GradScaler`."""
from __future__ import annotations

import types

from . import amp as _amp


def _autocast(enabled: bool = True, dtype=None, cache_enabled: bool = True):
    return _amp.autocast("cpu", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


amp = types.SimpleNamespace(autocast=_autocast, GradScaler=_amp.GradScaler)


def is_available() -> bool:
    return True
