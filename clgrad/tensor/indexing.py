"""Basic indices (ints, slices with steps, None, ...) parsed into View functions."""
from __future__ import annotations

import numpy as np


def _is_t(x) -> bool:
    return hasattr(x, "_view")


def _normalize_index(x, idx):
    if not isinstance(idx, tuple):
        idx = (idx,)
    consumed = sum(1 for i in idx if i is not None and i is not Ellipsis and
                   not (isinstance(i, bool)))
    if sum(1 for i in idx if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim}")
    out = []
    for i in idx:
        if i is Ellipsis:
            out.extend([slice(None)] * (x.ndim - consumed))
        else:
            out.append(i)
    if not any(i is Ellipsis for i in idx):
        out.extend([slice(None)] * (x.ndim - consumed))
    return out


def basic_view_fn(x, idx):
    """A View -> View function applying the basic index, or None when `idx` is advanced."""
    parts = idx if isinstance(idx, tuple) else (idx,)
    if any(isinstance(i, (bool, list, range, np.ndarray)) or _is_t(i) for i in parts):
        return None
    items = _normalize_index(x, idx)
    plan, d = [], 0
    for i in items:
        if i is None:
            plan.append(("new", d))
            d += 1
        elif isinstance(i, slice):
            size = x.shape[len([p for p in plan if p[0] != "new"])]
            plan.append(("slice", d) + slice_bounds(i, size))
            d += 1
        elif isinstance(i, bool) or _is_t(i) or isinstance(i, (list, tuple, range)):
            return None
        else:
            src_dim = len([p for p in plan if p[0] != "new"])
            plan.append(("int", d, int_index(i, x.shape[src_dim], src_dim)))
    return plan_fn(plan)


def slice_bounds(i, size):
    """(start, stop, step) of slice `i` over a dim of `size`, an empty range kept non-negative."""
    start, stop, step = i.indices(size)
    if step <= 0:
        raise ValueError("step must be greater than zero")
    return start, max(stop, start), step


def int_index(i, size, dim):
    """The integer index `i` into dim `dim` of `size`, wrapped to [0, size)."""
    try:
        k = int(i.__index__())
    except (AttributeError, TypeError):
        raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long "
                         "or byte or bool tensors are valid indices") from None
    if not -size <= k < size:
        raise IndexError(f"index {k} is out of bounds for dimension {dim} with size {size}")
    return k % size


def plan_fn(plan):
    """A View -> View function applying a plan of ("new", d), ("slice", d, start, stop, step)
    and ("int", d, k) steps in order."""
    def fn(v):
        for p in plan:
            if p[0] == "new":
                v = v.unsqueeze(p[1])
            elif p[0] == "slice":
                v = v.slice(p[1], p[2], p[3], p[4])
            else:
                v = v.select(p[1], p[2])
        return v
    return fn
