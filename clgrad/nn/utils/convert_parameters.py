"""Flatten parameters into one vector and back."""
from __future__ import annotations

from ...tensor import Tensor
from ...tensor.creation import empty
from ...tensor.shape import cat


def parameters_to_vector(parameters):
    """All parameters flattened and joined into one 1-D tensor (differentiable)."""
    params = list(parameters)
    if not params:
        return empty(0)
    _check_device(params)
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters) -> None:
    """Point each parameter's data at its slice of `vec` (reshaped)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    params = list(parameters)
    _check_device(params)
    need = sum(p.numel() for p in params)
    if vec.numel() != need:
        raise RuntimeError(f"vector has {vec.numel()} elements, the parameters need {need}")
    off = 0
    for p in params:
        n = p.numel()
        p.data = vec.detach().narrow(0, off, n).view_as(p)
        off += n


def _check_device(params):
    dev = params[0].device if params else None
    for p in params:
        if p.device != dev:
            raise TypeError("Found two parameters on different devices, this is currently not "
                            "supported.")
