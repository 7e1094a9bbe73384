"""Advanced indexing (integer and boolean tensor indices) for reading and assignment, and the two
differentiable primitives every gather/scatter op is built from: gather_map and put_map.

Bounds: gather kernels clamp a bad index to 0 and set the device's error flag
(runtime/faults.py); the next sync (a host read, synchronize()) raises IndexError (also a
RuntimeError where PyTorch raises one) with PyTorch's message and the op's name. No op waits
for its own check. Internal indices (sort results, nonzero, backward passes) are trusted and
leave the device unarmed."""
from __future__ import annotations

import numpy as np

from .. import autograd, ops
from . import factory
from .apply import apply
from .indexing import basic_view_fn, int_index, plan_fn, slice_bounds
from ..dtypes import bool_, int64, uint8
from ..runtime import faults
from ..runtime.errors import DeviceIndexError
from ..view import View, broadcast_shapes


def _is_t(x) -> bool:
    return hasattr(x, "_view")


def out_of_bounds(op: str) -> int:
    """The fault site of PyTorch's 'index i is out of bounds for dimension d with size n'."""
    return faults.site(op, DeviceIndexError,
                       "index {value} is out of bounds for dimension {aux} with size {limit}")


def out_of_range_in_self(op: str) -> int:
    return faults.site(op, DeviceIndexError, "index out of range in self (index {value} for "
                       "dimension {aux} with size {limit})")


class IndexMap:
    """Where each element of an indexing result comes from in a tensor of shape `x_shape`.

    `view_fn` (View -> View) applies the basic part of the index (slices, ints, None) and gives
    the target; each output dim is then either a target dim read directly (`direct`: pairs
    (out_dim, target_dim)) or the broadcast shape of index tensors, each of which picks along
    one target dim (`indexed`: pairs (target_dim, int tensor viewed with out_shape))."""

    def __init__(self, x_shape, out_shape, direct, indexed, view_fn=None, check=None,
                 wrap=True):
        self.x_shape = tuple(x_shape)
        self.out_shape = tuple(out_shape)
        self.direct = tuple(direct)
        self.indexed = tuple(indexed)
        self.view_fn = view_fn
        self.check = check
        self.wrap = wrap        # negative indices count from the end (x[i], take), or not

    def trusted(self) -> "IndexMap":
        return IndexMap(self.x_shape, self.out_shape, self.direct, self.indexed, self.view_fn,
                        wrap=self.wrap)

    def layout(self, xview: View):
        tv = self.view_fn(xview) if self.view_fn is not None else xview
        base = [0] * len(self.out_shape)
        for od, td in self.direct:
            base[od] += tv.strides[td]
        index = [(t, tv.shape[td], tv.strides[td], td) for td, t in self.indexed]
        return View(self.out_shape, tuple(base), tv.offset), index


def placed(t, b_shape, out_shape, pos):
    """The index tensor `t` broadcast to `b_shape`, seen as out_shape with b_shape at `pos`."""
    v = t._view.expand(b_shape)
    lead = pos
    trail = len(out_shape) - pos - len(b_shape)
    return t._plain._make(t._buf, View(tuple(out_shape), (0,) * lead + v.strides + (0,) * trail,
                                    v.offset), t.dtype)


def gather_map(x, m: IndexMap):
    """The differentiable read of `x` through `m` (shape m.out_shape)."""
    return apply(_gather, x, m)


def _gather(ctx, x, m: IndexMap):
    view, index = m.layout(x._view)
    out = ops.index_gather(x, view, index, m.check, m.wrap)
    tm = m.trusted()
    shape = x.shape

    def backward(c, g):
        return (put_map(g._plain._zeros(shape, g.dtype, g.device), tm, g, True, owned=True),)
    return out, "IndexBackward0", backward


def _values(T, values, m: IndexMap, dtype, device):
    """values (tensor or scalar) as a contiguous `T` tensor of m.out_shape in `dtype`, no
    grad."""
    if not _is_t(values):
        return T._full(m.out_shape, values, dtype, device)
    v = values.detach()
    while v.ndim > len(m.out_shape) and v.shape[0] == 1:
        v = v.reshape(v.shape[1:])
    try:
        broadcast_shapes(v.shape, m.out_shape)
        v = v.expand(m.out_shape)
    except RuntimeError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(values.shape)} cannot "
                           f"be broadcast to indexing result of shape {list(m.out_shape)}") \
            from None
    out = T._empty(m.out_shape, dtype, device)
    return ops.copy_into(out, v)


