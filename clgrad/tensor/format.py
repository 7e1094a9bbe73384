"""PyTorch-style printing of tensors: tensor([...], device='cl:0', requires_grad=True).

The layout follows torch's printer on purpose (one width for every element, right-aligned; fixed
point with 4 decimals, `1.` for integral floats, scientific when the magnitudes span more than
1000x or leave [1e-4, 1e8); 80 columns; more than 1000 elements summarised to 3 per edge), so
that output reads the same as PyTorch's; clgrad adds the device to every tensor."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt

PRECISION = 4
THRESHOLD = 1000
EDGEITEMS = 3
LINEWIDTH = 80


class _Formatter:
    """One width and one notation for all elements (torch's rule), chosen from `values`."""

    def __init__(self, values: np.ndarray, floating: bool):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        vals = values.reshape(-1)
        if not floating:
            for v in vals.tolist():
                self.max_width = max(self.max_width, len(str(v)))
            return
        finite = vals[np.isfinite(vals) & (vals != 0)]
        if finite.size == 0:
            return
        absv = np.abs(finite)
        vmin, vmax = float(absv.min()), float(absv.max())
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        wide = vmax / vmin > 1000.0 or vmax > 1.0e8
        if self.int_mode:
            self.sci_mode = wide
        else:
            self.sci_mode = wide or vmin < 1.0e-4
        # as in torch, only finite non-zero values set the width; nan, inf and 0 may overhang
        for v in finite.tolist():
            self.max_width = max(self.max_width, len(self._plain(v)))

    def _plain(self, v) -> str:
        if not self.floating:
            return str(v)
        if self.sci_mode:
            return f"{v:.{PRECISION}e}"
        if self.int_mode:
            s = f"{v:.0f}"
            return s if (math.isinf(v) or math.isnan(v)) else s + "."
        return f"{v:.{PRECISION}f}"

    def width(self) -> int:
        return self.max_width

    def format(self, v) -> str:
        s = self._plain(v)
        return " " * (self.max_width - len(s)) + s


def _summarized(a: np.ndarray) -> np.ndarray:
    """The edge elements torch shows of a summarised tensor (they choose the formatter)."""
    for axis in range(a.ndim):
        if a.shape[axis] > 2 * EDGEITEMS:
            idx = list(range(EDGEITEMS)) + list(range(a.shape[axis] - EDGEITEMS, a.shape[axis]))
            a = np.take(a, idx, axis=axis)
    return a


def _vector(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    per_line = max(1, math.floor((LINEWIDTH - indent) / (fmt.width() + 2)))
    if summarize and a.shape[0] > 2 * EDGEITEMS:
        data = ([fmt.format(v) for v in a[:EDGEITEMS].tolist()] + [" ..."] +
                [fmt.format(v) for v in a[-EDGEITEMS:].tolist()])
    else:
        data = [fmt.format(v) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _body(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return _vector(a, indent, summarize, fmt)
    if summarize and a.shape[0] > 2 * EDGEITEMS:
        slices = ([_body(a[i], indent + 1, summarize, fmt) for i in range(EDGEITEMS)] + ["..."] +
                  [_body(a[i], indent + 1, summarize, fmt)
                   for i in range(a.shape[0] - EDGEITEMS, a.shape[0])])
    else:
        slices = [_body(a[i], indent + 1, summarize, fmt) for i in range(a.shape[0])]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _add_suffixes(text: str, suffixes, indent: int) -> str:
    parts = [text]
    last = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > LINEWIDTH:
            parts.append(",\n" + " " * indent + s)
            last = indent + len(s)
        else:
            parts.append(", " + s)
            last += len(s) + 2
    return "".join(parts) + ")"


def format_tensor(t) -> str:
    a = t.detach().numpy()
    if a.dtype == np.float16:
        a = a.astype(np.float32)      # torch prints half through float
    prefix = "tensor("
    indent = len(prefix)
    suffixes = [f"device='{t.device}'"]
    if a.size == 0:
        if a.ndim != 1:
            suffixes.append(f"size={tuple(a.shape)}")
        if t.dtype is not dt.get_default_dtype():
            suffixes.append(f"dtype=clgrad.{t.dtype.name}")
        body = "[]"
    else:
        summarize = a.size > THRESHOLD
        floating = a.dtype.kind == "f"
        values = _summarized(a) if summarize else a
        fmt = _Formatter(values.astype(np.float64) if floating else values, floating)
        body = _body(a.astype(np.float64) if floating else a, indent, summarize, fmt)
        if t.dtype not in (dt.get_default_dtype(), dt.int64, dt.bool_):
            suffixes.append(f"dtype=clgrad.{t.dtype.name}")
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, indent)
