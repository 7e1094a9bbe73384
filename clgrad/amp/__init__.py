"""Mixed precision (PyTorch's `torch.amp`): `autocast` and `GradScaler`."""
from ..autograd.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from .grad_scaler import GradScaler

__all__ = ["GradScaler", "autocast", "get_autocast_dtype", "is_autocast_enabled"]
