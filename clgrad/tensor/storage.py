"""Storage-level entries for nn/, optim/, utils/ and checkpoints: device lookup, host arrays in,
and raw writes into a tensor's storage that autograd does not record (optimizer arenas, batch
collation, parameter initialisation)."""
from __future__ import annotations

from .. import ops
from ..runtime import devices, get_device, set_default_device
from . import factory
from .tensor import Tensor


def device(spec=None):
    """The Device a spec names (`cl:N`, `cl:P:D`, `gpu`/`cpu`, a name substring, a Device);
    None: the default device."""
    return get_device(spec)


def device_list() -> list:
    """Every usable device, in `cl:N` order (clgrad.distributed picks one per local rank)."""
    return devices()


def set_default(spec):
    """Make `spec` the device new tensors are created on (for this process)."""
    return set_default_device(spec)


def from_host(arr, dtype, device=None) -> Tensor:
    """A new tensor on `device` holding a copy of the host array `arr` as `dtype`."""
    return factory.from_host(Tensor, arr, dtype, device)


def copy_into(dst, src):
    """Write `src` (a tensor, broadcast, or a number) into dst's storage; not recorded."""
    return ops.copy_into(dst, src)


def optim_update(name, update, param, grad, states, scalars, offset: int, n: int, replay=None):
    """A fused optimizer update in place over elements [offset, offset + n) of the flat arenas
    `param`, `grad` and `states` ((C name, 1-D tensor) pairs); `scalars` are (C name, value)
    kernel arguments. `update` is the C statement body (see ops.optim_update); `replay()`, if
    given, returns the scalars anew each time a captured step (clgrad.jit) replays."""
    ops.optim_update(name, update, param, grad, states, scalars, offset, n, replay=replay)



def amp_unscale_(grads, found, scale) -> None:
    """Divide each gradient by `scale` (a one-element float32 tensor) in place and set `found`
    (one-element float32) to 1 if any element is inf or NaN, on the device. Gradients lying
    end to end in one buffer (an optimizer's gradient arena) go in one launch per run."""
    runs = []
    for g in grads:
        v = g._view
        if not (v.is_contiguous()):
            dense_g = g.contiguous_nograd()
            ops.unscale_check(dense_g, 0, dense_g.numel(), found, scale)
            ops.copy_into(g, dense_g)
            continue
        runs.append((id(g._buf), g.dtype.name, v.offset, v.numel, g))
    runs = sorted({r[:3]: r for r in runs}.values(), key=lambda r: r[:3])   # once per grad
    i = 0
    while i < len(runs):
        key, dname, start, n, g = runs[i]
        end = start + n
        j = i + 1
        while j < len(runs) and runs[j][0] == key and runs[j][1] == dname and runs[j][2] == end:
            end += runs[j][3]
            j += 1
        ops.unscale_check(g, start, end - start, found, scale)
        i = j


def amp_update_scale_(scale, tracker, found, growth: float, backoff: float, interval: int):
    """GradScaler's update on the device: back off after an inf/NaN, grow after `interval`
    clean steps (scale float32 and tracker int32, one element each)."""
    ops.update_scale(scale, tracker, found, growth, backoff, interval)
