"""`DistributedDataParallel`: one model replica per process, kept identical by averaging the
gradients over all ranks (clgrad.distributed, on MPI). Gradients travel in buckets of about
`bucket_cap_mb`, in reverse parameter order, each all-reduced (non-blocking) as soon as the
backward pass has accumulated all of its parameters' gradients."""
from __future__ import annotations

import contextlib

from ... import autograd
from ... import distributed as dist
from ...tensor.shape import cat
from ...tensor.storage import device as _device
from ..modules.module import Module

__all__ = ["DistributedDataParallel"]


class DistributedDataParallel(Module):
    """Data-parallel training over processes: wrap the model after `init_process_group`.

    Args:
        module: the model, on this rank's device.
        device_ids: None, or the one device the module is on (checked).
        broadcast_buffers: copy rank 0's buffers (e.g. BatchNorm running statistics) to every
            rank at each forward, as PyTorch does.
        bucket_cap_mb: bucket size in MiB (default 25, PyTorch's).
        find_unused_parameters: walk the graph of each forward's output to find parameters the
            loss will not reach; their gradient counts as zero (created if it was None). Without
            it, such a parameter holds its bucket back and the next forward raises.
        output_device, dim, process_group (the world by default, or a `new_group`),
        check_reduction,
        gradient_as_bucket_view, static_graph: accepted for PyTorch's signature; no effect.

    At construction, rank 0's parameters and buffers are broadcast to every rank. After each
    backward (begun from this wrapper's forward), every parameter's `.grad` holds the mean over
    ranks. `no_sync()` skips the averaging: gradients accumulate locally and the next synced
    backward averages the sum. The wrapped model is `.module`; state_dict keys start with
    `module.`. Checkpoints: save on rank 0 only (`if dist.get_rank() == 0: clgrad.save(...)`).

    Example (`mpiexec -n 2 python train.py`):
        >>> dist.init_process_group("mpi")
        >>> model = DistributedDataParallel(Net().to(clgrad.get_default_device()))
        >>> loss_fn(model(x), y).backward()        # .grad: the mean over ranks
        >>> opt.step()
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb=None,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False, **kwargs):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel needs a process group: call "
                               "clgrad.distributed.init_process_group(\"mpi\") first")
        group = dist.GroupMember.WORLD if process_group is None else process_group
        if dist.get_rank(group) < 0:
            raise ValueError(f"DistributedDataParallel: this rank ({dist.get_rank()}) is not a "
                             "member of process_group")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have "
                               "any parameter that requires a gradient.")
        devices = {t.device for t in list(module.parameters()) + list(module.buffers())}
        if len(devices) > 1:
            raise ValueError(f"DistributedDataParallel needs the module on one device, found "
                             f"{sorted(str(d) for d in devices)}")
        if device_ids is not None:
            d = device_ids[0] if len(device_ids) == 1 else None
            here = next(iter(devices))
            if d is None or _device(f"cl:{d}" if isinstance(d, int) else d) != here:
                raise ValueError(f"device_ids={list(device_ids)}: pass None or the one device "
                                 f"this rank's module is on ({here})")
        self.module = module
        self.process_group = group
        self.device_ids = device_ids
        self.output_device = output_device
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 2 ** 20)
        self._buckets = _buckets(params, self.bucket_bytes_cap)
        self._bucket_of = {id(p): i for i, b in enumerate(self._buckets) for p in b}
        self._armed = False
        self._ready = [set() for _ in self._buckets]
        self._works = []
        if dist.get_world_size(group) > 1:
            _broadcast_coalesced(list(module.parameters()) + list(module.buffers()), group)
        self._handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]

    def forward(self, *inputs, **kwargs):
        if self._armed and any(self._ready) and len(self._works) < len(self._buckets):
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a "
                "new one: some parameters received no gradient in the last backward (parameters "
                "not used to produce the loss). Pass find_unused_parameters=True to "
                "DistributedDataParallel, or make every parameter take part in the loss. "
                f"Waiting for: {self._missing()}")
        buffers = list(self.module.buffers())
        if self.broadcast_buffers and buffers and dist.get_world_size(self.process_group) > 1:
            _broadcast_coalesced(buffers, self.process_group)
        out = self.module(*inputs, **kwargs)
        # one process has nothing to average: its gradients are already the mean
        self._armed = (autograd.is_grad_enabled() and self.require_backward_grad_sync and
                       dist.get_world_size(self.process_group) > 1)
        self._ready = [set() for _ in self._buckets]
        self._works = []
        if self._armed and self.find_unused_parameters:
            reached = _reached_leaves(out)
            for p in self.module.parameters():
                if p.requires_grad and id(p) not in reached:
                    self._grad_ready(p)
        return out

    @contextlib.contextmanager
    def no_sync(self):
        """Inside: backward passes accumulate gradients locally, without communication."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    # ---- the reduction -------------------------------------------------------------------------
    def _grad_ready(self, p):
        if not self._armed:
            return
        b = self._bucket_of[id(p)]
        self._ready[b].add(id(p))
        # start buckets in index order: MPI needs every rank to issue collectives alike
        while (len(self._works) < len(self._buckets) and
               len(self._ready[len(self._works)]) == len(self._buckets[len(self._works)])):
            self._launch(len(self._works))
        for _, work in self._works:
            work.is_completed()          # lets MPI progress the buckets already started
        if len(self._works) == len(self._buckets):
            self._finish()

    def _launch(self, b):
        grads = []
        for p in self._buckets[b]:
            if p.grad is None:       # unused here (find_unused_parameters): counts as zero
                with autograd.no_grad():
                    p.grad = p.detach().new_zeros(p.shape)
            grads.append(p.grad.detach().reshape(-1))
        flat = cat(grads)
        self._works.append((flat, dist.all_reduce(flat, op=dist.ReduceOp.AVG,
                                                     group=self.process_group, async_op=True)))

    def _finish(self):
        self._armed = False
        with autograd.no_grad():
            for b, (flat, work) in enumerate(self._works):
                work.wait()
                start = 0
                for p in self._buckets[b]:
                    n = p.numel()
                    p.grad.copy_(flat[start:start + n].view(p.grad.shape))
                    start += n

    def _missing(self):
        names = {id(p): n for n, p in self.module.named_parameters()}
        return [names[id(p)] for i, b in enumerate(self._buckets) for p in b
                if id(p) not in self._ready[i]][:10]


