"""`clgrad.backends`: the flags PyTorch scripts set or read on `torch.backends` (cudnn, cuda, mps,
opencl). clgrad reads none of the CUDA/cuDNN flags (no such backend here); they are kept as plain
attributes so setting them is harmless, and the availability queries say False."""
from __future__ import annotations

import types

from .. import runtime

__all__ = ["cuda", "cudnn", "mps", "opencl"]


def _flags(name: str, doc: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(f"{__name__}.{name}", doc)
    mod.__dict__.update(attrs)
    return mod


cudnn = _flags("cudnn", "cuDNN flags, accepted and unused: clgrad has no cuDNN backend.",
               enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
               is_available=lambda: False, version=lambda: None)
cuda = _flags("cuda", "CUDA flags, accepted and unused: clgrad has no CUDA backend.",
              matmul=types.SimpleNamespace(allow_tf32=False, allow_fp16_reduced_precision_reduction=True,
                                           allow_bf16_reduced_precision_reduction=True),
              is_built=lambda: False)
mps = _flags("mps", "Apple MPS: not a clgrad backend (Apple GPUs are reached through OpenCL).",
             is_available=lambda: False, is_built=lambda: False)


def _opencl_available() -> bool:
    try:
        return bool(runtime.devices())
    except runtime.CLGradError:
        return False


opencl = _flags("opencl", "clgrad's one backend: OpenCL devices.",
                is_available=_opencl_available, is_built=lambda: True)
