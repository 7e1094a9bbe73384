"""Shape, joining, gather/scatter, sort and masking Tensor methods, plus pad and one_hot.

Joins copy into slices of one output (no kernel of their own); gathers and scatters go through
_advanced.gather_map/put_map; sorts through the bitonic kernel in ops.sort_rows."""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from .. import ops
from ..dtypes import bool_, int64, promote
from ..view import View, broadcast_shapes, normalize_dim
from .advanced import (IndexMap, gather_map, nonzero_coords, nonzero_flat, out_of_bounds,
                       out_of_range_in_self, placed, put_map)
from . import factory
from .apply import apply

sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])
kthvalue_result = namedtuple("kthvalue", ["values", "indices"])


def _is_t(x) -> bool:
    return hasattr(x, "_view")


def _dims_arg(dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        return tuple(dims[0])
    return tuple(dims)


def _check_index_dtype(index, name):
    if not _is_t(index) or index.dtype.is_floating or index.dtype is bool_:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")


def diagonal_view(v: View, offset: int, d1: int, d2: int) -> View:
    """The View of the diagonal of dims d1, d2 (appended as the last dim), as torch.diagonal."""
    s1, s2 = v.shape[d1], v.shape[d2]
    if offset >= 0:
        n = max(0, min(s1, s2 - offset))
        start = v.offset + offset * v.strides[d2]
    else:
        n = max(0, min(s1 + offset, s2))
        start = v.offset - offset * v.strides[d1]
    keep = [i for i in range(v.ndim) if i not in (d1, d2)]
    return View(tuple(v.shape[i] for i in keep) + (n,),
                tuple(v.strides[i] for i in keep) + (v.strides[d1] + v.strides[d2],),
                start if n else v.offset)


def _select_map(x, dim, index, n_out=None, trusted=False):
    """The map of index_select along dim (index: 1-D), also used by index_add/fill/copy.
    `trusted` indices are made by clgrad itself and report no fault."""
    idx = index.reshape(-1) if index.ndim == 0 else index
    if idx.ndim != 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    nd = max(x.ndim, 1)
    d = normalize_dim(dim, nd)
    xs = x.shape if x.ndim else (1,)
    if xs[d] == 0 and idx.numel() and not trusted:
        # every index into an empty dim is out of range: known without the device
        raise IndexError("index_select(): self indexing axis dim should be positive (index "
                         f"into dimension {d} of size 0)")
    out_shape = xs[:d] + (idx.shape[0],) + xs[d + 1:]
    direct = [(i, i) for i in range(nd) if i != d]
    fn = (lambda v: v.unsqueeze(0)) if x.ndim == 0 else None
    m = IndexMap(x.shape, out_shape, direct,
                 [(d, placed(idx, (idx.shape[0],), out_shape, d))], fn,
                 None if trusted else out_of_range_in_self("index_select"), wrap=trusted)
    return m, d


def _gather_map(x, dim, index, name):
    """The map of torch.gather(x, dim, index) (output shape index.shape)."""
    _check_index_dtype(index, name)
    nd = x.ndim
    if index.ndim != nd and not (nd <= 1 and index.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input "
                           "tensor")
    d = normalize_dim(dim, max(nd, 1))
    if nd == 0:
        xv = lambda v: v.reshape((1,))     # noqa: E731
        xs, ishape, idx = (1,), tuple(index.shape) or (1,), index.reshape(-1)
    else:
        xv, xs, ishape, idx = None, x.shape, index.shape, index
    for i in range(len(xs)):
        if i != d and ishape[i] > xs[i] and math.prod(ishape):    # PyTorch skips empty ones
            raise RuntimeError(f"Size does not match at dimension {i} expected index "
                               f"{list(index.shape)} to be smaller than self {list(x.shape)} "
                               f"apart from dimension {d}")
    direct = [(i, i) for i in range(len(xs)) if i != d]
    m = IndexMap(x.shape, ishape, direct, [(d, idx)], xv, out_of_bounds(name), wrap=False)
    return m, d


def _restore(t, shape):
    return t.reshape(shape) if tuple(t.shape) != tuple(shape) else t


class ShapeMixin:
    """Shape ops of Tensor that copy or gather data; pure views live in tensor.py."""

    # ---- split and flip ----------------------------------------------------------------------
    def split(self, split_size_or_sections, dim=0):
        d = normalize_dim(dim, self.ndim)
        n = self.shape[d]
        if isinstance(split_size_or_sections, int):
            step = split_size_or_sections
            if step < 0 or (step == 0 and n != 0):
                raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                                   f"dimension size of {n}")
            sizes = [min(step, n - s) for s in range(0, n, step)] if step else [0]
            if not sizes:
                sizes = [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                                   f"(input tensor's size at dimension {d}), but got "
                                   f"split_sizes={sizes}")
        out, start = [], 0
        for s in sizes:
            out.append(self.narrow(d, start, s))
            start += s
        return tuple(out)

    def split_with_sizes(self, split_sizes, dim=0):
        return self.split(list(split_sizes), dim)

    def chunk(self, chunks, dim=0):
        if chunks <= 0:
            raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
        d = normalize_dim(dim, self.ndim)
        n = self.shape[d]
        return self.split(max(1, math.ceil(n / chunks)) if n else 0, d) if n else \
            tuple(self.narrow(d, 0, 0) for _ in range(chunks))

    def tensor_split(self, indices_or_sections, dim=0):
        d = normalize_dim(dim, self.ndim)
        n = self.shape[d]
        if isinstance(indices_or_sections, int):
            k = indices_or_sections
            sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        else:
            bounds = [0] + [min(max(int(i), 0), n) for i in indices_or_sections] + [n]
            sizes = [max(0, b - a) for a, b in zip(bounds, bounds[1:])]
        out, start = [], 0
        for s in sizes:
            out.append(self.narrow(d, start, s))
            start += s
        return tuple(out)

    def flip(self, *dims):
        dims = _dims_arg(dims)
        nd = self.ndim
        ds = sorted({normalize_dim(d, nd) for d in dims}) if nd else []
        if len(ds) != len(dims):
            raise RuntimeError("dims has duplicates")
        v = self._view
        shape, strides, off = v.shape, list(v.strides), v.offset
        for d in ds:
            if shape[d] > 1:
                off += (shape[d] - 1) * strides[d]
            strides[d] = -strides[d]
        rev = View(shape, tuple(strides), off)
        flipped = apply(ops.view_op, self, rev, "FlipBackward0", lambda c, g: (g.flip(ds),))
        return flipped.clone()

    def fliplr(self):
        if self.ndim < 2:
            raise RuntimeError("Input must be >= 2-d.")
        return self.flip(1)

    def flipud(self):
        if self.ndim < 1:
            raise RuntimeError("Input must be >= 1-d.")
        return self.flip(0)

    def roll(self, shifts, dims=None):
        if dims is None:
            if isinstance(shifts, (tuple, list)) and len(shifts) != 1:
                raise RuntimeError("shifts and dimensions must align. shifts: "
                                   f"{len(shifts)}, dims:0")
            s = shifts[0] if isinstance(shifts, (tuple, list)) else shifts
            return self.flatten().roll(s, 0).reshape(self.shape)
        shifts = list(shifts) if isinstance(shifts, (tuple, list)) else [shifts]
        dims = list(dims) if isinstance(dims, (tuple, list)) else [dims]
        if len(shifts) != len(dims):
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               f"dims:{len(dims)}")
        out = self
        for s, d in zip(shifts, dims):
            d = normalize_dim(d, self.ndim)
            n = out.shape[d]
            if n == 0:
                continue
            s %= n
            if s:
                out = cat([out.narrow(d, n - s, s), out.narrow(d, 0, n - s)], d)
        return out if out is not self else self.clone()

    # ---- repeat ----------------------------------------------------------------------------
    def repeat(self, *sizes):
        sizes = _dims_arg(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError("Number of dimensions of repeat dims can not be smaller than "
                               "number of dimensions of tensor")
        shape = (1,) * (len(sizes) - self.ndim) + tuple(self.shape)
        x = self.reshape(shape)
        inter = []
        for r, s in zip(sizes, shape):
            inter += [1, s]
        x = x.reshape(inter)
        target = []
        for r, s in zip(sizes, shape):
            target += [int(r), s]
        out_shape = tuple(int(r) * s for r, s in zip(sizes, shape))
        return x.expand(target).contiguous().reshape(out_shape)

    def tile(self, *dims):
        dims = _dims_arg(dims)
        if len(dims) < self.ndim:
            dims = (1,) * (self.ndim - len(dims)) + tuple(dims)
        return self.repeat(dims)

    def repeat_interleave(self, repeats, dim=None, *, output_size=None):
        """Each element (or slice along `dim`) repeated `repeats` times (an int or a 1-D tensor,
        whose total is read back unless `output_size` is given)."""
        x = self
        if dim is None:
            x, dim = self.reshape(-1), 0
        d = normalize_dim(dim, max(x.ndim, 1))
        if x.ndim == 0:
            x = x.reshape(1)
        if _is_t(repeats) and repeats.numel() == 1 and repeats.ndim <= 1 and x.shape[d] != 1:
            repeats = int(repeats.item())
        if not _is_t(repeats):
            r = int(repeats)
            if r < 0:
                raise RuntimeError("repeats can not be negative")
            shape = x.shape
            y = x.unsqueeze(d + 1).expand(shape[:d + 1] + (r,) + shape[d + 1:])
            return y.reshape(shape[:d] + (shape[d] * r,) + shape[d + 1:])
        if repeats.ndim != 1 or repeats.shape[0] != x.shape[d]:
            raise RuntimeError("repeats must have the same size as input along dim")
        idx = _repeat_index(repeats, output_size)
        return x.index_select(d, idx)

    # ---- masks -------------------------------------------------------------------------------
    def _mask_check(self, mask, name):
        if not _is_t(mask) or mask.dtype is not bool_:
            raise RuntimeError(f"{name} only supports boolean masks, but got mask with dtype "
                               f"{getattr(mask, 'dtype', type(mask))}")

    def masked_fill(self, mask, value):
        """self with `value` (scalar or 0-d tensor) where the bool `mask` (broadcast) is True."""
        self._mask_check(mask, "masked_fill_")
        if _is_t(value) and value.ndim != 0:
            raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, but got "
                               f"tensor with {value.ndim} dimension(s).")
        if broadcast_shapes(self.shape, mask.shape) != tuple(self.shape):
            raise RuntimeError(f"The size of the mask ({list(mask.shape)}) must be broadcastable "
                               f"to the size of self ({list(self.shape)})")
        return apply(ops.masked_where, mask, value, self)

    def masked_fill_(self, mask, value):
        self._mask_check(mask, "masked_fill_")
        if _is_t(value):
            return self._inplace(lambda s, v: s.masked_fill(mask, v), value)
        return self._inplace(lambda s: s.masked_fill(mask, value))

    def masked_select(self, mask):
        self._mask_check(mask, "masked_select")
        shape = broadcast_shapes(self.shape, mask.shape)
        x = self.expand(shape) if self.shape != shape else self
        pos = nonzero_flat(mask.expand(shape) if mask.shape != shape else mask)
        return x.reshape(-1).take(pos) if x.ndim else x.reshape(1).take(pos)

    def masked_scatter(self, mask, source):
        self._mask_check(mask, "masked_scatter")
        shape = broadcast_shapes(self.shape, mask.shape)
        pos = nonzero_flat(mask.expand(shape))
        n = pos.shape[0]
        if source.numel() < n:
            raise RuntimeError("masked_scatter: expected source to have at least as many "
                               "elements as ones in mask")
        vals = source.reshape(-1).narrow(0, 0, n)
        base = self.expand(shape).reshape(-1) if self.shape != shape else self.reshape(-1)
        m = IndexMap(base.shape, (n,), [], [(0, pos)])
        return put_map(base, m, vals, False).reshape(shape)

    def nonzero(self, *, as_tuple=False):
        """Indices of the nonzero elements, (count, ndim) int64 in row-major order, or a tuple of
        1-D index tensors. The count is the one value read back from the device."""
        mask = self if self.ndim else self.reshape(1)
        coords = nonzero_coords(mask)
        if as_tuple:
            return tuple(coords)
        if self.ndim == 0:
            n = coords[0].shape[0]
            return self._plain._empty((n, 0), int64, self.device)
        return stack(coords, 1) if coords else self._plain._empty((0, 0), int64,
                                                                   self.device)

    def argwhere(self):
        return self.nonzero()

    # ---- triangles and diagonals ---------------------------------------------------------------
    def _tri(self, diagonal, lower):
        if self.ndim < 2:
            raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least "
                               "2 dimensions")
        r, c = self.shape[-2], self.shape[-1]
        rows = factory.arange(self._plain, r, device=self.device).reshape(r, 1)
        cols = factory.arange(self._plain, c, device=self.device).reshape(1, c)
        keep = (cols - rows <= diagonal) if lower else (cols - rows >= diagonal)
        return apply(ops.masked_where, keep.logical_not(), 0, self,
                                "TrilBackward0" if lower else "TriuBackward0")

    def tril(self, diagonal=0):
        return self._tri(diagonal, True)

    def triu(self, diagonal=0):
        return self._tri(diagonal, False)

    def tril_(self, diagonal=0):
        return self._inplace(lambda s: s.tril(diagonal))

    def triu_(self, diagonal=0):
        return self._inplace(lambda s: s.triu(diagonal))

    def diagonal(self, offset=0, dim1=0, dim2=1):
        """The diagonal of dims dim1, dim2 as a view, appended as the last dim (offset > 0: above
        the main diagonal)."""
        nd = self.ndim
        d1, d2 = normalize_dim(dim1, nd), normalize_dim(dim2, nd)
        if d1 == d2:
            raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
        return self._view_fn(lambda v: diagonal_view(v, offset, d1, d2), "DiagonalBackward0")

    def diag(self, diagonal=0):
        if self.ndim == 1:
            n = self.shape[0] + abs(diagonal)
            return apply(ops.scatter_view, self, (n, n), lambda v: diagonal_view(v, diagonal, 0, 1))
        if self.ndim == 2:
            return self.diagonal(diagonal, 0, 1).clone()
        raise RuntimeError("diag(): Supports 1D or 2D tensors. Got " f"{self.ndim}D")

    def diag_embed(self, offset=0, dim1=-2, dim2=-1):
        nd = self.ndim + 1
        d1, d2 = normalize_dim(dim1, nd), normalize_dim(dim2, nd)
        if d1 == d2:
            raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
        n = self.shape[-1] + abs(offset) if self.ndim else 1 + abs(offset)
        x = self if self.ndim else self.reshape(1)
        lead = list(x.shape[:-1])
        shape = []
        for i in range(nd):
            shape.append(n if i in (d1, d2) else lead.pop(0))
        return apply(ops.scatter_view, x, tuple(shape), lambda v: diagonal_view(v, offset, d1, d2))

