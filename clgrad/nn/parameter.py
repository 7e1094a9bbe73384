"""Parameter: a Tensor that a Module registers as learnable when assigned as an attribute."""
from __future__ import annotations

from ..tensor import Tensor
from ..tensor.creation import empty


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is found by `Module.parameters()`.

    Args:
        data: the tensor whose storage the parameter takes over (an empty one when None).
        requires_grad: whether autograd records uses of it (default True).
    """

    def __new__(cls, data=None, requires_grad: bool = True):
        if data is None:
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter expects a Tensor, got {type(data).__name__}")
        p = cls._make(data._buf, data._view, data.dtype)
        p.requires_grad_(requires_grad)
        return p

    def __init__(self, data=None, requires_grad: bool = True):
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __reduce_ex__(self, proto):
        raise TypeError("clgrad tensors are not picklable; use clgrad.save")

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        p = Parameter(self.detach().clone(), self.requires_grad)
        memo[id(self)] = p
        return p


class Buffer(Tensor):
    """Marks a tensor to be registered as a buffer when assigned to a Module attribute."""

    def __new__(cls, data, *, persistent: bool = True):
        b = cls._make(data._buf, data._view, data.dtype)
        b.persistent = persistent
        return b

    def __init__(self, data, *, persistent: bool = True):
        pass
