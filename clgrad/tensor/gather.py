"""Gather, scatter, index_* and sort methods of Tensor: index kernels through IndexMaps."""
from __future__ import annotations

import math

from .. import autograd, ops
from ..dtypes import int64
from ..runtime import faults
from ..runtime.errors import DeviceIndexError
from ..view import broadcast_shapes, normalize_dim
from .advanced import IndexMap, _advanced_map, gather_map, index_put_map_, put_map
from .shape import (_check_index_dtype, _gather_map, _is_t, _restore, _select_map,
                    _value_tensor, kthvalue_result, sort_result, topk_result)


class GatherMixin:
    # ---- gather / scatter --------------------------------------------------------------------
    def gather(self, dim, index, *, sparse_grad=False):
        """Values along `dim` at `index`: out[i][j][k] = self[i][index[i][j][k]][k] (dim=1).

        Shape: out has index's shape; index.size(d) <= self.size(d) for d != dim. An index
        outside [0, self.size(dim)) (negative ones too, as in PyTorch) raises IndexError (also a
        RuntimeError) at the next sync (runtime/faults.py).
        Example: ``x.gather(1, clgrad.tensor([[0, 0], [1, 0]]))``"""
        m, _ = _gather_map(self, dim, index, "gather")
        return gather_map(self, m)

    def take_along_dim(self, indices, dim=None):
        if dim is None:
            return self.reshape(-1).gather(0, indices.reshape(-1))
        d = normalize_dim(dim, self.ndim)
        if indices.ndim != self.ndim:
            raise RuntimeError("torch.take_along_dim(): input and indices should have the same "
                               "number of dimensions, but got " f"{self.ndim} dimensions for "
                               f"input, and {indices.ndim} dimensions for indices")
        xs = list(self.shape)
        ish = list(indices.shape)
        xs[d] = ish[d] = 1
        b = broadcast_shapes(tuple(xs), tuple(ish))
        xt = self.expand(b[:d] + (self.shape[d],) + b[d + 1:])
        it = indices.expand(b[:d] + (indices.shape[d],) + b[d + 1:])
        return xt.gather(d, it)

    def take(self, index):
        _check_index_dtype(index, "take")
        flat = self.reshape(-1)
        check = faults.site("take", DeviceIndexError,
                            "out of range: tried to access index {value} on a tensor of {limit} "
                            "elements.")
        m = IndexMap(flat.shape, index.shape, [], [(0, index)], None, check)
        return gather_map(flat, m)

    def index_select(self, dim, index):
        """The slices of `self` along `dim` at the positions of the 1-D `index` (a copy)."""
        _check_index_dtype(index, "index_select")
        m, _ = _select_map(self, dim, index)
        out = gather_map(self, m)
        return out.reshape(index.shape) if self.ndim == 0 else out

    def _scatter_args(self, dim, index, src, value, name):
        m, d = _gather_map(self, dim, index, name)
        if src is None:
            return m, value
        if not _is_t(src):
            return m, src
        if src.ndim != index.ndim and not (src.ndim <= 1 and index.ndim <= 1):
            raise RuntimeError("Index tensor must have the same number of dimensions as src "
                               "tensor")
        for i in range(index.ndim):
            if index.shape[i] > src.shape[i]:
                raise RuntimeError(f"Size does not match at dimension {i} expected index "
                                   f"{list(index.shape)} to be smaller than src "
                                   f"{list(src.shape)} apart from dimension {d}")
        s = src
        for i in range(index.ndim):
            if s.shape[i] != index.shape[i]:
                s = s.narrow(i, 0, index.shape[i])
        if src.dtype is not self.dtype:
            raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype")
        return m, s.reshape(m.out_shape) if s.ndim != len(m.out_shape) else s

    def scatter(self, dim, index, src=None, value=None, *, reduce=None):
        """A copy of self with src (or the scalar `value`) written at `index` along `dim`, the
        inverse of gather; `reduce` 'add' or 'multiply' combines instead. Duplicate indices fold
        in index order, deterministically (set: the last one wins)."""
        m, v = self._scatter_args(dim, index, src, value, "scatter")
        mode = {None: "set", "add": "add", "multiply": "multiply"}.get(reduce)
        if mode is None:
            raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
        return put_map(self, m, v, mode == "add", mode)

    def scatter_(self, dim, index, src=None, value=None, *, reduce=None):
        m, v = self._scatter_args(dim, index, src, value, "scatter")
        mode = {None: "set", "add": "add", "multiply": "multiply"}.get(reduce)
        if mode is None:
            raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
        return index_put_map_(self, m, v, mode == "add", mode)

    def scatter_add(self, dim, index, src):
        m, v = self._scatter_args(dim, index, src, None, "scatter_add")
        return put_map(self, m, v, True)

    def scatter_add_(self, dim, index, src):
        m, v = self._scatter_args(dim, index, src, None, "scatter_add")
        return index_put_map_(self, m, v, True)

    def _index_args(self, dim, index, source, name):
        _check_index_dtype(index, name)
        m, d = _select_map(self, dim, index)
        if _is_t(source):
            want = tuple(m.out_shape)
            if self.ndim == 0:
                want = tuple(index.shape) if index.ndim else ()
            if tuple(source.shape) != want and source.numel() != math.prod(m.out_shape):
                raise RuntimeError(f"{name}(): Source/destination tensor must have same slice "
                                   f"shapes. Destination slice shape: {list(want)} and source "
                                   f"slice shape: {list(source.shape)}")
            source = _restore(source, m.out_shape)
        return m, source

    def index_add(self, dim, index, source, *, alpha=1):
        m, s = self._index_args(dim, index, source, "index_add")
        return put_map(self, m, s * alpha if alpha != 1 else s, True)

    def index_add_(self, dim, index, source, *, alpha=1):
        m, s = self._index_args(dim, index, source, "index_add")
        return index_put_map_(self, m, s * alpha if alpha != 1 else s, True)

    def index_copy(self, dim, index, source):
        m, s = self._index_args(dim, index, source, "index_copy")
        return put_map(self, m, s, False)

    def index_copy_(self, dim, index, source):
        m, s = self._index_args(dim, index, source, "index_copy")
        return index_put_map_(self, m, s, False)

    def index_fill(self, dim, index, value):
        m, _ = self._index_args(dim, index, None, "index_fill")
        if _is_t(value):
            value = value.reshape(())
        return put_map(self, m, value, False)

    def index_fill_(self, dim, index, value):
        m, _ = self._index_args(dim, index, None, "index_fill")
        if _is_t(value):
            value = value.reshape(())
        return index_put_map_(self, m, value, False)

    def index_put(self, indices, values, accumulate=False):
        return put_map(self, _advanced_map(self, tuple(indices)), _value_tensor(self, values),
                       accumulate)

    def index_put_(self, indices, values, accumulate=False):
        return index_put_map_(self, _advanced_map(self, tuple(indices)),
                              _value_tensor(self, values), accumulate)


    # ---- sort --------------------------------------------------------------------------------
    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) sorted along `dim` on the device; always stable (ties keep their
        order, also when descending), NaN sorts as the greatest value, as in PyTorch."""
        if self.ndim == 0:
            return sort_result(self.clone(), self._plain._zeros((), int64, self.device))
        d = normalize_dim(dim, self.ndim)
        n = self.shape[d]
        xt = self.transpose(d, -1) if d != self.ndim - 1 else self
        vals, pos = ops.sort_rows(xt.detach(), bool(descending))
        idx = pos._plain._make(pos._buf, pos._view.slice(pos.ndim - 1, 0, n, 1), int64)
        if d != self.ndim - 1:
            idx = idx.transpose(d, -1)
        idx = idx.contiguous()
        if autograd.needs_grad(self):
            values = self.gather(d, idx)
        else:
            v = vals._plain._make(vals._buf, vals._view.slice(vals.ndim - 1, 0, n, 1), vals.dtype)
            if d != self.ndim - 1:
                v = v.transpose(d, -1)
            values = v.to(self.dtype).contiguous() if v.dtype is not self.dtype else v.contiguous()
        return sort_result(values, idx)

    def argsort(self, dim=-1, descending=False, stable=False):
        return self.sort(dim, descending, stable).indices

    def msort(self):
        return self.sort(0).values

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The k largest (or smallest) elements along `dim` with their indices, in sorted order."""
        d = normalize_dim(dim, max(self.ndim, 1))
        n = self.shape[d] if self.ndim else 1
        if not 0 <= k <= n:
            raise RuntimeError("selected index k out of range")
        v, i = self.sort(d, descending=largest)
        if self.ndim == 0:
            return topk_result(v, i)
        return topk_result(v.narrow(d, 0, k), i.narrow(d, 0, k).contiguous())

    def kthvalue(self, k, dim=-1, keepdim=False):
        d = normalize_dim(dim, max(self.ndim, 1))
        n = self.shape[d] if self.ndim else 1
        if not 1 <= k <= n:
            raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
        v, i = self.sort(d)
        if self.ndim == 0:
            return kthvalue_result(v, i)
        v, i = v.narrow(d, k - 1, 1), i.narrow(d, k - 1, 1)
        if not keepdim:
            v, i = v.squeeze(d), i.squeeze(d)
        return kthvalue_result(v, i.contiguous())
