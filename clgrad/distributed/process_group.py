"""Process groups: MPI's world as seen by one process (rank, size, local rank), set up by
`init_process_group(backend="mpi")`, and sub-groups of ranks (`new_group`), each over its own
MPI communicator; `destroy_process_group()` tears them down."""
from __future__ import annotations

import enum
import os
import warnings

from ..tensor.storage import device as _device
from ..tensor.storage import device_list, set_default

__all__ = ["Backend", "GroupMember", "ProcessGroup", "ReduceOp", "destroy_process_group",
           "get_backend", "get_global_rank", "get_group_rank", "get_node_local_rank",
           "get_process_group_ranks", "get_rank", "get_world_size", "init_process_group",
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
    """The default (world) group: `group=None` and `GroupMember.WORLD` both name it."""

    def __repr__(self):
        return "<clgrad.distributed world group>"


class GroupMember:
    WORLD = _Group()
    NON_GROUP_MEMBER = -100       # what new_group returns on a rank outside the group (PyTorch's)


class ProcessGroup:
    """Some of the world's ranks with an MPI communicator of their own (from `new_group`).

    `rank()` is this process's rank in the group, `size()` the group's size; group ranks follow
    the global ranks in increasing order, as PyTorch's `new_group` sorts them."""

    def __init__(self, comm, mpi, ranks):
        self.comm = comm
        self.MPI = mpi
        self.ranks = tuple(ranks)           # global rank of each group rank
        self.rank_ = comm.Get_rank()
        self.size_ = comm.Get_size()

    def rank(self) -> int:
        return self.rank_

    def size(self) -> int:
        return self.size_

    def __repr__(self):
        return f"<clgrad.distributed group of ranks {list(self.ranks)}>"


class _World:
    def __init__(self, comm, mpi, local_rank, local_size, device):
        self.comm = comm
        self.MPI = mpi
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.ranks = range(self.size)
        self.local_rank = local_rank
        self.local_size = local_size
        self.device = device


class _Member:
    """One process's side of a group as the collectives use it: communicator, rank, size."""

    __slots__ = ("comm", "MPI", "rank", "size", "ranks", "group")

    def __init__(self, group: ProcessGroup):
        self.comm, self.MPI, self.ranks, self.group = group.comm, group.MPI, group.ranks, group
        self.rank, self.size = group.rank_, group.size_


_world = None
_groups = []                  # the sub-groups this process belongs to (freed with the world)


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


def _not_member(group) -> bool:
    return isinstance(group, int) and not isinstance(group, bool) and \
        group == GroupMember.NON_GROUP_MEMBER


def _get(group=None):
    """The world, or this rank's side of `group`, for a collective (errors name the problem)."""
    if _world is None:
        raise RuntimeError("Default process group has not been initialized, please make sure "
                           "to call init_process_group.")
    if group is None or group is GroupMember.WORLD:
        return _world
    if isinstance(group, ProcessGroup):
        if group.comm is None:
            raise ValueError(f"{group} was destroyed (destroy_process_group)")
        return _Member(group)
    if _not_member(group):
        raise ValueError("this rank is not a member of the group (new_group returned "
                         "GroupMember.NON_GROUP_MEMBER here)")
    raise TypeError(f"group must be None, GroupMember.WORLD or a group from new_group, got "
                    f"{group!r}")


def _skip(group, what: str) -> bool:
    """True (after PyTorch's warning) when this rank is outside `group`: the call does nothing."""
    if not _not_member(group):
        return False
    warnings.warn(f"Running {what} on global rank {get_rank()} which does not belong to the "
                  "given group.", stacklevel=3)
    return True


def _group_rank(w, global_rank=None, group_rank=None, what="src") -> int:
    """A collective's root as a rank of group `w`, from a global rank (src/dst, PyTorch's
    meaning) or a group rank (group_src/group_dst)."""
    if group_rank is not None:
        if global_rank is not None:
            raise ValueError(f"Can't specify both {what} and group_{what}")
        if not 0 <= int(group_rank) < w.size:
            raise ValueError(f"group_{what}={group_rank} is not a rank of a group of {w.size}")
        return int(group_rank)
    global_rank = 0 if global_rank is None else int(global_rank)
    try:
        return list(w.ranks).index(global_rank)
    except ValueError:
        raise ValueError(f"{what}={global_rank}: global rank {global_rank} is not part of the "
                         f"group (its global ranks: {list(w.ranks)})") from None


def destroy_process_group(group=None) -> None:
    """Free a group's communicator; with no group (or the world), every group's and the world's
    (MPI itself finalizes at exit)."""
    global _world
    if _not_member(group):
        return
    w = _get(group)
    if isinstance(group, ProcessGroup):
        w.comm.Free()
        group.comm = None
        if group in _groups:
            _groups.remove(group)
        return
    for g in _groups:
        g.comm.Free()
        g.comm = None
    _groups.clear()
    w.comm.Free()
    _world = None


def get_rank(group=None) -> int:
    """This process's rank in `group` (the world by default); -1 outside the group."""
    if _not_member(group):
        return -1
    return _get(group).rank


def get_world_size(group=None) -> int:
    """The number of ranks in `group` (the world by default); -1 outside the group."""
    if _not_member(group):
        return -1
    return _get(group).size


def get_process_group_ranks(group) -> list:
    """The global ranks of `group`'s members, in group-rank order."""
    return list(_get(group).ranks)


def get_global_rank(group, group_rank: int) -> int:
    """The global rank of `group`'s rank `group_rank`."""
    ranks = list(_get(group).ranks)
    if not 0 <= group_rank < len(ranks):
        raise ValueError(f"Group rank {group_rank} is not part of group {group}")
    return ranks[group_rank]


def get_group_rank(group, global_rank: int) -> int:
    """The rank in `group` of the process with global rank `global_rank`."""
    ranks = list(_get(group).ranks)
    if global_rank not in ranks:
        raise ValueError(f"Global rank {global_rank} is not part of group {group}")
    return ranks.index(global_rank)


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


def new_group(ranks=None, timeout=None, backend=None, pg_options=None,
              use_local_synchronization: bool = False, group_desc=None, device_id=None,
              sort_ranks: bool = True):
    """A group of some of the world's ranks, over an MPI communicator split from the world's.

    Every rank of the world must call it, with the same `ranks` (in the same order of calls),
    as in PyTorch. A member gets the group; any other rank gets
    `GroupMember.NON_GROUP_MEMBER`, on which collectives warn and do nothing. Pass the group as
    `group=` to the collectives; `src`/`dst` there stay global ranks (`group_src`/`group_dst`
    take ranks within the group).

    Args:
        ranks: the global ranks of the members (default: every rank).
        backend: None or "mpi"; timeout, pg_options, group_desc, device_id are accepted for
            PyTorch's signature.

    Example (`mpiexec -n 4`):
        >>> evens = dist.new_group([0, 2])
        >>> if dist.get_rank() % 2 == 0:
        ...     dist.all_reduce(t, group=evens)       # sums over ranks 0 and 2
    """
    w = _get()
    if backend not in (None, "mpi", Backend.MPI):
        raise RuntimeError(f"backend {backend!r} is not available in clgrad; groups run on MPI")
    if use_local_synchronization:
        raise NotImplementedError("use_local_synchronization=True: every rank of the world "
                                  "takes part in new_group in clgrad (MPI_Comm_split)")
    members = list(range(w.size)) if ranks is None else [int(r) for r in ranks]
    bad = [r for r in members if not 0 <= r < w.size]
    if bad:
        raise ValueError(f"new_group: ranks {bad} are not ranks of a world of {w.size}")
    if len(set(members)) != len(members):
        raise ValueError(f"new_group: ranks {members} repeat a rank")
    if not members:
        raise ValueError("new_group needs at least one rank")
    if sort_ranks:
        members.sort()
    inside = w.rank in members
    # a collective over the world: members get one communicator, ordered like `members`
    comm = w.comm.Split(0 if inside else w.MPI.UNDEFINED,
                        members.index(w.rank) if inside else 0)
    if not inside:
        return GroupMember.NON_GROUP_MEMBER
    group = ProcessGroup(comm, w.MPI, members)
    _groups.append(group)
    return group