def _buckets(params, cap):
    """Parameters in reverse order (roughly the order backward produces their gradients), cut
    into buckets of at most `cap` bytes (a larger parameter gets its own) and of one dtype."""
    out, cur, size = [], [], 0
    for p in reversed(params):
        nbytes = p.numel() * p.element_size()
        if cur and (size + nbytes > cap or p.dtype != cur[0].dtype):
            out.append(cur)
            cur, size = [], 0
        cur.append(p)
        size += nbytes
    if cur:
        out.append(cur)
    return out


def _broadcast_coalesced(tensors, group):
    """Every rank's tensors become those of the group's first rank: one broadcast per dtype."""
    src = dist.get_global_rank(group, 0)
    groups = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    with autograd.no_grad():
        for ts in groups.values():
            flat = cat([t.detach().reshape(-1) for t in ts])
            dist.broadcast(flat, src, group=group)
            if dist.get_rank() == src:
                continue
            start = 0
            for t in ts:
                n = t.numel()
                t.copy_(flat[start:start + n].view(t.shape))
                start += n


def _reached_leaves(out):
    """ids of the leaf tensors the autograd graph of `out` (tensors, nested) reaches."""
    stack, seen, leaves = [], {}, set()    # seen keeps the nodes alive: their ids stay unique

    def collect(o):
        if hasattr(o, "grad_fn"):
            if o.grad_fn is not None:
                stack.append(o.grad_fn)
            elif o.requires_grad:
                leaves.add(id(o))
        elif isinstance(o, (tuple, list)):
            for x in o:
                collect(x)
        elif isinstance(o, dict):
            for x in o.values():
                collect(x)
    collect(out)
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen[id(fn)] = fn
        var = getattr(fn, "variable", None)
        if var is not None:
            leaves.add(id(var))
        for nxt, _ in getattr(fn, "next_functions", ()):
            if nxt is not None:
                stack.append(nxt)
    return leaves
