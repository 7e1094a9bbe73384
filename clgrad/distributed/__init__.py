"""`clgrad.distributed`: PyTorch's torch.distributed API over MPI (mpi4py), so data-parallel
scripts port by their imports. Start processes with `mpiexec -n N python script.py`; each calls
`init_process_group("mpi")` and works on its own device (see docs/distributed.md)."""
from .collectives import (Work, all_gather, all_gather_into_tensor, all_gather_object,
                          all_reduce, barrier, broadcast, broadcast_object_list, gather, reduce,
                          scatter)
from .process_group import (Backend, GroupMember, ProcessGroup, ReduceOp, destroy_process_group,
                            get_backend, get_global_rank, get_group_rank, get_node_local_rank,
                            get_process_group_ranks, get_rank, get_world_size,
                            init_process_group, is_available, is_gloo_available, is_initialized,
                            is_mpi_available, is_nccl_available, is_torchelastic_launched,
                            new_group)

group = GroupMember

__all__ = ["Backend", "GroupMember", "ProcessGroup", "ReduceOp", "Work", "all_gather",
           "all_gather_into_tensor", "all_gather_object", "all_reduce", "barrier", "broadcast",
           "broadcast_object_list", "destroy_process_group", "gather", "get_backend",
           "get_global_rank", "get_group_rank", "get_node_local_rank", "get_process_group_ranks",
           "get_rank", "get_world_size", "group", "init_process_group", "is_available",
           "is_gloo_available", "is_initialized", "is_mpi_available", "is_nccl_available",
           "is_torchelastic_launched", "new_group", "reduce", "scatter"]
