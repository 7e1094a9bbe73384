"""PyTorch's long-tail Tensor methods: multinomial, searchsorted/bucketize, scatter_reduce,
cummax/cummin/logcumsumexp, unfold (a view), view(dtype) and movedim, each on the device."""
from __future__ import annotations

import functools
import math
from collections import namedtuple

from .. import autograd, ops
from ..dtypes import float32, float64, int64, to_dtype, torch_name
from ..view import View, normalize_dim
from . import factory
from .advanced import _values, gather_map, put_map
from .apply import apply
from .random import default_generator, fill_random
from .shape import _is_t

cummax_result = namedtuple("cummax", ["values", "indices"])
cummin_result = namedtuple("cummin", ["values", "indices"])

_REDUCE_MODES = {"sum": "add", "mean": "add", "prod": "multiply", "amax": "amax",
                 "amin": "amin"}
# dtypes whose C type the index scans read directly; others scan a float32 copy
_PLAIN_CTYPES = ("float", "double", "long", "int", "short", "char", "uchar")


# methods that take numpy's names as PyTorch's argument parser does: axis for dim, keepdims for
# keepdim (tensor.py wraps these, by name)
NUMPY_NAMED = ("sum", "nansum", "mean", "nanmean", "prod", "amax", "amin", "max", "min",
               "argmax", "argmin", "all", "any", "count_nonzero", "var", "std", "var_mean",
               "std_mean", "logsumexp", "softmax", "log_softmax", "cumsum", "cumprod", "cummax",
               "cummin", "logcumsumexp", "sort", "argsort", "topk", "kthvalue")


def numpy_names(fn):
    """fn accepting `axis=` for `dim=` and `keepdims=` for `keepdim=`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs:
            for alias, name in (("axis", "dim"), ("keepdims", "keepdim")):
                if alias in kwargs:
                    if name in kwargs:
                        raise TypeError(f"{fn.__name__}() got both '{alias}' and '{name}'")
                    kwargs[name] = kwargs.pop(alias)
        return fn(*args, **kwargs)
    return wrapper


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None,
                 sorter=None):
    """Indices where `input`'s values would be inserted into the sorted last-dim rows of
    `sorted_sequence` to keep them sorted (left: first position >= value; right: > value).

    Shape: sorted_sequence (..., N) with input (..., M), or a 1-D sequence and any input; the
    result has input's shape. A Python number input gives a 0-d result."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError("side and right can't be set to opposites, got side of left "
                               "while right was True")
        right = side == "right"
    seq = sorted_sequence
    if sorter is not None:
        seq = seq.gather(-1, sorter)
    scalar = not _is_t(input)
    vals = factory.from_host(seq._plain, input, seq.dtype, seq.device) if scalar else input
    if seq.ndim > 1:
        if vals.ndim != seq.ndim or tuple(vals.shape[:-1]) != tuple(seq.shape[:-1]):
            raise RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or "
                               "the first N-1 dimensions of boundaries tensor and input value "
                               "tensor must match, but we got boundaries tensor "
                               f"{list(seq.shape)} and input value tensor {list(vals.shape)}")
    elif seq.ndim == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or the "
                           "first N-1 dimensions of boundaries tensor and input value tensor "
                           "must match, but we got boundaries tensor [] and input value tensor "
                           f"{list(vals.shape)}")
    out = ops.searchsorted_rows(seq.detach(), vals.detach(), bool(right))
    return out.to(to_dtype("int32")) if out_int32 else out


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The bucket of each value of `input` given the 1-D sorted `boundaries` (right=False:
    boundaries[i-1] < x <= boundaries[i])."""
    if boundaries.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim("
                           f"{boundaries.ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


def _scatter_reduce(ctx, x, src, m, mode, include_self):
    """out = x with src folded in through the IndexMap m by `mode` (a forward for
    Tensor._apply); PyTorch's gradients for each mode."""
    T = x._plain
    out = ops.copy_into(T._empty(x.shape, x.dtype, x.device), x.detach())
    tm = m.trusted()
    view, index = m.layout(out._view)
    offs = ops.index_offsets(view, index, x.device, m.check)
    vals = _values(T, src, m, x.dtype, x.device)
    ops.scatter_sorted(out, offs, vals, _REDUCE_MODES[mode], include_self)
    hits = None
    if mode == "mean" or ctx is not None:
        hits = T._zeros(x.shape, x.dtype, x.device)
        ops.scatter_sorted(hits, offs, T._full(tuple(offs.shape), 1, x.dtype, x.device), "add")
    if mode == "mean":
        count = (hits + 1 if include_self else hits).clamp_min(1)
        out = out / count if x.dtype.is_floating else out.div(count, rounding_mode="floor")
    if ctx is None:
        return out, None, None
    xd, sd = x.detach(), src.detach()
    # without include_self, x reaches the result only where nothing was scattered (as itself)
    keep = None if include_self else (hits == 0)

    def backward(c, g):
        need = c.needs_input_grad
        gx = gs = None
        if need[0] and keep is not None:
            gx = g.where(keep, 0)
        if mode == "sum":
            gx = g if need[0] and keep is None else gx
            gs = gather_map(g, tm) if need[1] else None
        elif mode == "mean":
            n = (hits + 1 if include_self else hits).clamp_min(1)
            gx = g / n if need[0] and keep is None else gx
            gs = gather_map(g / n, tm) if need[1] else None
        elif mode in ("amax", "amin"):
            # the gradient is shared evenly between every element equal to the result
            self_w = (xd == out).to(g.dtype)
            if keep is not None:
                self_w = self_w.where(keep, 0)
            src_w = (sd == gather_map(out, tm)).to(g.dtype)
            ties = put_map(self_w, tm, src_w, True)
            gx = g * self_w / ties if need[0] and keep is None else gx
            gs = gather_map(g / ties, tm) * src_w if need[1] else None
        else:
            # products of the others: out / value where the value is nonzero; at a position's
            # only zero, the product of its nonzero values; 0 with two or more zeros
            zx = (xd == 0).to(g.dtype) if keep is None else T._zeros(x.shape, g.dtype, x.device)
            zeros = put_map(zx, tm, (sd == 0).to(g.dtype), True)
            base = xd.where(xd != 0, 1) if keep is None else T._full(x.shape, 1, x.dtype,
                                                                     x.device)
            nz_prod = apply(_scatter_reduce, base, sd.where(sd != 0, 1), tm, "prod", True)
            at_zero = (g * nz_prod).where(zeros == 1, 0)
            if need[0] and keep is None:
                gx = at_zero.where(xd == 0, g * out / xd.where(xd != 0, 1))
            if need[1]:
                gs = gather_map(at_zero, tm).where(sd == 0, gather_map(g * out, tm) /
                                                   sd.where(sd != 0, 1))
        return gx, gs
    return out, "ScatterReduceBackward0", backward


