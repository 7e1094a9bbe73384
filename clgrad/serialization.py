"""clgrad.save / clgrad.load: checkpoints of nested containers of tensors and Python values.

File layout (all little-endian):
    b"CLGRADCK" | u32 format version | u64 header length | 32-byte sha256 of the header |
    header (UTF-8 JSON) | payload (raw tensor bytes, back to back)
The header describes the object tree (tagged JSON: no code, no pickle) and each tensor's
dtype, shape, payload offset and length; it also holds the payload's sha256. Loading checks
every length and both checksums before building any tensor, so a truncated or corrupted file
raises CheckpointError and never yields a partial object."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import pickle
import struct
import threading
from collections import OrderedDict

import numpy as np

from . import dtypes as dt
from ._fileio import atomic_write, read_all
from .nn.parameter import Parameter
from .tensor import Tensor, storage

MAGIC = b"CLGRADCK"
VERSION = 1
_PREFIX = struct.Struct("<8sIQ32s")


class CheckpointError(RuntimeError):
    """The file is not a clgrad checkpoint, or it is truncated or corrupted."""


def _encode(obj, tensors, blobs):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj if not isinstance(obj, np.integer) else int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"t": "float", "v": repr(obj)}
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _encode(obj.item(), tensors, blobs)
    if isinstance(obj, Tensor):
        arr = obj.detach().numpy(force=True)
        entry = _blob(arr, obj.dtype.name, blobs)
        entry.update(t="tensor", param=isinstance(obj, Parameter),
                     requires_grad=bool(obj.requires_grad))
        return entry
    if isinstance(obj, np.ndarray):
        try:
            dname = dt.from_numpy_dtype(obj.dtype).name
        except Exception:      # noqa: BLE001 - reported as unsupported below
            raise TypeError(f"clgrad.save cannot store numpy arrays of dtype {obj.dtype}")
        entry = _blob(obj, dname, blobs)
        entry["t"] = "ndarray"
        return entry
    if isinstance(obj, dt.DType):
        return {"t": "dtype", "v": obj.name}
    if isinstance(obj, bytes):
        return {"t": "bytes", "v": base64.b64encode(obj).decode()}
    if isinstance(obj, dict):
        kind = "odict" if isinstance(obj, OrderedDict) else "dict"
        return {"t": kind, "items": [[_encode(k, tensors, blobs), _encode(v, tensors, blobs)]
                                     for k, v in obj.items()]}
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return {"t": "tuple", "items": [_encode(v, tensors, blobs) for v in obj]}
    if isinstance(obj, list):
        return {"t": "list", "items": [_encode(v, tensors, blobs) for v in obj]}
    if isinstance(obj, (set, frozenset)):
        return {"t": "set", "items": [_encode(v, tensors, blobs) for v in obj]}
    return _pickled(obj, blobs)


class _Pickler(pickle.Pickler):
    """Pickles an object with its tensors kept out of the pickle, as checkpoint blobs."""

    def __init__(self, f, blobs):
        super().__init__(f, protocol=4)
        self.blobs = blobs
        self.refs: list = []

    def persistent_id(self, obj):
        if isinstance(obj, Tensor):
            self.refs.append(_encode(obj, None, self.blobs))
            return len(self.refs) - 1
        return None


def _pickled(obj, blobs):
    # objects the JSON tree cannot describe (whole modules, user classes) are pickled, as
    # PyTorch does; only load(weights_only=False) or allowlisted globals unpickle them
    buf = io.BytesIO()
    pickler = _Pickler(buf, blobs)
    try:
        pickler.dump(obj)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise TypeError(f"clgrad.save cannot store objects of type {type(obj).__name__}: it is "
                        f"not a tensor, container or plain value, and pickling failed ({e})") \
            from None
    return {"t": "pickled", "v": base64.b64encode(buf.getvalue()).decode(),
            "refs": pickler.refs}


def _blob(arr, dname, blobs):
    d = dt._NAMES[dname]
    if d is dt.bfloat16:
        arr = dt.bf16_bits(arr)         # the tensor's own bits (numpy() gives their values)
    host = np.ascontiguousarray(arr, dtype=d.np.newbyteorder("<") if d.np.itemsize > 1
                                else d.np)
    raw = host.view(np.uint8).tobytes() if host.size else b""
    offset = sum(len(b) for b in blobs)
    blobs.append(raw)
    return {"dtype": dname, "shape": list(arr.shape), "offset": offset, "nbytes": len(raw)}


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Write `obj` to path or file object `f`; a path is written atomically (temp file, fsync,
    rename). Nested dicts/lists/tuples of tensors and plain values are stored without pickle;
    any other object (a whole nn.Module, a user class) is pickled with its tensors stored as
    raw blobs, and loads only with `weights_only=False` or its classes allowlisted."""
    if pickle_module is not None:
        raise ValueError("clgrad.save never pickles with a custom pickle_module: it is not supported")
    blobs: list = []
    tree = _encode(obj, None, blobs)
    payload = b"".join(blobs)
    header = json.dumps({"format": "clgrad-checkpoint", "obj": tree,
                         "payload_len": len(payload),
                         "payload_sha256": hashlib.sha256(payload).hexdigest()},
                        separators=(",", ":"), allow_nan=False).encode()
    prefix = _PREFIX.pack(MAGIC, VERSION, len(header), hashlib.sha256(header).digest())
    atomic_write(f, prefix + header + payload)


