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

