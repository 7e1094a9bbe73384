"""GradScaler's device-side steps over Arrays: unscale gradients while flagging inf/NaN, and the
scale update that reads the flag where it lies (kernels_cl/amp.cl)."""
from __future__ import annotations

from ..runtime import codegen


def unscale_check(grad, offset: int, n: int, found, scale) -> None:
    """grad's storage elements [offset, offset + n) /= scale, in place; found (float32, one
    element) becomes 1 if any of them was inf or NaN. No host sync."""
    if n == 0:
        return
    k, _ = codegen.amp_kernels(grad.device, grad.dtype)
    k.launch_1d(n, grad._buf.raw, offset, n, found._buf.raw, scale._buf.raw)
    grad._buf.version += 1
    found._buf.version += 1


def update_scale(scale, tracker, found, growth: float, backoff: float, interval: int) -> None:
    """scale (float32) and growth tracker (int32), one element each, updated on the device from
    the flag `found` as PyTorch's GradScaler.update does."""
    _, k = codegen.amp_kernels(scale.device, scale.dtype)
    k((1,), None, scale._buf.raw, tracker._buf.raw, found._buf.raw, growth, backoff,
      int(interval))
    scale._buf.version += 1
    tracker._buf.version += 1
