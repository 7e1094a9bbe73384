"""default_collate / default_convert: samples -> batched clgrad tensors.

Collation runs in two phases so the host part can run off the main thread: `host_collate`
stacks numpy arrays and numbers into one numpy array per field (device tensors are stacked on
the device), and `to_device` then makes one host-to-device copy per field."""
from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from ... import autograd
from ...tensor import Tensor
from ...tensor.creation import from_numpy
from ...tensor.shape import stack

__all__ = ["default_collate", "default_convert", "host_collate", "to_device"]


class _Host:
    """A stacked host field waiting for its single host-to-device copy."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


class _Deferred:
    """Device work (stacking device tensors) postponed to `to_device`, which runs in the main
    thread: worker threads must not launch kernels (a kernel object's arguments are shared)."""

    __slots__ = ("fn", "args")

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args


def _tensor_cls():
    return Tensor


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    name = type(x).__module__.split(".")[0] + "." + type(x).__name__ \
        if type(x).__module__ not in ("builtins",) else type(x).__name__
    return f"{name} of shape {list(shape)}" if shape is not None else name


def _mismatch(batch, what):
    first = batch[0]
    for i, b in enumerate(batch):
        if type(b) is not type(first) or getattr(b, "shape", None) != getattr(first, "shape",
                                                                                None):
            return RuntimeError(f"default_collate: cannot {what}: batch element 0 is "
                                f"{_describe(first)} but element {i} is {_describe(b)}")
    return None


def _check_stackable(batch):
    err = _mismatch(batch, "stack tensors of different shapes or types")
    if err is not None or any(t.dtype is not batch[0].dtype or t.device != batch[0].device
                              for t in batch):
        raise err or RuntimeError(
            "default_collate: cannot stack tensors of different dtypes or devices: "
            + ", ".join(sorted({f"{t.dtype} on {t.device}" for t in batch})))


def _stack_device(batch):
    """Stack equal-shaped clgrad tensors into a new (B, ...) tensor on the device."""
    _check_stackable(batch)
    with autograd.no_grad():
        return stack([t.detach() for t in batch], 0)


def host_collate(batch):
    """Stack a list of samples field by field; host fields stay numpy (wrapped) until
    `to_device`."""
    T = _tensor_cls()
    if len(batch) == 0:
        raise RuntimeError("default_collate: the batch is empty")
    elem = batch[0]
    if isinstance(elem, T):
        if not all(isinstance(b, T) for b in batch):
            raise _mismatch(batch, "mix clgrad tensors with other types")
        _check_stackable(batch)
        return _Deferred(_stack_device, batch)
    if isinstance(elem, _Host):
        return _Host(np.stack([b.array for b in batch]))
    if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (np.str_,
                                                                          np.bytes_)):
        if isinstance(elem, np.ndarray) and elem.dtype.kind in "USO":
            raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, "
                            f"numbers, dicts or lists; found numpy array of dtype {elem.dtype}")
        err = _mismatch(batch, "stack arrays of different shapes or types")
        if err is not None:
            raise err
        return _Host(np.stack([np.asarray(b) for b in batch]))
    if isinstance(elem, bool):
        _check_same(batch, bool)
        return _Host(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, int):
        _check_same(batch, numbers.Integral)
        return _Host(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        _check_same(batch, numbers.Real)
        return _Host(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        keys = list(elem)
        for i, b in enumerate(batch):
            if not isinstance(b, collections.abc.Mapping) or set(b) != set(keys):
                raise RuntimeError(f"default_collate: batch element {i} has keys "
                                   f"{sorted(map(str, b)) if isinstance(b, dict) else type(b)}"
                                   f" but element 0 has keys {sorted(map(str, keys))}")
        out = {k: host_collate([b[k] for b in batch]) for k in keys}
        try:
            return type(elem)(out)
        except TypeError:
            return out
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(host_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        for i, b in enumerate(batch):
            if not isinstance(b, collections.abc.Sequence) or len(b) != size:
                raise RuntimeError("each element in list of batch should be of equal size "
                                   f"(element 0 has {size} fields, element {i} is "
                                   f"{_describe(b)}"
                                   + (f" with {len(b)}" if hasattr(b, "__len__") else "") + ")")
        transposed = [host_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return transposed       # PyTorch returns a list for tuples too
        try:
            return type(elem)(transposed)
        except TypeError:
            return transposed
    raise TypeError("default_collate: batch must contain tensors, numpy arrays, numbers, dicts "
                    f"or lists; found {type(elem)}")


def _check_same(batch, kind):
    for i, b in enumerate(batch):
        if not isinstance(b, kind) or isinstance(b, (str, bytes)):
            raise RuntimeError(f"default_collate: cannot collate batch element {i} of type "
                               f"{type(b).__name__} with element 0 of type "
                               f"{type(batch[0]).__name__}")


def to_device(data, device=None):
    """Replace every stacked host field by a clgrad tensor: one host-to-device copy each."""
    if isinstance(data, _Deferred):
        return data.fn(*data.args)
    if isinstance(data, _Host):
        arr = data.array
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"default_collate: cannot make a tensor of numpy dtype {arr.dtype}")
        # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
        arr = arr if arr.flags.c_contiguous else arr.copy()
        return from_numpy(arr, device=device)
    if isinstance(data, collections.abc.Mapping):
        out = {k: to_device(v, device) for k, v in data.items()}
        try:
            return type(data)(out)
        except TypeError:
            return out
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(to_device(v, device) for v in data))
    if isinstance(data, list):
        return [to_device(v, device) for v in data]
    if isinstance(data, tuple):
        return tuple(to_device(v, device) for v in data)
    return data


def default_collate(batch):
    """Merge a list of samples into a batch: clgrad tensors are stacked on the device; numpy
    arrays and numbers are stacked on the host and copied once per field (floats become
    float64 and ints int64, as in PyTorch); dicts, lists, tuples and namedtuples are collated
    field by field; strings are left as lists.

    Example:
        >>> default_collate([{"x": np.ones(3), "y": 1}, {"x": np.zeros(3), "y": 0}])
        {'x': tensor of shape (2, 3), 'y': tensor([1, 0])}
    """
    return to_device(host_collate(batch))


def _host_convert(data):
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        return _Host(data)
    if isinstance(data, np.generic) and np.asarray(data).dtype.kind in "biuf":
        return _Host(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {k: _host_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(_host_convert(v) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(_host_convert(v) for v in data)
    return data


def default_convert(data):
    """Without batching: numpy arrays (also inside containers) become clgrad tensors."""
    return to_device(_host_convert(data))
