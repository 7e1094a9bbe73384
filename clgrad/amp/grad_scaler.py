"""GradScaler: loss scaling for float16 training, PyTorch's `torch.amp.GradScaler`, with the
inf/NaN check and the scale update on the device."""
from __future__ import annotations

import warnings

from ..dtypes import float16, float32, int32
from ..tensor import Tensor, storage

_READY, _UNSCALED, _STEPPED = 0, 1, 2


class GradScaler:
    """Scale the loss so float16 gradients do not underflow, unscale them before the step, skip
    steps whose gradients hold an inf or NaN and adapt the scale.

    Each `unscale_` is one kernel launch per run of gradients (an optimizer's gradient arena is
    one run) that divides by the scale and raises a device flag on inf/NaN; `step` reads that
    flag once (the one host sync per step PyTorch also has) and skips `optimizer.step()` when it
    is set; `update` changes the scale on the device: times `backoff_factor` after a skipped
    step, times `growth_factor` after `growth_interval` clean steps in a row.

    Args:
        device: 'cl' (any OpenCL device; the scale lives on the loss's device); 'cuda' warns
            and disables the scaler, as PyTorch does without CUDA.
        init_scale, growth_factor, backoff_factor, growth_interval: as PyTorch's.
        enabled: False makes every method a pass-through (`scale` returns the loss as is).

    Example::

        scaler = clgrad.amp.GradScaler()
        with clgrad.autocast("cl", dtype=clgrad.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    """

    def __init__(self, device: str = "cl", init_scale: float = 2.0 ** 16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        if device == "cuda" and enabled:
            warnings.warn("GradScaler is enabled for device 'cuda', but clgrad has no CUDA: its "
                          "devices are OpenCL ('cl'). Disabling.", stacklevel=2)
            enabled = False
        self._device = device
        self._enabled = bool(enabled)
        if self._enabled:
            if growth_factor <= 1.0:
                raise ValueError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise ValueError("The backoff factor must be < 1.0.")
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        self._scale: Tensor | None = None
        self._growth_tracker: Tensor | None = None
        self._per_optimizer: dict = {}

    # ---- the per-step calls ----------------------------------------------------------------------
    def _lazy_init(self, dev) -> None:
        self._scale = Tensor._full((), self._init_scale, float32, dev)
        self._growth_tracker = Tensor._full((), self._init_growth_tracker, int32, dev)

    def _state(self, optimizer) -> dict:
        st = self._per_optimizer.get(id(optimizer))
        if st is None or st["opt"] is not optimizer:
            st = self._per_optimizer[id(optimizer)] = {"opt": optimizer, "stage": _READY,
                                                       "found_inf": None}
        return st

    def scale(self, outputs):
        """outputs (a tensor or nested lists/tuples of them) times the current scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init(outputs.device)
            return outputs * self._scale.to(outputs.device)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def unscale_(self, optimizer) -> None:
        """Divide the gradients of `optimizer`'s parameters by the scale, in place (call before
        clipping them); at most once per optimizer between updates."""
        if not self._enabled:
            return
        self._check_scale("unscale_")
        st = self._state(optimizer)
        if st["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the "
                               "last update().")
        if st["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        if any(g.dtype is float16 for g in grads):
            raise ValueError("Attempting to unscale FP16 gradients.")
        found = Tensor._zeros((), float32, self._scale.device)
        storage.amp_unscale_(grads, found, self._scale)
        st["found_inf"] = found
        st["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(*args, **kwargs) unless the (unscaled) gradients hold an inf or NaN;
        unscales first if `unscale_` was not called. Returns what optimizer.step returns."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is "
                               "enabled.")
        self._check_scale("step")
        st = self._state(optimizer)
        if st["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if st["stage"] == _READY:
            self.unscale_(optimizer)
        retval = None
        if not st["found_inf"].item():          # the one host read of a step
            retval = optimizer.step(*args, **kwargs)
        st["stage"] = _STEPPED
        return retval

    def update(self, new_scale=None) -> None:
        """Set the scale for the next iteration: `new_scale` (a float or one-element tensor), or
        the device-side rule from the inf/NaN flags of this iteration's steps."""
        if not self._enabled:
            return
        self._check_scale("update")
        if new_scale is not None:
            if isinstance(new_scale, Tensor):
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise ValueError("new_scale should be a float or a 1-element float32 "
                                     "tensor with requires_grad=False.")
                storage.copy_into(self._scale, new_scale.reshape(()).to(float32))
            else:
                storage.copy_into(self._scale, float(new_scale))
        else:
            flags = [st["found_inf"] for st in self._per_optimizer.values()
                     if st["found_inf"] is not None]
            if not flags:
                raise AssertionError("No inf checks were recorded prior to update.")
            found = flags[0]
            for f in flags[1:]:
                found = found + f
            storage.amp_update_scale_(self._scale, self._growth_tracker, found,
                                      self._growth_factor, self._backoff_factor,
                                      self._growth_interval)
        self._per_optimizer = {}

    def _check_scale(self, fn: str) -> None:
        if self._scale is None:
            raise RuntimeError(f"Attempted {fn} but the scale is not initialized: call "
                               "scale(loss) first (the scale is created on the loss's device).")

    # ---- queries and settings ------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale as a Python float (a host read); 1.0 when disabled."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self) -> int:
        if self._growth_tracker is None:
            return self._init_growth_tracker
        return int(self._growth_tracker.item())

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """scale, growth_factor, backoff_factor, growth_interval and _growth_tracker (PyTorch's
        keys); empty when disabled."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._scale is not None:
            storage.copy_into(self._scale, self._init_scale)
            storage.copy_into(self._growth_tracker, self._init_growth_tracker)