def _value_tensor(x, values):
    if _is_t(values) or isinstance(values, (int, float, bool)):
        return values
    return factory.from_host(x._plain, np.asarray(values), x.dtype, x.device)


def _repeat_index(repeats, output_size=None):
    """repeat_interleave's index for tensor repeats: i repeated repeats[i] times, built on the
    device as count(cumsum <= j); only the total is read back (unless output_size is given)."""
    r = repeats.to(int64)
    n = r.shape[0]

    def arange(k):
        return factory.arange(r._plain, k, device=r.device)
    tri = (arange(n).reshape(n, 1) >= arange(n)).to(int64)
    cum = (tri @ r.reshape(n, 1)).reshape(n)                      # inclusive cumsum
    total = int(output_size) if output_size is not None else (int(cum[-1].item()) if n else 0)
    j = arange(total).reshape(total, 1)
    return (cum.reshape(1, n) <= j).to(int64).sum(1)


# ---- functions ---------------------------------------------------------------------------------
def cat(tensors, dim=0, *, out=None):
    """Concatenate tensors along an existing dim (dtypes promote; 1-D empty tensors are
    skipped, as in PyTorch)."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    for t in tensors:
        if not _is_t(t):
            raise TypeError(f"expected Tensor as element in argument 0, but got "
                            f"{type(t).__name__}")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be "
                               "concatenated")
    used = [(i, t) for i, t in enumerate(tensors) if not (t.ndim == 1 and t.shape[0] == 0)]
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = promote(dtype, t.dtype)
    device = ops._check_devices(tensors)
    T = tensors[0]._plain
    if not used:
        return T._empty((0,), dtype, device)
    ref = used[0][1]
    d = normalize_dim(dim, ref.ndim)
    for i, t in used:
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} "
                               f"and {t.ndim}")
        for k in range(ref.ndim):
            if k != d and t.shape[k] != ref.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. "
                                   f"Expected size {ref.shape[k]} but got size {t.shape[k]} "
                                   f"for tensor number {i} in the list.")
    total = sum(t.shape[d] for _, t in used)
    shape = ref.shape[:d] + (total,) + ref.shape[d + 1:]
    return apply(_cat, *tensors, used=[i for i, _ in used], d=d, shape=shape, dtype=dtype,
                 device=device, out=out)


def _cat(ctx, *tensors, used, d, shape, dtype, device, out):
    """The tensors at positions `used` copied one after another along dim d."""
    T = tensors[0]._plain
    res = T._empty(shape, dtype, device) if out is None else out
    spans, start = [], 0
    for i in used:
        n = tensors[i].shape[d]
        target = T._make(res._buf, res._view.slice(d, start, start + n, 1), dtype)
        ops.copy_into(target, tensors[i].detach())
        spans.append((i, start, n))
        start += n

    def backward(c, g):
        grads = [None] * len(tensors)
        for i, s, n in spans:
            if c.needs_input_grad[i]:
                grads[i] = g.narrow(d, s, n)
        return tuple(grads)
    return res, "CatBackward0", backward


def stack(tensors, dim=0, *, out=None):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at "
                               f"entry {i}")
    d = normalize_dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], d, out=out)


def hstack(tensors):
    tensors = [t.reshape(1) if t.ndim == 0 else t for t in tensors]
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    tensors = [t.reshape(1, -1) if t.ndim < 2 else t for t in tensors]
    return cat(tensors, 0)


def dstack(tensors):
    out = []
    for t in tensors:
        if t.ndim == 0:
            t = t.reshape(1, 1, 1)
        elif t.ndim == 1:
            t = t.reshape(1, -1, 1)
        elif t.ndim == 2:
            t = t.unsqueeze(-1)
        out.append(t)
    return cat(out, 2)


def check_pad_size(mode, n, lo, hi, dim, shape):
    """PyTorch's errors for reflect/circular padding (lo, hi) too wide for a dim of size n."""
    if mode == "reflect" and (lo >= n or hi >= n):
        raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding "
                           f"input dimension, but got: padding ({lo}, {hi}) at dimension {dim} "
                           f"of input {list(shape)}")
    if mode == "circular" and (lo > n or hi > n):
        raise RuntimeError("Padding value causes wrapping around more than once.")