def _scatter_reduce_args(x, dim, index, src, reduce):
    if reduce not in _REDUCE_MODES:
        raise RuntimeError("reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce}")
    if not _is_t(src):
        raise TypeError("scatter_reduce(): argument 'src' must be Tensor, not "
                        f"{type(src).__name__}")
    return x._scatter_args(dim, index, src, None, "scatter_reduce")


class CompatMixin:
    """Tensor methods PyTorch scripts reach for beyond the core: sampling, reductions into
    indexed positions, running extremes and windows."""

    # ---- sampling ----------------------------------------------------------------------------
    def multinomial(self, num_samples, replacement=False, *, generator=None):
        """Indices drawn from the categorical distributions in the rows of `self` (non-negative
        weights, not necessarily normalized).

        With replacement each draw searches a Philox uniform in the row's cumulative sums;
        without, the row's categories race with exponential clocks (-log(1 - u) / p) and the
        `num_samples` earliest win, which is sequential sampling without replacement.
        Shape: (n,) -> (num_samples,); (rows, n) -> (rows, num_samples), int64.
        Example: ``clgrad.tensor([0.2, 0.8]).multinomial(4, replacement=True)``"""
        if self.ndim not in (1, 2):
            raise RuntimeError("prob_dist must be 1 or 2 dim")
        if not self.dtype.is_floating:
            raise RuntimeError("multinomial only supports floating-point dtypes for input, got: "
                               f"{torch_name(self.dtype).split('.')[-1].capitalize()}")
        k = int(num_samples)
        n = self.shape[-1]
        if k <= 0:
            raise RuntimeError("cannot sample n_sample <= 0 samples")
        if not replacement and k > n:
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                               "replacement")
        gen = generator or default_generator
        work = float64 if self.device.has_fp64 else float32
        p = self.detach().reshape(-1, n).to(work)
        rows = p.shape[0]
        if rows == 0:
            return self._plain._empty(tuple(self.shape[:-1]) + (k,), int64, self.device)
        # one read back for PyTorch's two argument errors
        bad, empty = _distribution_flags(p)
        if bad:
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        if empty:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if replacement or k == 1:
            # one draw without replacement is a draw with it: the single search, no race
            seed, offset = gen._take(rows * k)
            out = ops.multinomial_draw(p.cumsum(1).contiguous(), k, seed, offset)
        else:
            u = fill_random(self._plain._empty(p.shape, work, self.device), "uniform", 0.0,
                            1.0, gen)
            clock = (-u).log1p() / p
            # zero-weight categories come last, in index order (as PyTorch's do)
            clock = clock.where(p > 0, -math.inf)
            out = clock.topk(k, 1).indices
        return out.reshape(k) if self.ndim == 1 else out

    # ---- scatter with a reduction ------------------------------------------------------------
    def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
        """A copy of self where each src element is folded into the position index names along
        `dim` by `reduce` ('sum', 'prod', 'mean', 'amax', 'amin'); without include_self the
        original values at scattered positions take no part. Deterministic: duplicates fold in
        index order (a sort, no atomics)."""
        m, s = _scatter_reduce_args(self, dim, index, src, reduce)
        return apply(_scatter_reduce, self, s, m, reduce, bool(include_self))

    def scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
        _scatter_reduce_args(self, dim, index, src, reduce)
        return self._inplace(lambda s, v: s.scatter_reduce(dim, index, v, reduce,
                                                           include_self=include_self), src)

    def index_reduce(self, dim, index, source, reduce, *, include_self=True):
        """index_reduce along `dim` with the 1-D `index`: 'prod', 'mean', 'amax', 'amin' (as
        scatter_reduce over the slices)."""
        if reduce not in ("prod", "mean", "amax", "amin"):
            raise RuntimeError("index_reduce(): Expected reduce to be one of prod, mean, amax "
                               f"or amin but got {reduce}.")
        d = normalize_dim(dim, max(self.ndim, 1))
        if index.ndim != 1:
            raise IndexError("index_reduce_(): Index is supposed to be a vector")
        shape = [1] * source.ndim
        shape[d] = index.shape[0]
        full = index.reshape(shape).expand(source.shape)
        return self.scatter_reduce(d, full, source, reduce, include_self=include_self)

    def index_reduce_(self, dim, index, source, reduce, *, include_self=True):
        return self._inplace(lambda s, v: s.index_reduce(dim, index, v, reduce,
                                                         include_self=include_self), source)

    # ---- running extremes and log-sum-exp ----------------------------------------------------
    def _cum_extreme(self, dim, kind):
        x = self.detach()
        if x.dtype.ctype not in _PLAIN_CTYPES:
            x = x.to(float32)
        d = normalize_dim(dim, max(self.ndim, 1))
        vals, idx = ops.cum_extreme(x, d, kind)
        if autograd.needs_grad(self):
            # the gradient of a running extreme goes to the element it was taken from
            vals = self.gather(d, idx) if self.ndim else self.clone()
        elif vals.dtype is not self.dtype:
            vals = vals.to(self.dtype)
        res = cummax_result if kind == "max" else cummin_result
        return res(vals, idx)

    def cummax(self, dim):
        """(values, indices) of the running maximum along `dim`; ties take the later index and
        NaN propagates, as in PyTorch."""
        return self._cum_extreme(dim, "max")

    def cummin(self, dim):
        return self._cum_extreme(dim, "min")

    def logcumsumexp(self, dim):
        """log(cumsum(exp(self))) along `dim`, computed stably in one scan."""
        if not self.dtype.is_floating:
            raise RuntimeError('"logcumsumexp_out_cpu" not implemented for '
                               f"'{torch_name(self.dtype).split('.')[-1].capitalize()}'")
        return apply(_logcumsumexp, self, normalize_dim(dim, max(self.ndim, 1)), False)

    # ---- elementwise -------------------------------------------------------------------------
    def logaddexp(self, other):
        """log(exp(self) + exp(other)), without overflow."""
        return apply(ops.LOGADDEXP, self, other)

    def logaddexp2(self, other):
        """log2(2**self + 2**other), without overflow."""
        return apply(ops.LOGADDEXP2, self, other)

    def copysign(self, other):
        """|self| with the sign of other (signed zeros included)."""
        return apply(ops.COPYSIGN, self, other)

    # ---- windows and reinterpretation --------------------------------------------------------
    def unfold(self, dimension, size, step):
        """A view of every slice of length `size` along `dimension`, `step` apart, as a new last
        dim: (.., n, ..) -> (.., (n - size) // step + 1, .., size). No copy; the gradient sums
        overlapping windows back.
        Example: ``clgrad.arange(5.).unfold(0, 2, 1)`` has rows [0, 1], [1, 2], [2, 3], [3, 4]"""
        v = self._view
        d = normalize_dim(dimension, max(self.ndim, 1))
        n = v.shape[d] if self.ndim else 1
        size, step = int(size), int(step)
        if size > n:
            raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is "
                               f"{size}")
        if step <= 0:
            raise RuntimeError(f"step is {step} but must be > 0")
        if size < 0:
            raise RuntimeError(f"size is {size} but must be >= 0")
        if not self.ndim:
            new = View((size,), (1,), v.offset)
        else:
            windows = (n - size) // step + 1
            shape = list(v.shape)
            strides = list(v.strides)
            shape[d] = windows
            strides[d] = v.strides[d] * step
            new = View(tuple(shape) + (size,), tuple(strides) + (v.strides[d],), v.offset)
        in_shape = self.shape
        return apply(ops.view_op, self, new, "UnfoldBackward0",
                     lambda ctx, g: (_unfold_backward(g, in_shape, d, size, step),))

    def _view_dtype(self, dtype):
        """view(dtype): the same bytes read as another dtype (PyTorch's rules when the element
        size changes: the last dim must have stride 1 and is scaled)."""
        dt = to_dtype(dtype)
        old = self.dtype.itemsize
        new = dt.itemsize
        v = self._view
        if new != old:
            if self.ndim == 0:
                raise RuntimeError("self.dim() cannot be 0 to view "
                                   f"{torch_name(self.dtype)} as {torch_name(dt)} (different "
                                   "element sizes)")
            if v.strides[-1] != 1:
                raise RuntimeError(f"self.stride(-1) must be 1 to view {torch_name(self.dtype)} "
                                   f"as {torch_name(dt)} (different element sizes), but got "
                                   f"{v.strides[-1]}")
        if new < old:
            r = old // new
            v = View(v.shape[:-1] + (v.shape[-1] * r,), tuple(s * r for s in v.strides[:-1]) +
                     (1,), v.offset * r)
        elif new > old:
            r = new // old
            if v.shape[-1] % r:
                raise RuntimeError(f"self.size(-1) must be divisible by {r} to view "
                                   f"{torch_name(self.dtype)} as {torch_name(dt)} (different "
                                   f"element sizes), but got {v.shape[-1]}")
            if v.offset % r or any(s % r for s in v.strides[:-1]):
                raise RuntimeError(f"self.storage_offset() and every stride but the last must "
                                   f"be divisible by {r} to view {torch_name(self.dtype)} as "
                                   f"{torch_name(dt)} (different element sizes)")
            v = View(v.shape[:-1] + (v.shape[-1] // r,), tuple(s // r for s in v.strides[:-1]) +
                     (1,), v.offset // r)
        out = self._plain._make(self._buf, v, dt)
        out._base = self._base if self._base is not None else self
        return out

    def movedim(self, source, destination):
        """Dims at `source` moved to `destination`, the others keeping their order (a view)."""
        src = [source] if isinstance(source, int) else list(source)
        dst = [destination] if isinstance(destination, int) else list(destination)
        if len(src) != len(dst):
            raise RuntimeError("movedim: Invalid source or destination dims: source "
                               f"({src} dims) should contain the same number of dims as "
                               f"destination ({dst} dims)")
        nd = self.ndim
        src = [normalize_dim(s, max(nd, 1)) for s in src]
        dst = [normalize_dim(s, max(nd, 1)) for s in dst]
        if not nd:
            return self.view(())
        order = [None] * nd
        for s, t in zip(src, dst):
            order[t] = s
        rest = iter(i for i in range(nd) if i not in src)
        order = [o if o is not None else next(rest) for o in order]
        return self.permute(order)

    moveaxis = movedim


def _distribution_flags(p):
    """(any element negative or not finite, any row summing to <= 0) of the rows of p, in one
    read back."""
    bad = (p.isfinite().logical_not() | (p < 0)).any()
    empty = (p.sum(1) <= 0).any()
    host = int((bad.to(int64) + empty.to(int64) * 2).item())
    return bool(host & 1), bool(host & 2)


def _unfold_backward(g, in_shape, d, size, step):
    """The gradient of unfold: every window's values added back to the positions they came
    from (index_add along d, deterministic)."""
    if not len(in_shape):
        return g.sum(-1).reshape(())
    windows = g.shape[d]
    starts = factory.arange(g._plain, 0, windows * step, step, int64, g.device)
    taps = factory.arange(g._plain, 0, size, 1, int64, g.device)
    idx = (starts.reshape(windows, 1) + taps.reshape(1, size)).reshape(-1)
    moved = g.movedim(-1, d + 1)                     # (.., windows, size, ..)
    flat = moved.reshape(tuple(in_shape[:d]) + (windows * size,) + tuple(in_shape[d + 1:]))
    zeros = g._plain._zeros(tuple(in_shape), g.dtype, g.device)
    return zeros.index_add(d, idx, flat)


def _logcumsumexp(ctx, x, d, reverse):
    out = ops.logcumsumexp(x, d, reverse)
    if ctx is not None:
        ctx.save_for_backward(x, out)

    def backward(c, g):
        xs, y = c.saved_tensors
        # d out_i / d x_j = exp(x_j - out_i) for i at or after j: summed in log space, split by
        # the sign of g so every logarithm is of a non-negative number
        pos = g._apply(_logcumsumexp, g.clamp_min(0).log() - y, d, not reverse)
        neg = g._apply(_logcumsumexp, (-g).clamp_min(0).log() - y, d, not reverse)
        return ((xs + pos).exp() - (xs + neg).exp(),)
    return out, "LogcumsumexpBackward0", backward

