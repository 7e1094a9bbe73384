"""Tensor: an Array (buffer + view + dtype) with autograd fields and the user-facing methods."""
from __future__ import annotations

import warnings
import weakref

import numpy as np

from .. import autograd, ops
from ..array import Array, Size
from ..dtypes import DType
from ..runtime import Buffer, Device
from ..view import View, broadcast_shapes, normalize_dim
from .apply import apply
from .compat import NUMPY_NAMED, CompatMixin, numpy_names
from .conversion import ConversionMixin
from .gather import GatherMixin
from .inplace import InplaceMixin
from .linalg import LinalgMixin
from .movement import MovementMixin
from .pointwise import MathMixin
from .random import fill_random
from .reduce import ReduceMixin
from .shape import ShapeMixin


class Tensor(MathMixin, InplaceMixin, ReduceMixin, ShapeMixin, GatherMixin, LinalgMixin,
             ConversionMixin, MovementMixin, CompatMixin, Array):
    """An n-dimensional array on an OpenCL device with PyTorch's semantics."""

    __array_priority__ = 1000     # make numpy defer to our reflected operators

    def __init__(self, *args, **kwargs):
        raise TypeError("create tensors with clgrad.tensor(), clgrad.zeros(), ... "
                        "(Tensor() has no public constructor)")

    # the one differentiable path: forward on the op floor, then the node on the tape
    _apply = staticmethod(apply)

    # MathMixin's __eq__ would leave Tensor unhashable: tensors hash by identity, as in PyTorch
    def __hash__(self):
        return id(self)

    # ---- construction (internal) -------------------------------------------------------------
    @classmethod
    def _make(cls, buf: Buffer, view: View, dtype: DType) -> "Tensor":
        t = super()._make(buf, view, dtype)
        t._requires_grad = False
        t._grad = None
        t._ctx = None
        t._out_idx = 0
        t._retains_grad = False
        t._hooks = {}
        t._base = None
        t._grad_slot = None       # a preallocated home for .grad (optimizer arenas)
        t._untracked = False      # a `.data` alias: in-place writes leave the version alone
        return t

    @classmethod
    def _full(cls, shape, value, dtype: DType, device: Device) -> "Tensor":
        return ops.copy_into(cls._empty(shape, dtype, device), value)

    @classmethod
    def _zeros(cls, shape, dtype: DType, device: Device) -> "Tensor":
        return cls._full(shape, 0, dtype, device)

    def _alias(self) -> "Tensor":
        t = Tensor._make(self._buf, self._view, self.dtype)
        t._base = self._base if self._base is not None else self
        t.requires_grad, t._ctx, t._out_idx = self.requires_grad, self._ctx, self._out_idx
        return t

    # ---- properties (device, shape, ndim, numel, is_contiguous, nbytes: Array's) --------------
    def size(self, dim=None):
        if dim is None:
            return Size(self._view.shape)
        return self._view.shape[normalize_dim(dim, self.ndim)]

    def stride(self, dim=None):
        if dim is None:
            return tuple(self._view.strides)
        return self._view.strides[normalize_dim(dim, self.ndim)]

    def storage_offset(self) -> int:
        return self._view.offset

    def dim(self) -> int:
        return self.ndim

    def nelement(self) -> int:
        return self.numel()

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None or not self._requires_grad

    @property
    def grad_fn(self):
        return self._ctx if self._requires_grad else None

    @property
    def _version(self) -> int:
        """The storage's version counter (shared by views), bumped by every in-place write."""
        # a pending result (clgrad/array.py) will be at 1 when launched, as an eager op's output
        return self._buf.version if self._lazy is None else 1

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool):
        value = bool(value)
        if value and not self.dtype.is_floating:
            raise RuntimeError("only Tensors of floating point dtype can require "
                               "gradients")
        if not value and self._ctx is not None and self._requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        self._requires_grad = value

    @property
    def grad(self):
        g = self._grad
        if g is None and self._ctx is not None and self._requires_grad \
                and not self._retains_grad:
            warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being "
                          "accessed. Its .grad attribute won't be populated during "
                          "autograd.backward(). If you indeed want the .grad field to be "
                          "populated for a non-leaf Tensor, use .retain_grad() on the non-leaf "
                          "Tensor.", UserWarning, stacklevel=2)
        return g

    @grad.setter
    def grad(self, g):
        if g is not None:
            if not isinstance(g, Tensor):
                raise TypeError("assigned grad expected to be a Tensor or None but got grad of "
                                f"type {type(g).__name__}")
            if g.device != self.device:
                raise RuntimeError("assigned grad has data located on a different device")
            if g.dtype is not self.dtype:
                raise RuntimeError("assigned grad has data of a different type")
            if g.shape != self.shape:
                raise RuntimeError("assigned grad has data of a different size")
        self._grad = g

    @grad.deleter
    def grad(self):
        self._grad = None

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating

    def is_complex(self) -> bool:
        return False

    @property
    def is_cuda(self) -> bool:
        return False

    # PyTorch's other device-kind flags: clgrad tensors are none of these
    is_xpu = is_mps = is_meta = is_sparse = is_quantized = is_cuda

    @property
    def data(self) -> "Tensor":
        t = self.detach()
        t._untracked = True
        return t

    @data.setter
    def data(self, other: "Tensor"):
        buf = other._buf
        if self._lazy is not None:
            self._buf      # launch what is pending while it still reads its old inputs
        self._buf, self._view, self.dtype = buf, other._view, other.dtype

    # ---- autograd API ----------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        if requires_grad and not (self.dtype.is_floating or self.dtype.is_complex):
            raise RuntimeError("only Tensors of floating point dtype can require "
                               "gradients")
        self._requires_grad = bool(requires_grad)
        return self

    def detach(self) -> "Tensor":
        """A tensor sharing this one's storage (and version counter), outside the graph."""
        return Tensor._make(self._buf, self._view, self.dtype)

    def detach_(self) -> "Tensor":
        if self._base is not None and self._base._requires_grad and self._requires_grad:
            raise RuntimeError("Can't detach views in-place. Use detach() instead. If you are "
                               "using DistributedDataParallel (DDP) for training, and "
                               "gradient_as_bucket_view is set as True, gradients are views of "
                               "DDP buckets, and hence detach_() cannot be called on these "
                               "gradients. To fix this error, please refer to the "
                               "Optimizer.zero_grad() function in torch/optim/optimizer.py as "
                               "the solution.")
        self._ctx = None
        self._requires_grad = False
        return self

    def retain_grad(self) -> None:
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if not self.is_leaf:
            self._retains_grad = True

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def register_hook(self, hook):
        """hook(grad) runs when this tensor's gradient is computed; it may return a
        replacement. Returns a handle whose remove() unregisters it."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        key = object()
        # bound to the current grad_fn: after an in-place op it keeps seeing the old value's
        # gradient, as in PyTorch
        self._hooks[key] = (hook, self._ctx)
        return _HookHandle(self._hooks, key)

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor) runs after a backward has accumulated into this leaf's .grad (e.g. to
        step an optimizer per parameter)."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._ctx is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        table = self.__dict__.setdefault("_post_acc_hooks", {})
        key = object()
        table[key] = hook
        return _HookHandle(table, key)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate the gradient of this tensor into the .grad of the leaves it depends on.

        Args:
            gradient: d(something)/d(self), needed unless self has one element.
            retain_graph: keep the graph for another backward (default: create_graph).
            create_graph: record the backward, for higher-order gradients.
            inputs: only these tensors accumulate .grad.
        """
        autograd.backward(self, gradient, retain_graph, create_graph, inputs)

    def _is_grad_view(self) -> bool:
        return self._base is not None and (self._base._requires_grad or self._requires_grad)

    def _check_inplace(self):
        if not autograd.is_grad_enabled():
            return
        if self._requires_grad and self._ctx is None:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        b = self._base
        if b is not None and b._requires_grad and b._ctx is None:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                               "in-place operation.")

    def _inplace(self, compute, *args, fast=None) -> "Tensor":
        """Write `compute(self, *args)` into self. Without autograd, `fast()` (a kernel that
        writes into self) runs instead where given. With autograd the result is computed out of
        place, copied in, and self takes over its graph node; the storage's version counter
        then guards saved uses of the old value. An in-place op on a view rewrites its base's
        graph too (PyTorch's CopySlices), so gradients through the base see the change."""
        self._check_inplace()
        if autograd.needs_grad(self, *args) or (autograd.is_grad_enabled()
                                                  and self._is_grad_view()):
            if self._base is not None:
                return self._inplace_view(compute, args)
            start = autograd.Node.count
            r = compute(self._alias(), *args)
            self._keep_old_value(r, start)
            with autograd.no_grad():
                ops.copy_into(self, r)
            self._adopt(r)
            return self
        version = self._buf.version
        with autograd.no_grad():
            if fast is not None:
                fast()
            else:
                ops.copy_into(self, compute(self, *args))
        if self._untracked:
            self._buf.version = version
        return self

    def _keep_old_value(self, r, start):
        """Where the nodes that computed r (made after Node.count was `start`) saved self's old
        value, save a copy instead: the in-place write is about to overwrite it (PyTorch saves
        `original_self` the same way)."""
        if not r._requires_grad or r._ctx is None:
            return
        copies = {}
        for node in autograd.nodes_since(r._ctx, start):
            for s in node.ctx._saved:
                t = None if s is None else s.tensor
                if t is None or t._buf is not self._buf:
                    continue
                key = (t._view, id(t._ctx), t._out_idx)
                keep = copies.get(key)
                if keep is None:
                    with autograd.no_grad():
                        old = t.clone()
                    keep = copies[key] = Tensor._make(old._buf, old._view, old.dtype)
                    keep._requires_grad, keep._ctx, keep._out_idx = (t._requires_grad, t._ctx,
                                                                      t._out_idx)
                s.tensor, s.version = keep, keep._buf.version

    def _adopt(self, r):
        """Make self the output of r's graph node (r holds the value self now holds)."""
        if r._requires_grad and r._ctx is not None:
            self._ctx, self._out_idx, self._requires_grad = r._ctx, r._out_idx, True
            r._ctx.outputs[r._out_idx] = weakref.ref(self)

    def _inplace_view(self, compute, args):
        base = self._base
        bv, sv = base._view, self._view
        if not bv.is_contiguous():
            raise NotImplementedError("in-place operations with autograd on a view of a "
                                      "non-contiguous tensor are not supported")
        shift = sv.offset - bv.offset

        def region(v):
            # the same elements of any contiguous tensor shaped like the base
            return View(sv.shape, sv.strides, v.offset + shift)

        start = autograd.Node.count
        new = compute(self._alias(), *args)
        self._keep_old_value(new, start)
        if new.dtype is not self.dtype:
            new = new.to(self.dtype)
        b = base._alias()
        ones = Tensor._full(sv.shape, 1, b.dtype, b.device)
        keep = 1 - apply(ops.scatter_view, ones, b.shape, region)
        placed = apply(ops.scatter_view, new.expand(sv.shape), b.shape, region)
        r = b * keep + placed if b._requires_grad else placed
        with autograd.no_grad():
            ops.copy_into(self, new)
        if r._requires_grad and r._ctx is not None:
            r._ctx._name = "CopySlices"
            base._adopt(r)
            fresh = base._view_fn(region, "AsStridedBackward0")
            self._adopt(fresh)
        return self

    # ---- in-place basics -------------------------------------------------------------------
    def copy_(self, src, non_blocking=False) -> "Tensor":
        """Copy src's values (broadcast, converted) into self; the gradient goes to src, and
        the overwritten old value gets zero."""
        if not isinstance(src, Tensor):
            src = Tensor._from_numpy(np.asarray(src), self.dtype, self.device)
        if src.device != self.device:
            src = src.to(self.device)
        broadcast_shapes(self.shape, src.shape)
        if src._lazy is None and src._buf is self._buf and src._view == self._view:
            return self
        return self._inplace(lambda s, v: apply(_copy_node, s, v), src,
                             fast=lambda: ops.copy_into(self, src))

    def fill_(self, value) -> "Tensor":
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError("fill_ only supports 0-dimension value tensor but got tensor "
                                   f"with {value.ndim} dimensions.")
            return self.copy_(value)
        return self._inplace(lambda s: apply(_fill_node, s, value),
                             fast=lambda: ops.copy_into(self, value))

    def zero_(self) -> "Tensor":
        return self.fill_(0)

    # ---- in-place random draws (clgrad.random holds the generator) ---------------------------
    def _fill_random(self, kind, a, b, generator):
        if kind != "randint" and not self.dtype.is_floating:
            raise RuntimeError(f"{kind}_ is not implemented for '{ops.torch_name(self.dtype)}'")
        self._check_inplace()
        fill_random(self, kind, a, b, generator)
        return self

    def uniform_(self, a=0.0, b=1.0, *, generator=None) -> "Tensor":
        return self._fill_random("uniform", a, b, generator)

    def normal_(self, mean=0.0, std=1.0, *, generator=None) -> "Tensor":
        return self._fill_random("normal", mean, std, generator)

    def random_(self, low=0, high=None, *, generator=None) -> "Tensor":
        if high is None:
            low, high = 0, low if low else (1 << 24 if self.dtype.is_floating else 1 << 31)
        return self._fill_random("randint", low, high, generator)


# the mixins build plain Tensors (never a subclass such as Parameter) through self._plain
Tensor._plain = Tensor
_HookHandle = autograd._Handle


def _copy_node(ctx, s, src):
    """The value of `s.copy_(src)` as a new tensor (PyTorch's CopyBackwards)."""
    out = ops.copy_into(Tensor._empty(s.shape, s.dtype, s.device), src.detach())
    if ctx is not None:
        ctx.needs_input_grad = (s.requires_grad, src.requires_grad and s.dtype.is_floating)
    return out, "CopyBackwards", _copy_backward


for _name in NUMPY_NAMED:
    setattr(Tensor, _name, numpy_names(getattr(Tensor, _name)))


def _zeros_like(g):
    return Tensor._zeros(g.shape, g.dtype, g.device)


def _copy_backward(ctx, g):
    return (_zeros_like(g) if ctx.needs_input_grad[0] else None,
            g if ctx.needs_input_grad[1] else None)


def _fill_node(ctx, s, value):
    """The value of `s.fill_(value)` as a new tensor (PyTorch's FillBackward0)."""
    out = Tensor._full(s.shape, value, s.dtype, s.device)
    return out, "FillBackward0", lambda c, g: (_zeros_like(g),)
