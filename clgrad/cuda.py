"""`clgrad.cuda`: what a PyTorch script asks of `torch.cuda`, answered truthfully: clgrad has no
CUDA tensors (an NVIDIA GPU is reached through its OpenCL driver as a 'cl' device; see
`clgrad.accelerator`). The queries answer as PyTorch does on a machine without CUDA, seeding
is a no-op (there is no CUDA generator to seed; `clgrad.manual_seed` seeds clgrad's devices),
and asking for a CUDA device raises the error PyTorch raises there."""
from __future__ import annotations

from . import amp as _amp

__all__ = ["current_device", "device_count", "empty_cache", "get_device_name", "is_available",
           "is_bf16_supported", "is_initialized", "manual_seed", "manual_seed_all", "set_device",
           "synchronize"]

_NO_CUDA = ("clgrad has no CUDA devices: its tensors live on OpenCL devices. Use "
            "clgrad.accelerator.current_accelerator() (or the device 'cl', 'gpu', 'cl:N').")


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def is_initialized() -> bool:
    return False


def is_bf16_supported(including_emulation: bool = True) -> bool:
    return False


def manual_seed(seed: int) -> None:
    """No CUDA generator exists; like PyTorch without CUDA, this silently does nothing."""


def manual_seed_all(seed: int) -> None:
    """No CUDA generator exists; like PyTorch without CUDA, this silently does nothing."""


def empty_cache() -> None:
    """Nothing is cached for CUDA; clgrad's own pools: `clgrad.empty_cache()`."""


def _no_cuda(*args, **kwargs):
    raise RuntimeError(_NO_CUDA)


current_device = set_device = get_device_name = synchronize = _no_cuda


class _CudaAmp:
    """`clgrad.cuda.amp`: PyTorch's deprecated CUDA spellings, answering as PyTorch does on a
    machine without CUDA: autocast and GradScaler warn and are disabled (use clgrad.amp with
    device 'cl')."""

    @staticmethod
    def autocast(enabled: bool = True, dtype=None, cache_enabled: bool = True):
        return _amp.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    @staticmethod
    def GradScaler(init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                   backoff_factor: float = 0.5, growth_interval: int = 2000,
                   enabled: bool = True):
        return _amp.GradScaler("cuda", init_scale, growth_factor, backoff_factor,
                               growth_interval, enabled)


amp = _CudaAmp()