def _decode(node, payload, device):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        raise CheckpointError("malformed checkpoint header (bare list)")
    t = node.get("t")
    if t == "float":
        return float(node["v"])
    if t in ("tensor", "ndarray"):
        d = dt._NAMES.get(node["dtype"])
        if d is None:
            raise CheckpointError(f"unknown dtype {node['dtype']!r} in checkpoint")
        shape = tuple(int(s) for s in node["shape"])
        if any(s < 0 for s in shape):
            raise CheckpointError(f"tensor has a negative size {list(shape)} in checkpoint")
        n = math.prod(shape)
        off, nb = int(node["offset"]), int(node["nbytes"])
        if nb != n * d.itemsize or off < 0 or off + nb > len(payload):
            raise CheckpointError("tensor data out of the payload's bounds: the checkpoint is "
                                  "corrupted")
        le = d.np.newbyteorder("<") if d.itemsize > 1 else d.np
        arr = np.frombuffer(payload, dtype=le, count=n, offset=off).astype(d.np).reshape(shape)
        if d is dt.bfloat16:
            arr = dt.bf16_values(arr)
        if t == "ndarray":
            return arr.copy()
        out = storage.from_host(arr, d, device)
        if node.get("param"):
            return Parameter(out, requires_grad=node.get("requires_grad", True))
        if node.get("requires_grad"):
            out.requires_grad_(True)
        return out
    if t == "dtype":
        if node["v"] not in dt._NAMES:
            raise CheckpointError(f"unknown dtype {node['v']!r} in checkpoint")
        return dt._NAMES[node["v"]]
    if t == "bytes":
        return base64.b64decode(node["v"])
    if t in ("dict", "odict"):
        items = [(_hashable(_decode(k, payload, device)), _decode(v, payload, device))
                 for k, v in node["items"]]
        return OrderedDict(items) if t == "odict" else dict(items)
    if t == "list":
        return [_decode(v, payload, device) for v in node["items"]]
    if t == "tuple":
        return tuple(_decode(v, payload, device) for v in node["items"])
    if t == "set":
        return set(_hashable(_decode(v, payload, device)) for v in node["items"])
    if t == "pickled":
        return _unpickle(node, payload, device)
    raise CheckpointError(f"unknown entry type {t!r} in checkpoint")


# what a weights_only load unpickles without being told: plain containers
_SAFE_DEFAULT = {("collections", "OrderedDict"): OrderedDict, ("builtins", "set"): set,
                 ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
                 ("builtins", "complex"): complex}
_safe_globals: dict = {}
_load_state = threading.local()


def _global_name(obj) -> tuple:
    return (obj.__module__, obj.__qualname__)


def add_safe_globals(safe_globals) -> None:
    """Allow these classes/functions in a weights_only load (PyTorch's allowlist)."""
    for g in safe_globals:
        obj = g[0] if isinstance(g, tuple) else g
        _safe_globals[_global_name(obj)] = obj


def _allowlisted() -> list:
    return list(_safe_globals.values())


def _clear_allowlist() -> None:
    _safe_globals.clear()


# PyTorch's names for reading and clearing the allowlist
get_safe_globals, clear_safe_globals = _allowlisted, _clear_allowlist


@contextlib.contextmanager
def safe_globals(safe_globals):
    """Allow `safe_globals` in weights_only loads inside the with-block only."""
    saved = dict(_safe_globals)
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        _safe_globals.clear()
        _safe_globals.update(saved)


_WEIGHTS_ONLY_HELP = (
    "Weights only load failed. This file can still be loaded, to do so you have two options, "
    "do those steps only if you trust the source of the checkpoint. \n\t(1) As in PyTorch "
    "2.6+, the default value of the `weights_only` argument of `clgrad.load` is `True`. "
    "Re-running `clgrad.load` with `weights_only` set to `False` will likely succeed, but it "
    "can result in arbitrary code execution. Do it only if you got the file from a trusted "
    "source.\n\t(2) Alternatively, to load with `weights_only=True` please check the "
    "recommended steps in the following error message.\n\tWeightsUnpickler error: ")