def put_into(dst, m: IndexMap, values, mode: str):
    """Write through `m` straight into dst's storage (no autograd): mode 'set', 'add' or
    'multiply'. Duplicate destinations fold in index order (set: the last one wins)."""
    view, index = m.layout(dst._view)
    offs = ops.index_offsets(view, index, dst.device, m.check, m.wrap)
    vals = _values(dst._plain, values, m, dst.dtype, dst.device)
    ops.scatter_sorted(dst, offs, vals, mode)
    return dst


def put_map(x, m: IndexMap, values, accumulate: bool, mode=None, owned=False):
    """Out of place: a copy of x with `values` (broadcast to m.out_shape) put through `m`,
    added where `accumulate`. Differentiable in x and in a tensor `values`. `owned`: x is a
    fresh internal tensor that may be written instead of copied."""
    mode = mode or ("add" if accumulate else "set")
    return apply(_put, x, values, m, mode, owned)


def _put(ctx, x, values, m: IndexMap, mode, owned):
    if ctx is not None and mode == "multiply":
        raise NotImplementedError("the gradient of scatter with reduce='multiply' is not "
                                  "implemented")
    out = x if owned and not x.requires_grad else \
        ops.copy_into(x._plain._empty(x.shape, x.dtype, x.device), x.detach())
    put_into(out, m, values, mode)
    tm = m.trusted()

    def backward(c, g):
        gx = gv = None
        if c.needs_input_grad[0]:
            gx = g if mode == "add" else put_map(g, tm, 0, False)
        if c.needs_input_grad[1]:
            gv = gather_map(g, tm)
        return gx, gv
    return out, "IndexPutBackward0", backward


# ---- advanced indexing: parse, then one gather / put --------------------------------------------
def _as_index(x, i):
    """One index item as given, or as an int64 / bool tensor on x's device."""
    def tensor(data, dtype):
        return factory.from_host(x._plain, data, dtype, x.device)
    if _is_t(i):
        if i.dtype.is_floating:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return i
    if isinstance(i, bool):
        return tensor(i, bool_)
    if isinstance(i, (list, tuple, np.ndarray, range)):
        arr = np.asarray(i)
        if arr.dtype == np.bool_:
            return tensor(arr, bool_)
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return tensor(arr.astype(np.int64), int64)
    return i


