"""PyTorch-style printing of tensors: tensor([...], device='cl:0', requires_grad=True)."""
from __future__ import annotations

import numpy as np

from . import dtypes as dt


def _float_formatter(a: np.ndarray):
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return None, False
    amax, amin = np.abs(finite).max(), np.abs(finite).min()
    ints = np.all(finite == np.round(finite))
    sci = amax >= 1e8 or (amin != 0 and amin < 1e-4) or (amin != 0 and amax / amin > 1000
                                                        and not ints)
    if ints and not sci:
        return (lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)), True
    if sci:
        return (lambda v: f"{v:.4e}" if np.isfinite(v) else str(v)), False
    return (lambda v: f"{v:.4f}" if np.isfinite(v) else str(v)), False


def format_tensor(t) -> str:
    a = t.detach().numpy()
    indent = " " * len("tensor(")
    if a.dtype.kind == "f":
        fmt, _ = _float_formatter(a.astype(np.float64))
        kw = {"formatter": {"float_kind": fmt}} if fmt else {}
    elif a.dtype == np.bool_:
        kw = {"formatter": {"bool": lambda v: "True" if v else "False"}}
    else:
        kw = {}
    if a.size == 0:
        body = "[]"
    else:
        body = np.array2string(a, separator=", ", prefix=indent, threshold=1000, edgeitems=3,
                               max_line_width=80, **kw)
    extras = [f"device='{t.device}'"]
    if a.size == 0 and a.ndim != 1:
        extras.append(f"size={tuple(a.shape)}")
    implicit = t.dtype is dt.get_default_dtype() or (t.dtype in (dt.int64, dt.bool_) and a.size)
    if not implicit:
        extras.append(f"dtype=clgrad.{t.dtype.name}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
