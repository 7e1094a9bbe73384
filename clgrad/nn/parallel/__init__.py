"""`clgrad.nn.parallel`: PyTorch's `DataParallel` wrapper, so scripts that wrap their model keep
working. With one device (clgrad today) it runs the module as is, exactly as PyTorch's does when
it has no more than one device; the wrapped module is `.module` and state_dict keys carry the
`module.` prefix, as in PyTorch. Splitting a batch over several devices belongs to the
multi-device work (see docs)."""
from __future__ import annotations

from ..modules.module import Module

__all__ = ["DataParallel"]


class DataParallel(Module):
    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0):
        super().__init__()
        if device_ids is not None and len(device_ids) > 1:
            raise NotImplementedError(
                f"DataParallel over several devices ({list(device_ids)}) is not implemented "
                "in clgrad yet; pass one device (or none) to run the module as is.")
        self.module = module
        self.device_ids = list(device_ids) if device_ids is not None else []
        self.output_device = output_device
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)