def _parse(x, idx):
    """(view_fn, target shape, [(target_dim, int tensor)]) for an index with tensor parts."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    items = [_as_index(x, i) for i in idx]
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")

    def consumes(i):
        if i is None or i is Ellipsis:
            return 0
        if _is_t(i) and i.dtype in (bool_, uint8):
            return i.ndim
        return 1
    used = sum(consumes(i) for i in items)
    if used > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim}")
    ell = [k for k, i in enumerate(items) if i is Ellipsis]
    if ell:
        k = ell[0]
        items = items[:k] + [slice(None)] * (x.ndim - used) + items[k + 1:]
    else:
        items = items + [slice(None)] * (x.ndim - used)
    plan, adv = [], []
    trusted = True                     # only mask-derived indices: nothing to bounds-check
    src, d = 0, 0                      # next dim of x, next dim of the target view
    for i in items:
        if i is None:
            plan.append(("new", d))
            d += 1
        elif isinstance(i, slice):
            plan.append(("slice", d) + slice_bounds(i, x.shape[src]))
            src += 1
            d += 1
        elif _is_t(i) and i.dtype in (bool_, uint8):
            if i.ndim == 0:
                plan.append(("new", d))
                adv.append((d, x._plain._zeros((1 if bool(i.item()) else 0,), int64,
                                               x.device)))
                d += 1
                continue
            for k in range(i.ndim):
                if i.shape[k] != x.shape[src + k]:
                    raise IndexError(f"The shape of the mask {list(i.shape)} at index {k} does "
                                     f"not match the shape of the indexed tensor "
                                     f"{list(x.shape)} at index {src + k}")
            for k, coord in enumerate(nonzero_coords(i != 0 if i.dtype is uint8 else i)):
                adv.append((d + k, coord))
            src += i.ndim
            d += i.ndim
        elif _is_t(i):
            trusted = False
            if x.shape[src] == 0 and i.numel():
                # every index into an empty dim is out of range: known without the device
                raise IndexError(f"index is out of bounds for dimension {src} with size 0")
            adv.append((d, i))
            src += 1
            d += 1
        else:
            plan.append(("int", d, int_index(i, x.shape[src], src)))
            # an int removes its dim before the tensor indices are placed, as in PyTorch
            src += 1
    fn = plan_fn(plan)
    return fn, fn(x._view).shape, adv, trusted


def _advanced_map(x, idx) -> IndexMap:
    fn, tshape, adv, trusted = _parse(x, idx)
    # a 0-d integer tensor acts like an int, as in PyTorch: its dim goes away and it neither
    # broadcasts with the other indices nor counts when placing them
    scal = [(d, t) for d, t in adv if t.ndim == 0]
    vec = [(d, t) for d, t in adv if t.ndim != 0]
    try:
        b_shape = broadcast_shapes(*(t.shape for _, t in vec))
    except RuntimeError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with "
                         "shapes " + ", ".join(str(list(t.shape)) for _, t in vec)) from None
    keep = [d for d in range(len(tshape)) if d not in {d for d, _ in scal}]
    vpos = [keep.index(d) for d, _ in vec]
    adjacent = vpos == list(range(vpos[0], vpos[0] + len(vpos))) if vpos else True
    rest = [k for k in range(len(keep)) if k not in vpos]
    pos = vpos[0] if (vpos and adjacent) else 0
    before = [k for k in rest if k < pos]
    after = [k for k in rest if k >= pos]
    out_shape = tuple(tshape[keep[k]] for k in before) + b_shape + \
        tuple(tshape[keep[k]] for k in after)
    direct = [(i, keep[k]) for i, k in enumerate(before)]
    direct += [(len(before) + len(b_shape) + i, keep[k]) for i, k in enumerate(after)]
    indexed = [(d, placed(t, b_shape, out_shape, len(before))) for d, t in vec]
    indexed += [(d, placed(t, (), out_shape, 0)) for d, t in scal]
    return IndexMap(x.shape, out_shape, direct, indexed, fn,
                    None if trusted else out_of_bounds("index"))


def advanced_getitem(x, idx):
    return gather_map(x, _advanced_map(x, idx))


def advanced_setitem(x, idx, value):
    if not _is_t(value) and not isinstance(value, (int, float, bool)):
        value = factory.from_host(x._plain, np.asarray(value), x.dtype, x.device)
    index_put_map_(x, _advanced_map(x, idx), value, False)


def index_put_map_(x, m: IndexMap, values, accumulate, mode=None):
    """In place: x through m gets values (set, or added where accumulate)."""
    mode = mode or ("add" if accumulate else "set")
    if _is_t(values):
        if values.device != x.device:
            raise RuntimeError("Expected all tensors to be on the same device")
        return x._inplace(lambda s, v: put_map(s, m, v, accumulate, mode), values,
                          fast=lambda: put_into(x, m, values, mode))
    return x._inplace(lambda s: put_map(s, m, values, accumulate, mode),
                      fast=lambda: put_into(x, m, values, mode))


# ---- x[idx] and x[idx] = value: a view where the index is basic, else one gather / put ----------
def getitem(x, idx):
    fn = basic_view_fn(x, idx)
    if fn is None:
        return advanced_getitem(x, idx)
    return x._view_fn(fn, "IndexBackward0")


def setitem(x, idx, value):
    fn = basic_view_fn(x, idx)
    if fn is None:
        return advanced_setitem(x, idx, value)
    T = type(x)
    target = T._make(x._buf, fn(x._view), x.dtype)
    if autograd.needs_grad(x, value):
        x._check_inplace()
        # record as x = x with the region replaced: gradient flows to value and to x elsewhere
        region_shape = target.shape

        def compute(s, v):
            if not _is_t(v):
                v = T._full((), v, s.dtype, s.device)
            mask = apply(ops.scatter_view, T._full(region_shape, 1, s.dtype, s.device).detach(),
                                    s.shape, fn)
            placed = apply(ops.scatter_view, v.expand(region_shape).to(s.dtype), s.shape, fn)
            return s * (1 - mask) + placed
        x._inplace(compute, value)
        return
    x._check_inplace()
    ops.copy_into(target, value)


# ---- data-dependent sizes: one count read back -------------------------------------------------
def nonzero_flat(mask):
    """Row-major positions (int64, 1-D) of the nonzero elements of `mask` (reads back only the
    count)."""
    return ops.nonzero_positions(mask.detach() if mask.ndim else mask.detach().reshape(1))


def nonzero_coords(mask):
    """One int64 tensor of coordinates per dim of `mask` (nonzero(as_tuple=True))."""
    lin = nonzero_flat(mask)
    T = mask._plain
    coords = []
    stride = 1
    strides = []
    for s in reversed(mask.shape):
        strides.append(stride)
        stride *= s
    strides.reverse()
    for d, s in enumerate(mask.shape):
        out = T._empty(lin.shape, int64, lin.device)
        ops.launch_ew("coord_i64", "(x0 / x1) % x2", out, [lin, strides[d], max(s, 1)], "long")
        coords.append(out)
    return coords

