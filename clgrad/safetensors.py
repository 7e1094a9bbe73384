"""Read and write the safetensors format without torch or the safetensors package.

Layout: u64 little-endian header length N | N bytes of JSON header (space-padded to a multiple
of 8) | raw little-endian tensor data. The header maps each name to {"dtype", "shape",
"data_offsets": [begin, end]} (offsets relative to the data section) plus an optional
"__metadata__" dict of strings."""
from __future__ import annotations

import json
import math
import struct

import numpy as np

from . import dtypes as dt
from ._fileio import atomic_write, read_all
from .tensor import Tensor, storage

_TO_ST = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32",
          "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
_FROM_ST = {v: k for k, v in _TO_ST.items()}
_MAX_HEADER = 100_000_000


class SafetensorError(ValueError):
    """A malformed safetensors file or an unsupported entry."""


def save(tensors: dict, metadata=None) -> bytes:
    """The safetensors bytes of a {name: tensor} dict (tensors may be numpy arrays)."""
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorError("metadata must be a dict of str to str")
    header, chunks, offset = {}, [], 0
    # largest alignment first keeps every tensor naturally aligned in the data section
    items = sorted(tensors.items(), key=lambda kv: (-_itemsize(kv[1]), kv[0]))
    for name, t in items:
        if not isinstance(name, str):
            raise SafetensorError(f"tensor names must be strings, got {type(name).__name__}")
        if isinstance(t, Tensor):
            arr, dname = t.detach().numpy(force=True), t.dtype.name
        else:
            arr = np.asarray(t)
            dname = dt.from_numpy_dtype(arr.dtype).name
        if dname not in _TO_ST:
            raise SafetensorError(f"dtype {dname} has no safetensors code")
        if dname == "bfloat16":
            arr = dt.bf16_bits(arr)
        le = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
        raw = np.ascontiguousarray(arr, dtype=le).tobytes()
        header[name] = {"dtype": _TO_ST[dname], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = dict(metadata)
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)
    return struct.pack("<Q", len(hbytes)) + hbytes + b"".join(chunks)


def _itemsize(t):
    return t.dtype.itemsize if hasattr(t.dtype, "itemsize") else np.dtype(t.dtype).itemsize


def save_file(tensors: dict, filename, metadata=None) -> None:
    """Write a {name: tensor} dict as a .safetensors file (atomically)."""
    atomic_write(filename, save(tensors, metadata))


def _parse(data: bytes):
    if len(data) < 8:
        raise SafetensorError("file too short for a safetensors header")
    (n,) = struct.unpack_from("<Q", data)
    if n > _MAX_HEADER or 8 + n > len(data):
        raise SafetensorError(f"header length {n} exceeds the file ({len(data)} bytes): "
                              "truncated or not a safetensors file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorError(f"invalid safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorError("safetensors header must be a JSON object")
    body = memoryview(data)[8 + n:]
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise SafetensorError("__metadata__ must be a JSON object of strings")
    spans = []
    for name, info in header.items():
        try:
            code, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorError(f"malformed entry for tensor {name!r}") from None
        if code not in _FROM_ST:
            raise SafetensorError(f"tensor {name!r} has unsupported dtype {code!r}")
        d = dt._NAMES[_FROM_ST[code]]
        if not isinstance(shape, list) or any(
                not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in shape):
            raise SafetensorError(f"tensor {name!r} has an invalid shape {shape}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (begin, end)):
            raise SafetensorError(f"tensor {name!r} has non-integer data_offsets")
        if not (0 <= begin <= end <= len(body)):
            raise SafetensorError(f"tensor {name!r} data {begin}:{end} lies outside the "
                                  f"{len(body)}-byte data section (truncated file?)")
        if end - begin != math.prod(shape) * d.itemsize:
            raise SafetensorError(f"tensor {name!r}: {end - begin} bytes do not hold shape "
                                  f"{shape} of {code}")
        spans.append((begin, end, name, d, tuple(shape)))
    spans.sort()
    pos = 0
    for begin, end, name, _, _ in spans:
        if begin != pos:
            raise SafetensorError(f"tensor {name!r} overlaps another or leaves a gap in the "
                                  "data section")
        pos = end
    if pos != len(body):
        raise SafetensorError("data section has trailing bytes not covered by any tensor")
    return header, metadata, body, spans


def _arrays(data: bytes):
    _, _, body, spans = _parse(data)
    out = {}
    for begin, end, name, d, shape in sorted(spans, key=lambda s: s[2]):
        le = d.np.newbyteorder("<") if d.itemsize > 1 else d.np
        arr = np.frombuffer(body[begin:end], dtype=le).astype(d.np).reshape(shape)
        if d is dt.bfloat16:
            arr = dt.bf16_values(arr)
        out[name] = (arr, d)
    return out


def load(data: bytes, device=None) -> dict:
    """{name: tensor} from safetensors bytes."""
    dev = storage.device(device)
    return {k: storage.from_host(a, d, dev) for k, (a, d) in _arrays(bytes(data)).items()}


def load_file(filename, device=None) -> dict:
    """{name: tensor} from a .safetensors file, on `device` (default: the default device)."""
    return load(read_all(filename), device)


def load_metadata(filename) -> dict:
    return _parse(read_all(filename))[1] or {}


def safe_open(*args, **kwargs):
    raise NotImplementedError("use clgrad.safetensors.load_file")
