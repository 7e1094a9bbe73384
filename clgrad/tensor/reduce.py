"""Reduction Tensor methods: sum, mean, prod, max/min, arg*, var/std, norms, logsumexp, softmax,
scans, all/any."""
from __future__ import annotations

from collections import namedtuple

import math

from .. import ops
from ..dtypes import bool_, get_default_dtype, int64, to_dtype, uint8
from ..view import normalize_dim
from . import decomp, factory
from .apply import apply, autocast_policy

values_indices = namedtuple("return_types", ["values", "indices"])


def _dims(x, dim) -> tuple:
    if dim is None:
        return tuple(range(x.ndim))
    if isinstance(dim, (tuple, list)):
        dims = tuple(normalize_dim(d, x.ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"dim {dims} appears multiple times in the list of dims")
        return dims if dims or x.ndim == 0 else tuple(range(x.ndim))
    return (normalize_dim(dim, x.ndim),)


def _keep_shape(x, dims) -> tuple:
    return tuple(1 if d in dims else s for d, s in enumerate(x.shape))


def _expand_back(g, x, dims, keepdim):
    """A reduced gradient broadcast back over the input's shape."""
    if not keepdim and x.ndim:
        g = g.reshape(_keep_shape(x, dims))
    return g.expand(x.shape)


class ReduceMixin:
    """Reductions of Tensor; the kernels are ops.reduce."""

    def _reduce(self, kind, dim, keepdim, out_dtype, acc_dtype, backward=None, save=()):
        return apply(_reduce_fwd, self, kind, _dims(self, dim), keepdim, out_dtype, acc_dtype,
                     backward, save)

    @autocast_policy("fp32")     # autocast: reduce 16-bit inputs in float32
    def sum(self, dim=None, keepdim=False, *, dtype=None):
        x = self.to(to_dtype(dtype)) if dtype is not None else self
        out_dt = x.dtype if x.dtype.is_floating else int64
        shape = x.shape

        def backward(ctx, g):
            return (_expand_back(g, _Shape(shape), ctx.dims, ctx.keepdim),)
        return x._reduce("sum", dim, keepdim, out_dt, out_dt if x.dtype.name != "float16"
                         else x.dtype, backward)

    def nansum(self, dim=None, keepdim=False, *, dtype=None):
        return self.where(self == self, 0).sum(dim, keepdim, dtype=dtype)

    @autocast_policy("fp32")
    def mean(self, dim=None, keepdim=False, *, dtype=None):
        x = self.to(to_dtype(dtype)) if dtype is not None else self
        if not x.dtype.is_floating:
            raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either "
                               f"a floating point or complex dtype. Got: {ops.torch_name(x.dtype)}")
        shape = x.shape
        n = 1
        for d in _dims(x, dim):
            n *= shape[d] if x.ndim else 1

        def backward(ctx, g):
            return (_expand_back(g / n, _Shape(shape), ctx.dims, ctx.keepdim),)
        return x._reduce("mean", dim, keepdim, x.dtype, x.dtype, backward)

    @autocast_policy("fp32")
    def prod(self, dim=None, keepdim=False, *, dtype=None):
        x = self.to(to_dtype(dtype)) if dtype is not None else self
        out_dt = x.dtype if x.dtype.is_floating else int64

        def backward(ctx, g):
            inp, out = ctx.saved_tensors
            dims, kd = ctx.dims, ctx.keepdim
            # d prod / d x_i is the product of the others: out / x_i where no zero is in the row;
            # with exactly one zero only that element gets the product of the non-zeros
            g = _expand_back(g, inp, dims, kd)
            nonzero = inp != 0
            safe = inp.where(nonzero, 1)
            zeros = _expand_back(nonzero.logical_not().sum(dims, keepdim=True), inp, dims, True)
            others = _expand_back(safe.prod(dims, keepdim=True), inp, dims, True)
            one_zero = (g * others).where((zeros == 1) * nonzero.logical_not(), 0)
            return ((g * _expand_back(out, inp, dims, kd) / safe).where(zeros == 0, one_zero),)
        return x._reduce("prod", dim, keepdim, out_dt, out_dt, backward, save=True)

    def _check_nonempty(self, name, dim):
        """max/min/arg* have no identity: PyTorch refuses to reduce over a size-0 dim."""
        if self.numel() != 0:
            return
        if dim is None:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for "
                               "input.numel() == 0." + (" Specify the reduction dim with the "
                                                        "'dim' argument." if "arg" not in name
                                                        else ""))
        for d in _dims(self, dim):
            if self.ndim and self.shape[d] == 0:
                raise RuntimeError(f"{name}(): Expected reduction dim {d} to have non-zero size.")

    def _minmax_all(self, kind, dim, keepdim, name=None):
        self._check_nonempty(name or kind, dim)

        def backward(ctx, g):
            inp, out = ctx.saved_tensors
            # ties share the gradient evenly, as PyTorch's amax/amin do
            ok = _expand_back(out, inp, ctx.dims, ctx.keepdim)
            mask = (inp == ok).to(g.dtype)
            count = mask.sum(ctx.dims if inp.ndim else None, keepdim=True)
            return (_expand_back(g, inp, ctx.dims, ctx.keepdim) * mask / count,)
        return self._reduce(kind, dim, keepdim, self.dtype, self.dtype, backward, save=True)

    def amax(self, dim=(), keepdim=False):
        return self._minmax_all("amax", None if dim == () else dim, keepdim)

    def amin(self, dim=(), keepdim=False):
        return self._minmax_all("amin", None if dim == () else dim, keepdim)

    def _minmax(self, kind, dim, keepdim):
        if dim is None:
            return self._minmax_all("a" + kind, None, False, kind)
        if hasattr(dim, "_view"):
            return apply(ops.MAXIMUM if kind == "max" else ops.MINIMUM, self, dim)
        d = normalize_dim(dim, self.ndim)
        self._check_nonempty(kind, d)
        return values_indices(*apply(_minmax_dim, self, kind, d, keepdim))

    def max(self, dim=None, keepdim=False):
        return self._minmax("max", dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return self._minmax("min", dim, keepdim)

    def _arg(self, kind, dim, keepdim):
        self._check_nonempty(kind, dim)
        if dim is None:
            flat = self.reshape(-1)
            out = ops.reduce(kind, flat, (0,), False, int64, self.dtype)
            return out.reshape((1,) * self.ndim) if keepdim else out
        return ops.reduce(kind, self, (normalize_dim(dim, self.ndim),), keepdim, int64,
                          self.dtype)

    def argmax(self, dim=None, keepdim=False):
        return self._arg("argmax", dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return self._arg("argmin", dim, keepdim)

    def all(self, dim=None, keepdim=False):
        out_dt = uint8 if self.dtype is uint8 else bool_
        return ops.reduce("all", self, _dims(self, dim), keepdim, out_dt, self.dtype)

    def any(self, dim=None, keepdim=False):
        out_dt = uint8 if self.dtype is uint8 else bool_
        return ops.reduce("any", self, _dims(self, dim), keepdim, out_dt, self.dtype)

    def count_nonzero(self, dim=None):
        return (self != 0).sum(dim)

    def nanmean(self, dim=None, keepdim=False, *, dtype=None):
        x = self.to(to_dtype(dtype)) if dtype is not None else self
        if not x.dtype.is_floating:
            raise RuntimeError("nanmean(): expected input to have floating point or complex "
                               f"dtype but got {ops.torch_name(x.dtype)}")
        keep = x == x
        return x.nansum(dim, keepdim) / keep.sum(dim, keepdim)

    # ---- moments ----------------------------------------------------------------------------
    def _moments(self, name, dim, unbiased, keepdim, correction):
        if isinstance(dim, bool):
            dim, unbiased = None, dim
        if unbiased is not None and correction is not None:
            raise RuntimeError(f"{name}: can't specify both unbiased and correction")
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        if not self.dtype.is_floating:
            raise RuntimeError("std and var only support floating point and complex dtypes")
        dims = _dims(self, dim)
        n = math.prod(self.shape[d] for d in dims) if self.ndim else 1
        mean = self.mean(dims, keepdim=True)
        d = self - mean
        # two passes (mean, then squared deviations) keep var accurate for large means
        var = (d * d).sum(dims, keepdim) / max(0, n - correction)
        return var, (mean if keepdim or not self.ndim else mean.squeeze(dims))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return self._moments("var", dim, unbiased, keepdim, correction)[0]

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return self._moments("std", dim, unbiased, keepdim, correction)[0].sqrt()

    def var_mean(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return self._moments("var_mean", dim, unbiased, keepdim, correction)

    def std_mean(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        var, mean = self._moments("std_mean", dim, unbiased, keepdim, correction)
        return var.sqrt(), mean

    # ---- log-sum-exp, softmax, scans --------------------------------------------------------
    def logsumexp(self, dim=None, keepdim=False):
        x = self if self.dtype.is_floating else self.to(get_default_dtype())
        dims = _dims(x, dim)
        if x.numel() == 0 or not x.ndim:
            return x.exp().sum(dims, keepdim).log()
        # shift by the (detached) max so exp cannot overflow; infinite maxima shift by 0
        m = x.detach().amax(dims, keepdim=True)
        m = m.where(m.isfinite(), 0)
        out = (x - m).exp().sum(dims, keepdim=True).log() + m
        return out if keepdim else out.squeeze(dims)

    def softmax(self, dim=None, dtype=None):
        x = self if dtype is None else self.to(to_dtype(dtype))
        return apply(ops.softmax, x, _implicit_dim(self, dim), False)

    def log_softmax(self, dim=None, dtype=None):
        x = self if dtype is None else self.to(to_dtype(dtype))
        return apply(ops.softmax, x, _implicit_dim(self, dim), True)

    def cumsum(self, dim, *, dtype=None):
        x = self if dtype is None else self.to(to_dtype(dtype))
        return apply(ops.cumsum, x, dim)

    def cumprod(self, dim, *, dtype=None):
        x = self if dtype is None else self.to(to_dtype(dtype))
        return apply(ops.cumprod, x, dim)

    # ---- norms ------------------------------------------------------------------------------
    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        if p is None or p == "fro":
            if dim is not None and not isinstance(dim, int) and len(dim) > 2:
                raise RuntimeError(f"The Frobenius norm is only defined over 1 or 2 dims, "
                                   f"got {len(dim)}")
            return self._vector_norm(2, dim, keepdim, dtype)
        if p == "nuc":
            dims = (-2, -1) if dim is None else tuple(dim) if not isinstance(dim, int) else (dim,)
            if len(dims) != 2 or (dim is None and self.ndim != 2):
                got = range(self.ndim) if dim is None else dims
                raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got "
                                   f"{' '.join(map(str, got))}")
            x = self if dtype is None else self.to(to_dtype(dtype))
            return decomp.singular_norm(x, "nuc", dims, keepdim)
        if isinstance(p, str):
            raise RuntimeError(f"norm: unsupported p={p!r}")
        return self._vector_norm(p, dim, keepdim, dtype)

    def _vector_norm(self, ord=2, dim=None, keepdim=False, dtype=None):
        """linalg.vector_norm: sum(|x|^ord)^(1/ord) over dim, with inf/-inf/0 as max/min/count."""
        if isinstance(ord, str):
            raise RuntimeError(f"linalg.vector_norm: ord must be a number, got {ord!r}")
        x = self.to(to_dtype(dtype)) if dtype is not None else self
        if not x.dtype.is_floating:
            raise RuntimeError("linalg.vector_norm: Expected a floating point or complex tensor "
                               f"as input. Got {ops.torch_name(x.dtype)}")
        dims = _dims(x, dim)
        ord = float(ord)
        if ord in (math.inf, -math.inf):
            if x.numel() == 0:
                raise RuntimeError("linalg.vector_norm cannot compute the "
                                   f"{'inf' if ord > 0 else '-inf'} norm on an empty tensor "
                                   "because the operation does not have an identity")
            return x.abs().amax(dims, keepdim) if ord > 0 else x.abs().amin(dims, keepdim)
        if ord == 0:
            # the count of non-zeros; x * 0 keeps it in the graph with PyTorch's zero gradient
            return (x * 0).sum(dims, keepdim) + (x != 0).sum(dims, keepdim).to(x.dtype)
        if ord == 1:
            return x.abs().sum(dims, keepdim)
        return apply(ops.pnorm, x, ord, dims, keepdim)


# grad_fn names of the reductions by kind, formatted once
_REDUCE_NAMES: dict = {}


def _reduce_fwd(ctx, x, kind, dims, keepdim, out_dtype, acc_dtype, backward, save):
    """A reduction as a forward for Tensor._apply; the caller's backward reads ctx.dims."""
    out = ops.reduce(kind, x, dims, keepdim, out_dtype, acc_dtype)
    if ctx is not None:
        if save:
            ctx.save_for_backward(x, out)
        ctx.dims, ctx.keepdim = dims, keepdim
    name = _REDUCE_NAMES.get(kind)
    if name is None:
        name = _REDUCE_NAMES[kind] = kind.capitalize() + "Backward0"
    return out, name, backward


def _implicit_dim(x, dim):
    # PyTorch's legacy rule for softmax without dim
    if dim is None:
        return 0 if x.ndim in (0, 1, 3) else 1
    return dim


def softmax(input, dim=None, dtype=None):
    return input.softmax(dim, dtype)


def log_softmax(input, dim=None, dtype=None):
    return input.log_softmax(dim, dtype)


def softmin(input, dim=None, dtype=None):
    """softmax(-input): the nn.functional helper wraps this."""
    x = input.to(to_dtype(dtype)) if dtype is not None else input
    return (-x).softmax(dim)


class _Shape:
    """Stands in for a tensor in _expand_back when only its shape is kept."""

    def __init__(self, shape):
        self.shape = shape
        self.ndim = len(shape)


def _minmax_dim(ctx, x, kind, d, keepdim):
    """max/min along dim d: (values, int64 indices); the gradient goes to the picked element."""
    idx = x._arg("arg" + kind, d, keepdim)
    values = x._minmax_all("a" + kind, d, keepdim).detach()
    shape = x.shape
    if ctx is not None:
        ctx.save_for_backward(idx)
        ctx.materialize_grads = False     # the indices get no gradient: no zeros for them

    def backward(c, g, _):
        i, = c.saved_tensors
        return (_index_grad(g, i, shape, d, keepdim),)
    return (values, idx), kind.capitalize() + "Backward0", backward


def _index_grad(g, idx, shape, d, keepdim):
    """Gradient of picking `idx` along dim d: g at the picked positions, zero elsewhere."""
    if not shape:
        return g.reshape(())
    if not keepdim:
        g = g.unsqueeze(d)
        idx = idx.unsqueeze(d)
    pos = factory.arange(g._plain, shape[d], device=g.device)
    pos = pos.reshape((shape[d],) + (1,) * (len(shape) - d - 1))
    return g * (pos == idx)
