"""`clgrad.nn.parallel`: PyTorch's data-parallel wrappers. `DataParallel` splits a batch over
several devices of one process; `DistributedDataParallel` keeps one model replica per process
in sync over `clgrad.distributed` (MPI). Both keep the wrapped module as `.module`, so
state_dict keys carry the `module.` prefix, as in PyTorch."""
from .data_parallel import DataParallel
from .distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel"]