class _Unpickler(pickle.Unpickler):
    """Resolves the tensors a checkpoint's pickle refers to; with `weights_only`, only the
    allowlisted globals (nothing else can run code)."""

    def __init__(self, f, refs, payload, device, weights_only):
        super().__init__(f)
        self.refs, self.payload, self.device = refs, payload, device
        self.weights_only = weights_only

    def persistent_load(self, pid):
        if not isinstance(pid, int) or not 0 <= pid < len(self.refs):
            raise CheckpointError("malformed checkpoint: a pickled object refers to a tensor "
                                  "that is not in the file")
        return _decode(self.refs[pid], self.payload, self.device)

    def find_class(self, module, name):
        if not self.weights_only:
            return super().find_class(module, name)
        obj = _SAFE_DEFAULT.get((module, name)) or _safe_globals.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(
                _WEIGHTS_ONLY_HELP + f"Unsupported global: GLOBAL {module}.{name} was not an "
                "allowed global by default. Please use `clgrad.serialization.add_safe_globals("
                f"[{name}])` or the `clgrad.serialization.safe_globals([{name}])` context "
                "manager to allowlist this global if you trust this class/function.")
        return obj


def _unpickle(node, payload, device):
    refs = node.get("refs")
    if not isinstance(refs, list) or not isinstance(node.get("v"), str):
        raise CheckpointError("malformed checkpoint header: bad pickled entry")
    data = base64.b64decode(node["v"])
    weights_only = getattr(_load_state, "weights_only", True)
    return _Unpickler(io.BytesIO(data), refs, payload, device, weights_only).load()


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


def _target_device(map_location):
    if map_location is None or callable(map_location) or isinstance(map_location, dict):
        return storage.device(None)
    if isinstance(map_location, str) and map_location.split(":")[0] in ("cpu", "cuda"):
        # PyTorch spellings: the matching OpenCL device class when present, else the default
        try:
            return storage.device("gpu" if map_location.startswith("cuda") else "cpu")
        except Exception:  # noqa: BLE001 - no device of that class: use the default one
            return storage.device(None)
    return storage.device(map_location)


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **kwargs):
    """Read a checkpoint written by `clgrad.save`; tensors land on `map_location` (a device or
    device spec; default: the default device). Tensors and plain containers are JSON and raw
    bytes: loading them runs no code. Other objects (whole modules, user classes) were pickled:
    as in PyTorch 2.6+, the default `weights_only=True` unpickles only allowlisted globals
    (`add_safe_globals`, `safe_globals`) and refuses the rest with PyTorch's message;
    `weights_only=False` unpickles anything, which can run code: only for trusted files.
    `pickle_module` is refused."""
    if pickle_module is not None:
        raise ValueError("clgrad.load never unpickles with a custom pickle_module: it is not supported")
    data = read_all(f)
    if len(data) < _PREFIX.size:
        raise CheckpointError(f"checkpoint is truncated: {len(data)} bytes is shorter than the "
                              f"{_PREFIX.size}-byte preamble")
    magic, version, hlen, hsum = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        hint = ""
        if data[:2] == b"PK" or data[:1] == b"\x80":
            hint = (" (it looks like a PyTorch pickle/zip checkpoint: clgrad runs no pickled "
                    "code; convert it with torch to safetensors and read that with "
                    "clgrad.safetensors.load_file)")
        raise CheckpointError("not a clgrad checkpoint (bad magic bytes); safetensors files "
                              "load with clgrad.safetensors.load_file" + hint)
    if version != VERSION:
        raise CheckpointError(f"unsupported checkpoint format version {version} (this clgrad "
                              f"reads version {VERSION}): written by another clgrad release, or "
                              "the file is corrupted")
    start = _PREFIX.size
    if start + hlen > len(data):
        raise CheckpointError(f"checkpoint is truncated: header needs {hlen} bytes, "
                              f"{len(data) - start} present")
    header = data[start:start + hlen]
    if hashlib.sha256(header).digest() != hsum:
        raise CheckpointError("checkpoint header checksum mismatch: the file is corrupted")
    try:
        meta = json.loads(header)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"checkpoint header is not valid JSON: {e}") from None
    if (not isinstance(meta, dict) or meta.get("format") != "clgrad-checkpoint"
            or not isinstance(meta.get("payload_len"), int) or "obj" not in meta):
        raise CheckpointError("malformed checkpoint header: not a clgrad checkpoint tree")
    payload = data[start + hlen:]
    if len(payload) != meta["payload_len"]:
        raise CheckpointError(f"checkpoint is truncated or padded: payload is {len(payload)} "
                              f"bytes, header says {meta['payload_len']}")
    if hashlib.sha256(payload).hexdigest() != meta.get("payload_sha256"):
        raise CheckpointError("checkpoint payload checksum mismatch: the file is corrupted")
    _load_state.weights_only = weights_only is not False
    try:
        return _decode(meta["obj"], payload, _target_device(map_location))
    except (CheckpointError, pickle.UnpicklingError):
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise CheckpointError(f"malformed checkpoint header: {type(e).__name__}: {e}") from None
