"""Autocast's switch: the thread-local (dtype, device filter) that Tensor._apply reads, and the
`autocast` context manager and decorator that sets it (tensor/autocast.py holds the op lists)."""
from __future__ import annotations

import functools
import inspect
import threading
import warnings

from ..dtypes import DType, bfloat16, float16, to_dtype

_state = threading.local()

# device_type -> (device filter: None for every OpenCL device, else `is_cpu` wanted; default dtype)
_DEVICE_TYPES = {"cl": (None, float16), "gpu": (False, float16), "cpu": (True, bfloat16)}


def _current():
    """(low dtype, device filter) while autocast is on, else None: the one read per _apply."""
    return getattr(_state, "mode", None)


def _set(mode) -> None:
    _state.mode = mode


def cast_cache() -> dict:
    """Casts of leaf tensors (parameters) made in the outermost enabled region, by id: a weight
    used twice is cast once, as PyTorch's autocast caches them."""
    cache = getattr(_state, "cache", None)
    if cache is None:
        cache = _state.cache = {}
    return cache


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """True inside an enabled autocast region (for `device_type`, when given)."""
    mode = _current()
    if mode is None:
        return False
    if device_type is None or device_type == "cl":
        return True
    want = _DEVICE_TYPES.get(device_type, (None,))[0]
    return mode[1] is None or mode[1] == want


def get_autocast_dtype(device_type: str = "cl") -> DType:
    """The low-precision dtype autocast uses (the region's, or the device type's default)."""
    mode = _current()
    if mode is not None:
        return mode[0]
    return _DEVICE_TYPES.get(device_type, (None, float16))[1]


class autocast:
    """Run the ops inside the region in mixed precision (PyTorch's `torch.autocast`).

    Matrix products, convolutions and attention run in `dtype`; softmax, log-softmax, the losses,
    the norms and sum/mean/prod/exp/log/pow in float32; other ops in the widest input dtype.
    Parameters stay float32: their casts are recorded, so gradients land in float32 `.grad`.

    Args:
        device_type: 'cl' (every OpenCL device), 'cpu' or 'gpu' (devices of that type); 'cuda'
            warns and disables, as PyTorch does on a machine without CUDA.
        dtype: clgrad.float16 or clgrad.bfloat16 (default: float16 for 'cl'/'gpu', bfloat16
            for 'cpu', PyTorch's defaults).
        enabled: False makes a region that turns autocast off (nesting works both ways).
        cache_enabled: cache the casts of parameters within the outermost region.

    Example::

        with clgrad.autocast("cl", dtype=clgrad.bfloat16):
            loss = loss_fn(model(x), y)     # matmuls in bfloat16, the loss in float32
        loss.backward()
    """

    def __init__(self, device_type: str = "cl", dtype=None, enabled: bool = True,
                 cache_enabled: bool = True):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        self.device_type = device_type
        self.fast_dtype = None
        self._enabled = bool(enabled)
        self._cache_enabled = bool(cache_enabled)
        if device_type == "cuda":
            if self._enabled:
                warnings.warn("User provided device_type of 'cuda', but CUDA is not available: "
                              "clgrad runs on OpenCL devices (device_type='cl'). Disabling",
                              stacklevel=2)
            self._enabled = False
            return
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"User specified an unsupported autocast device_type "
                               f"'{device_type}': clgrad's are 'cl', 'cpu' and 'gpu'")
        self._filter, default = _DEVICE_TYPES[device_type]
        self.fast_dtype = default if dtype is None else to_dtype(dtype)
        if self.fast_dtype not in (float16, bfloat16):
            if self._enabled:
                warnings.warn(f"In autocast, but the target dtype is not supported: "
                              f"{self.fast_dtype}; clgrad autocasts to float16 or bfloat16. "
                              "Disabling autocast.", stacklevel=2)
            self._enabled = False

    def __enter__(self):
        self._prev = _current()
        self._prev_cache = getattr(_state, "cache_on", False)
        if self._enabled:
            _set((self.fast_dtype, self._filter))
            _state.cache_on = self._cache_enabled
        else:
            _set(None)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        _state.cache_on = self._prev_cache
        if self._prev is None:
            # leaving the outermost enabled region frees the parameters' cast copies
            cast_cache().clear()
        return False

    def __call__(self, fn):
        if inspect.isclass(fn):
            raise RuntimeError("autocast cannot decorate a class")

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with autocast(self.device_type, self.fast_dtype, self._enabled,
                          self._cache_enabled):
                return fn(*a, **k)
        return wrapper


def _cache_on() -> bool:
    return getattr(_state, "cache_on", False)

