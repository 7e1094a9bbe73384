"""Movement methods of Tensor: views over the same buffer, no kernel."""
from __future__ import annotations

import math

from .. import ops
from ..array import Size
from ..dtypes import DType
from ..view import View, normalize_dim
from .apply import apply
from .advanced import getitem, setitem


class MovementMixin:
    """Movement ops: views that share the buffer and launch no kernel (contiguous() and reshape
    of a non-viewable layout copy)."""

    # ---- movement (views: no kernel) ---------------------------------------------------------
    def view(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (DType, str)):
            return self._view_dtype(shape[0])
        shape = self._infer_shape(shape)
        v = self._view.reshape(shape)
        if v is None:
            raise RuntimeError("view size is not compatible with input tensor's size and stride "
                               "(at least one dimension spans across two contiguous subspaces). "
                               "Use .reshape(...) instead.")
        return self._reshaped(v)

    def _reshaped(self, v: View) -> "Tensor":
        in_shape = self.shape
        return apply(ops.view_op, self, v, "ViewBackward0",
                           lambda ctx, g: (g.reshape(in_shape),))

    def _infer_shape(self, shape) -> tuple:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
            shape = tuple(shape[0])
        shape = [int(s) for s in shape]
        if shape.count(-1) > 1:
            raise RuntimeError("only one dimension can be inferred")
        if -1 in shape:
            rest = math.prod(s for s in shape if s != -1)
            if rest == 0 or self.numel() % rest:
                raise RuntimeError(f"shape '{shape}' is invalid for input of size "
                                   f"{self.numel()}")
            shape[shape.index(-1)] = self.numel() // rest
        if math.prod(shape) != self.numel():
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {self.numel()}")
        return tuple(shape)

    def reshape(self, *shape) -> "Tensor":
        shape = self._infer_shape(shape)
        v = self._view.reshape(shape)
        if v is None:
            return self.clone()._reshaped(View.contiguous(shape))
        return self._reshaped(v)

    def detach_view(self) -> "Tensor":
        t = self._plain._make(self._buf, self._view, self.dtype)
        t._base = self._base if self._base is not None else self
        return t

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def permute(self, *dims) -> "Tensor":
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        nd = self.ndim
        dims = tuple(normalize_dim(d, nd) for d in dims)
        if sorted(dims) != list(range(nd)):
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input "
                               f"does not match the length of the desired ordering of dimensions "
                               f"i.e. input.dim() = {nd} is not equal to len(dims) = {len(dims)}"
                               if len(dims) != nd else "permute(): duplicate dims are not allowed.")
        inv = tuple(sorted(range(nd), key=lambda i: dims[i]))
        return apply(ops.view_op, self, self._view.permute(dims), "PermuteBackward0",
                           lambda ctx, g: (g.permute(inv),))

    def transpose(self, dim0, dim1) -> "Tensor":
        nd = self.ndim
        if nd == 0:
            return self.detach_view() if not self.requires_grad else self.permute(())
        return self._swap(normalize_dim(dim0, nd), normalize_dim(dim1, nd), "TransposeBackward0")

    def _swap(self, d0: int, d1: int, name: str) -> "Tensor":
        # a swap is its own inverse and valid by construction: no checks (t() and mT are hot)
        order = list(range(self.ndim))
        order[d0], order[d1] = order[d1], order[d0]
        return apply(ops.view_op, self, self._view.permute(tuple(order)), name,
                     lambda ctx, g: (g._swap(d0, d1, name),))

    swapaxes = swapdims = transpose

    def t(self) -> "Tensor":
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                               f"{self.ndim}D")
        return self._swap(0, 1, "TBackward0") if self.ndim == 2 else self

    @property
    def T(self) -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> "Tensor":
        if self.ndim < 2:
            raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. "
                               f"Got {self.ndim}-D tensor.")
        return self.transpose(-2, -1)

    @property
    def H(self):
        return self.T

    @property
    def mH(self):
        return self.mT

    def expand(self, *sizes) -> "Tensor":
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list, Size)):
            sizes = tuple(sizes[0])
        if len(sizes) < self.ndim:
            raise RuntimeError(f"expand(clgrad.{self.dtype.name}{{{list(self.shape)}}}, size="
                               f"{list(sizes)}): the number of sizes provided ({len(sizes)}) "
                               "must be greater or equal to the number of dimensions in the "
                               f"tensor ({self.ndim})")
        lead = len(sizes) - self.ndim
        shape = tuple(self.shape[i - lead] if (s == -1 and i >= lead) else int(s)
                      for i, s in enumerate(sizes))
        # the gradient is summed back to our shape by autograd's single un-broadcast step
        return apply(ops.view_op, self, self._view.expand(shape), "ExpandBackward0",
                           lambda ctx, g: (g,))

    def expand_as(self, other):
        return self.expand(other.shape)

    def broadcast_to(self, shape):
        return self.expand(shape)

    def squeeze(self, dim=None) -> "Tensor":
        nd = self.ndim
        if dim is None:
            dims = tuple(range(nd))
        elif isinstance(dim, (tuple, list)):
            dims = tuple(normalize_dim(d, nd) for d in dim)
        else:
            dims = (normalize_dim(dim, nd),)
        in_shape = self.shape
        return apply(ops.view_op, self, self._view.squeeze(dims) if nd else self._view,
                           "SqueezeBackward0", lambda ctx, g: (g.reshape(in_shape),))

    def unsqueeze(self, dim) -> "Tensor":
        d = normalize_dim(dim, self.ndim + 1)
        return apply(ops.view_op, self, self._view.unsqueeze(d), "UnsqueezeBackward0",
                           lambda ctx, g: (g.squeeze(d),))

    def flatten(self, start_dim=0, end_dim=-1) -> "Tensor":
        if self.ndim == 0:
            return self.reshape(1)
        s, e = normalize_dim(start_dim, self.ndim), normalize_dim(end_dim, self.ndim)
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:]
        return self.reshape(shape)

    def ravel(self):
        return self.reshape(-1)

    def unflatten(self, dim, sizes) -> "Tensor":
        d = normalize_dim(dim, self.ndim)
        sizes = list(sizes)
        if -1 in sizes:
            rest = math.prod(s for s in sizes if s != -1)
            sizes[sizes.index(-1)] = self.shape[d] // rest if rest else 0
        if math.prod(sizes) != self.shape[d]:
            raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to "
                               f"the size of dim {dim} ({self.shape[d]}) in the input tensor")
        return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])

    def _view_fn(self, fn, name) -> "Tensor":
        """A view through `fn(View) -> View` whose gradient scatters back through the same fn."""
        in_shape = self.shape
        return apply(ops.view_op, self, fn(self._view), name,
                           lambda ctx, g: (apply(ops.scatter_view, g, in_shape, fn),))

    def narrow(self, dim, start, length) -> "Tensor":
        d = normalize_dim(dim, self.ndim)
        size = self.shape[d]
        start = int(start)
        if start < 0:
            start += size
        if not (0 <= start <= size and 0 <= length and start + length <= size):
            raise IndexError(f"start ({start}) + length ({length}) exceeds dimension size "
                             f"({size}).")
        return self._view_fn(lambda v: v.slice(d, start, start + length, 1), "NarrowBackward0")

    def select(self, dim, index) -> "Tensor":
        d = normalize_dim(dim, self.ndim)
        size = self.shape[d]
        i = int(index)
        if not -size <= i < size:
            raise IndexError(f"index {i} is out of bounds for dimension {d} with size {size}")
        i %= size
        return self._view_fn(lambda v: v.select(d, i), "SelectBackward0")

    def unbind(self, dim=0):
        d = normalize_dim(dim, self.ndim)
        return tuple(self.select(d, i) for i in range(self.shape[d]))

    def __getitem__(self, idx):
        return getitem(self, idx)

    def __setitem__(self, idx, value):
        setitem(self, idx, value)