def _pad_index(x, n, lo, hi, mode):
    """Source positions along one dim for positions -lo .. n + hi - 1, computed on x's
    device."""
    idx = factory.arange(x._plain, -lo, n + hi, device=x.device)
    if mode == "reflect":
        period = 2 * (n - 1)
        if not period:
            return idx * 0
        idx = idx.abs().remainder(period)
        return (period - idx).where(idx >= n, idx)
    if mode == "replicate":
        return idx.clamp(0, n - 1)
    return idx.remainder(n)


def pad(input, pad, mode="constant", value=None):
    """PyTorch's F.pad: `pad` lists (left, right) amounts from the last dim backwards; negative
    amounts crop. Modes: 'constant' (with `value`), 'reflect', 'replicate', 'circular'."""
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    k = len(pad) // 2
    if k > input.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the input "
                           "dimension but got padding length " f"{len(pad)} and input of "
                           f"dimension {input.ndim}")
    if mode != "constant" and value not in (None, 0):
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument")
    pads = [(input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(k)]
    if mode == "constant":
        x = input
        for d, lo, hi in pads:
            if lo < 0:
                x = x.narrow(d, -lo, x.shape[d] + lo)
            if hi < 0:
                x = x.narrow(d, 0, x.shape[d] + hi)
        shape = list(input.shape)
        for d, lo, hi in pads:
            shape[d] += lo + hi
            if shape[d] < 0:
                raise RuntimeError(f"The input size {input.shape[d]}, plus negative padding "
                                   f"{lo} and {hi} resulted in a negative output size, which is "
                                   "invalid. Check dimension " f"{d} of your input.")
        region = {d: (max(lo, 0), x.shape[d]) for d, lo, hi in pads}
        return apply(_pad_constant, x, tuple(shape), region, 0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"padding mode {mode!r} is not supported")
    if input.ndim not in (k + 1, k + 2):
        # PyTorch pads 1, 2 or 3 trailing dims of a (batched) signal and nothing else
        raise NotImplementedError("Only 2D, 3D, 4D, 5D padding with non-constant padding are "
                                  "supported for now")
    x = input
    for d, lo, hi in pads:
        n = x.shape[d]
        check_pad_size(mode, n, lo, hi, d, input.shape)
        if n == 0:
            raise RuntimeError(f"Expected a non-empty dimension {d} for {mode} padding")
        m, _ = _select_map(x, d, _pad_index(x, n, lo, hi, mode), trusted=True)
        x = gather_map(x, m)
    return x


def _pad_constant(ctx, x, shape, region, value):
    """x placed in a new tensor of `shape` filled with value, at the start offsets of
    `region` ({dim: (start, size)})."""
    res = x._plain._full(shape, value, x.dtype, x.device)

    def fn(v):
        for d, (s, n) in region.items():
            v = v.slice(d, s, s + n, 1)
        return v
    ops.copy_into(x._plain._make(res._buf, fn(res._view), res.dtype), x.detach())
    crop = tuple(slice(region[d][0], region[d][0] + region[d][1]) if d in region
                 else slice(None) for d in range(res.ndim))
    return res, "ConstantPadNdBackward0", lambda c, g: (g[crop],)


def one_hot(tensor, num_classes=-1):
    """Classes as int64 one-hot vectors along a new last dim (num_classes=-1: max + 1, which
    reads one value back)."""
    if tensor.dtype is not int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    classes = factory.arange(tensor._plain, num_classes, device=tensor.device)
    return ops.cast(tensor.unsqueeze(-1) == classes, int64)


def nonzero(input, *, as_tuple=False):
    return input.nonzero(as_tuple=as_tuple)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    if repeats is None:
        return _repeat_index(input, output_size)
    return input.repeat_interleave(repeats, dim, output_size=output_size)
