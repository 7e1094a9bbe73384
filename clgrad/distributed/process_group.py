"""The process group: MPI's world as seen by one process (rank, size, local rank), set up by
`init_process_group(backend="mpi")` and torn down by `destroy_process_group()`."""
from __future__ import annotations

import enum
import os

from ..tensor.storage import device as _device
from ..tensor.storage import device_list, set_default

__all__ = ["Backend", "GroupMember", "ReduceOp", "destroy_process_group", "get_backend",
           "get_node_local_rank", "get_rank", "get_world_size", "init_process_group",
           "is_available", "is_gloo_available", "is_initialized", "is_mpi_available",
           "is_nccl_available", "is_torchelastic_launched", "new_group"]


class ReduceOp(enum.Enum):
    """How all_reduce and reduce combine the ranks' tensors (AVG: the sum, then a division on
    the device)."""
    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


class Backend(str):
    """Backend names as strings; clgrad has one: "mpi"."""
    MPI = "mpi"
    GLOO = "gloo"
    NCCL = "nccl"


class _Group:
    """The default (world) group; clgrad has no sub-groups yet."""

    def __repr__(self):
        return "<clgrad.distributed world group>"


class GroupMember:
    WORLD = _Group()
    NON_GROUP_MEMBER = None


class _World:
    def __init__(self, comm, mpi, local_rank, local_size, device):
        self.comm = comm
        self.MPI = mpi
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.local_rank = local_rank
        self.local_size = local_size
        self.device = device


_world = None


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError("clgrad.distributed runs on MPI through mpi4py, which is not "
                           "installed: pip install 'clgrad[mpi]' (mpi4py and an MPI such as "
                           f"the mpich wheel) ({e})") from e
    return MPI


def is_available() -> bool:
    """True: the package exists everywhere; whether MPI is there is is_mpi_available()."""
    return True


def is_mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401  (only looks for the package; MPI itself starts at init)
    except ImportError:
        return False
    return True


def is_nccl_available() -> bool:
    return False


def is_gloo_available() -> bool:
    return False


def is_torchelastic_launched() -> bool:
    return False


def is_initialized() -> bool:
    return _world is not None


def init_process_group(backend=None, init_method=None, timeout=None, world_size: int = -1,
                       rank: int = -1, store=None, group_name: str = "", pg_options=None,
                       device_id=None) -> None:
    """Join the world of processes started by `mpiexec` (rank and size come from MPI).

    Args:
        backend: "mpi" (or None); "nccl" and "gloo" raise, naming what to use instead.
        init_method: None or "env://": MPI's launcher already did the rendezvous, so no
            address is needed; others raise.
        world_size, rank: optional; when given they must match what MPI reports.
        device_id: the device this rank uses (an index N meaning `cl:N`, a spec or a device).
            Default: the environment's CLGRAD_DEVICE when set, else device
            `local_rank % number of devices` (local rank: LOCAL_RANK when set, else the rank
            among the processes on this machine). It becomes the default device.

    Example (run with `mpiexec -n 2 python train.py`):
        >>> import clgrad.distributed as dist
        >>> dist.init_process_group("mpi")
        >>> dist.get_rank(), dist.get_world_size()
    """
    global _world
    if _world is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    name = str(backend or "mpi").lower()
    if name != "mpi":
        raise RuntimeError(f"backend {backend!r} is not available in clgrad: its processes talk "
                           "over MPI only; use init_process_group(backend=\"mpi\") and start "
                           "the script with mpiexec (see docs/distributed.md)")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_method={init_method!r}: with the MPI backend, mpiexec starts and "
                         "connects the processes; pass no init_method (or \"env://\")")
    MPI = _mpi()
    comm = MPI.COMM_WORLD.Dup()
    if world_size not in (-1, None) and int(world_size) != comm.Get_size():
        raise ValueError(f"world_size={world_size} but MPI started {comm.Get_size()} processes")
    if rank not in (-1, None) and int(rank) != comm.Get_rank():
        raise ValueError(f"rank={rank} but MPI says this process is rank {comm.Get_rank()}")
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local_rank, local_size = node.Get_rank(), node.Get_size()
    node.Free()
    if os.environ.get("LOCAL_RANK"):
        local_rank = int(os.environ["LOCAL_RANK"])
    if device_id is not None:
        dev = _device(f"cl:{device_id}" if isinstance(device_id, int) else device_id)
        set_default(dev)
    elif os.environ.get("CLGRAD_DEVICE"):
        dev = _device(None)
    else:
        devs = device_list()
        dev = set_default(devs[local_rank % len(devs)])
    _world = _World(comm, MPI, local_rank, local_size, dev)


def _get(group=None) -> _World:
    if _world is None:
        raise RuntimeError("Default process group has not been initialized, please make sure "
                           "to call init_process_group.")
    if group is not None and group is not GroupMember.WORLD:
        raise ValueError("clgrad.distributed has only the world group (group=None)")
    return _world


def destroy_process_group(group=None) -> None:
    """Leave the world: free the communicator (MPI itself finalizes at exit)."""
    global _world
    w = _get(group)
    w.comm.Free()
    _world = None


def get_rank(group=None) -> int:
    return _get(group).rank


def get_world_size(group=None) -> int:
    return _get(group).size


def get_node_local_rank(fallback_rank=None) -> int:
    """This process's rank among those on its machine (LOCAL_RANK when set)."""
    if _world is not None:
        return _world.local_rank
    if os.environ.get("LOCAL_RANK"):
        return int(os.environ["LOCAL_RANK"])
    if fallback_rank is not None:
        return int(fallback_rank)
    raise RuntimeError("LOCAL_RANK is not set and no process group is initialized")


def get_backend(group=None) -> str:
    _get(group)
    return Backend.MPI


def new_group(ranks=None, timeout=None, backend=None, pg_options=None):
    """Only the whole world is a group in clgrad: `new_group()` or all ranks returns it."""
    w = _get()
    if ranks is None or sorted(ranks) == list(range(w.size)):
        return GroupMember.WORLD
    raise NotImplementedError(f"sub-groups of ranks ({list(ranks)}) are not implemented in "
                              "clgrad.distributed; only the world group exists")
