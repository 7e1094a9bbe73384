"""Run by tests/test_distributed.py under `mpiexec -n 2 python tests/_mpi_worker.py MODE`: each
rank checks its side and prints "OK MODE rank R"; any failure aborts the whole MPI job, so a
failing rank cannot leave the other waiting in a collective."""
import copy
import os
import sys
import traceback

import numpy as np

import clgrad
import clgrad.distributed as dist
from clgrad import nn
from clgrad.runtime import memory


def _close(a, b, what, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol,
                               atol=atol, err_msg=what)


def _rank_arrays(world, shape, dtype=np.float32, seed=0):
    """The array each rank contributes: rank r's comes from seed + r, so every rank knows all."""
    return [np.random.default_rng(seed + r).standard_normal(shape).astype(dtype)
            for r in range(world)]


def collectives():
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = clgrad.get_default_device()
    if not os.environ.get("CLGRAD_DEVICE"):
        devs = clgrad.device_list()
        assert dev == devs[dist.get_node_local_rank() % len(devs)], (dev, devs)
    xs = _rank_arrays(world, (5, 7))
    for op, ref in ((dist.ReduceOp.SUM, np.sum), (dist.ReduceOp.AVG, np.mean),
                    (dist.ReduceOp.MAX, np.max), (dist.ReduceOp.MIN, np.min),
                    (dist.ReduceOp.PRODUCT, np.prod)):
        t = clgrad.tensor(xs[rank])
        memory.reset_stats()
        dist.all_reduce(t, op=op)
        s = memory.stats()
        assert (s["d2h"], s["h2d"]) == (1, 1), s        # device -> host -> MPI -> host -> device
        assert t.device == dev and t.dtype == clgrad.float32
        _close(t.numpy(), ref(np.stack(xs).astype(np.float64), axis=0), f"all_reduce {op}")
    # a strided view, integers, and an async call
    base = clgrad.tensor(np.stack([xs[rank], xs[rank]], axis=-1))
    v = base[..., 1]
    dist.all_reduce(v)
    _close(base[..., 0].numpy(), xs[rank], "the other half of the buffer is untouched")
    _close(v.numpy(), np.sum(xs, axis=0), "all_reduce of a strided view")
    ints = clgrad.tensor(np.arange(6) * (rank + 1), dtype=clgrad.int64)
    work = dist.all_reduce(ints, async_op=True)
    work.wait()
    assert work.is_completed() and ints.tolist() == (np.arange(6) * sum(range(1, world + 1))
                                                     ).tolist()
    fp16 = [None] * world
    dist.all_gather_object(fp16, dev.has_fp16)   # every rank must issue the same collectives
    if all(fp16):
        h = clgrad.tensor(xs[rank], dtype=clgrad.float16)
        dist.all_reduce(h, op=dist.ReduceOp.MAX)
        assert h.dtype == clgrad.float16
        _close(h.float().numpy(), np.max(xs, axis=0), "float16 all_reduce", rtol=1e-3,
               atol=1e-3)
    # broadcast, reduce, the gathers, scatter
    b = clgrad.tensor(xs[rank])
    dist.broadcast(b, src=world - 1)
    _close(b.numpy(), xs[world - 1], "broadcast")
    r = clgrad.tensor(xs[rank])
    dist.reduce(r, dst=0)
    _close(r.numpy(), np.sum(xs, axis=0) if rank == 0 else xs[rank], "reduce")
    outs = [clgrad.zeros(5, 7) for _ in range(world)]
    dist.all_gather(outs, clgrad.tensor(xs[rank]))
    for i, o in enumerate(outs):
        _close(o.numpy(), xs[i], f"all_gather [{i}]")
    cat = clgrad.zeros(5 * world, 7)
    dist.all_gather_into_tensor(cat, clgrad.tensor(xs[rank]))
    _close(cat.numpy(), np.concatenate(xs), "all_gather_into_tensor")
    got = [clgrad.zeros(5, 7) for _ in range(world)] if rank == 0 else None
    dist.gather(clgrad.tensor(xs[rank]), got, dst=0)
    if rank == 0:
        for i, o in enumerate(got):
            _close(o.numpy(), xs[i], f"gather [{i}]")
    sc = clgrad.zeros(3)
    parts = [clgrad.full((3,), float(i)) for i in range(world)] if rank == 0 else None
    dist.scatter(sc, parts, src=0)
    assert sc.tolist() == [float(rank)] * 3
    objs = [None] * world
    dist.all_gather_object(objs, {"rank": rank})
    assert objs == [{"rank": i} for i in range(world)]
    lst = [f"from {rank}", rank]
    dist.broadcast_object_list(lst, src=0)
    assert lst == ["from 0", 0]
    dist.barrier()


def groups():
    import warnings
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2
    dev = clgrad.get_default_device()
    solo = [dist.new_group([0]), dist.new_group([1])]      # every rank calls new_group alike
    both = dist.new_group([1, 0])                           # sorted: group rank = global rank
    default = dist.new_group()
    mine, other = solo[rank], solo[1 - rank]
    assert isinstance(mine, dist.ProcessGroup) and other == dist.GroupMember.NON_GROUP_MEMBER
    assert (dist.get_rank(mine), dist.get_world_size(mine)) == (0, 1)
    assert (dist.get_rank(other), dist.get_world_size(other)) == (-1, -1)
    assert dist.get_process_group_ranks(mine) == [rank]
    assert dist.get_global_rank(mine, 0) == rank and dist.get_group_rank(mine, rank) == 0
    for g in (both, default):
        assert dist.get_rank(g) == rank and dist.get_world_size(g) == 2
        assert dist.get_process_group_ranks(g) == [0, 1]

    # all_reduce of random tensors: the numpy sum over the group's members
    arrays = _rank_arrays(world, (5, 7), seed=40)
    for g, members in ((both, [0, 1]), (default, [0, 1]), (mine, [rank])):
        t = clgrad.tensor(arrays[rank], device=dev)
        dist.all_reduce(t, group=g)
        _close(t.numpy(), np.sum([arrays[r] for r in members], axis=0), f"all_reduce {members}")
        t = clgrad.tensor(arrays[rank], device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=g)
        _close(t.numpy(), np.max([arrays[r] for r in members], axis=0), "MAX")
    # a rank outside the group: PyTorch's warning, nothing happens, nothing returned
    t = clgrad.tensor(arrays[rank], device=dev)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert dist.all_reduce(t, group=other) is None
        assert dist.broadcast(t, src=1 - rank, group=other) is None
        assert dist.barrier(group=other) is None
    assert len(caught) == 3 and "does not belong to the given group" in str(caught[0].message)
    _close(t.numpy(), arrays[rank], "untouched outside the group")

    # roots: src/dst are global ranks, group_src/group_dst ranks in the group
    t = clgrad.tensor(arrays[rank], device=dev)
    dist.broadcast(t, src=1, group=both)
    _close(t.numpy(), arrays[1], "broadcast src=1")
    t = clgrad.tensor(arrays[rank], device=dev)
    dist.broadcast(t, group=mine, group_src=0)
    _close(t.numpy(), arrays[rank], "broadcast in a group of one")
    try:
        dist.broadcast(t, src=1 - rank, group=mine)
    except ValueError as e:
        assert f"global rank {1 - rank} is not part of the group" in str(e), e
    else:
        raise AssertionError("a root outside the group must raise")
    t = clgrad.tensor(arrays[rank], device=dev)
    dist.reduce(t, dst=1, group=both)
    _close(t.numpy(), arrays[0] + arrays[1] if rank == 1 else arrays[rank], "reduce dst=1")
    outs = [clgrad.zeros(5, 7, device=dev) for _ in range(2)]
    dist.all_gather(outs, clgrad.tensor(arrays[rank], device=dev), group=both)
    for r in range(2):
        _close(outs[r].numpy(), arrays[r], f"all_gather[{r}]")
    one = [clgrad.zeros(5, 7, device=dev)]
    work = dist.all_gather(one, clgrad.tensor(arrays[rank], device=dev), group=mine,
                           async_op=True)
    work.wait()
    _close(one[0].numpy(), arrays[rank], "all_gather in a group of one")
    objs = [None, None]
    dist.all_gather_object(objs, {"rank": rank}, group=both)
    assert objs == [{"rank": 0}, {"rank": 1}]
    lst = [f"from {rank}"]
    dist.broadcast_object_list(lst, src=1, group=both)
    assert lst == ["from 1"]
    dist.barrier(group=mine)
    dist.barrier(group=both)
    dist.destroy_process_group(mine)
    try:
        dist.all_reduce(t, group=mine)
    except ValueError as e:
        assert "destroyed" in str(e), e
    else:
        raise AssertionError("a destroyed group must raise")
    for bad in ([0, 0], [2], []):
        try:
            dist.new_group(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"new_group({bad}) must raise")


def _net(seed):
    clgrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 16), nn.ReLU(),
                         nn.Linear(16, 3))


def ddp():
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = clgrad.get_default_device()
    rng = np.random.default_rng(123)
    steps, per_rank = 5, 4
    X = rng.standard_normal((steps, per_rank * world, 6)).astype(np.float32)
    Y = rng.standard_normal((steps, per_rank * world, 3)).astype(np.float32)
    # every rank starts from different weights: the constructor's broadcast makes them rank 0's
    model = _net(seed=rank).to(dev)
    reference = copy.deepcopy(model) if rank == 0 else None
    net = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.001)   # many buckets
    assert len(net._buckets) > 2 and list(net.state_dict())[0] == "module.0.weight"
    opt = clgrad.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    for i in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(clgrad.tensor(X[i, mine])), clgrad.tensor(Y[i, mine]))
        memory.reset_stats()
        loss.backward()
        s = memory.stats()
        # one trip to the host and back per bucket, nothing else
        assert s["d2h"] == len(net._buckets) and s["h2d"] == len(net._buckets), s
        opt.step()
    if rank == 0:            # one process, the same global batch
        ref_opt = clgrad.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
        for i in range(steps):
            ref_opt.zero_grad()
            nn.functional.mse_loss(reference(clgrad.tensor(X[i])), clgrad.tensor(Y[i])).backward()
            ref_opt.step()
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            _close(p.detach().numpy(), q.detach().numpy(), f"DDP vs one process: {name}")
    for name, p in model.named_parameters():          # and every rank holds the same weights
        mine_w = p.detach().clone()
        dist.broadcast(mine_w, src=0)
        _close(p.detach().numpy(), mine_w.numpy(), f"rank {rank} vs rank 0: {name}")


def ddp_groups():
    # DDP over a group of one rank: no communication, each rank trains its own model on its
    # own data; over new_group([0, 1]): the world's result (weights equal on both ranks)
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = clgrad.get_default_device()
    singles = [dist.new_group([r]) for r in range(world)]
    both = dist.new_group(list(range(world)))
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3, 4 * world, 6)).astype(np.float32)
    Y = rng.standard_normal((3, 4 * world, 3)).astype(np.float32)
    mine = slice(rank * 4, (rank + 1) * 4)
    for group in (singles[rank], both):
        model = _net(seed=rank).to(dev)
        solo = copy.deepcopy(model)
        net = nn.parallel.DistributedDataParallel(model, process_group=group)
        opt = clgrad.optim.SGD(net.parameters(), lr=0.05)
        for i in range(3):
            opt.zero_grad()
            memory.reset_stats()
            nn.functional.mse_loss(net(clgrad.tensor(X[i, mine])),
                                   clgrad.tensor(Y[i, mine])).backward()
            if group is singles[rank]:
                assert memory.stats()["d2h"] == 0, "a group of one rank communicates nothing"
            opt.step()
        if group is singles[rank]:
            solo_opt = clgrad.optim.SGD(solo.parameters(), lr=0.05)
            for i in range(3):
                solo_opt.zero_grad()
                nn.functional.mse_loss(solo(clgrad.tensor(X[i, mine])),
                                       clgrad.tensor(Y[i, mine])).backward()
                solo_opt.step()
            for (name, p), q in zip(model.named_parameters(), solo.parameters()):
                _close(p.detach().numpy(), q.detach().numpy(), f"group of one vs alone: {name}")
        else:
            for name, p in model.named_parameters():
                w = p.detach().clone()
                dist.broadcast(w, src=0, group=both)
                _close(p.detach().numpy(), w.numpy(), f"rank {rank} vs rank 0 in a group: {name}")
    other = singles[1 - rank] if world == 2 else None
    if other is not None:
        try:
            nn.parallel.DistributedDataParallel(_net(0).to(dev), process_group=other)
        except ValueError as e:
            assert "not a member" in str(e), e
        else:
            raise AssertionError("DDP over a group this rank is not in must raise")


def ddp_overlap():
    # the bucket all-reduces start from post-accumulate hooks while backward still runs: log
    # each autograd node as it starts and each all_reduce as DDP issues it, and compare order
    rank = dist.get_rank()
    dev = clgrad.get_default_device()
    net = nn.parallel.DistributedDataParallel(_net(0).to(dev), bucket_cap_mb=1e-4)
    x = clgrad.tensor(_rank_arrays(dist.get_world_size(), (4, 6), seed=30)[rank])
    events = []
    issue = dist.all_reduce

    def logged(tensor, *args, **kwargs):
        events.append("all_reduce")
        return issue(tensor, *args, **kwargs)
    dist.all_reduce = logged
    try:
        loss = net(x).square().sum()
        stack, seen = [loss.grad_fn], set()
        while stack:
            fn = stack.pop()
            if id(fn) in seen or not hasattr(fn, "register_prehook") or \
                    type(fn).__name__ == "AccumulateGrad":
                continue
            seen.add(id(fn))
            fn.register_prehook(lambda g, name=fn.name(): events.append(name))
            stack.extend(nxt for nxt, _ in fn.next_functions if nxt is not None)
        loss.backward()
    finally:
        dist.all_reduce = issue
    nodes = [i for i, e in enumerate(events) if e != "all_reduce"]
    reduces = [i for i, e in enumerate(events) if e == "all_reduce"]
    assert len(reduces) == len(net._buckets) > 2, events
    assert reduces[0] < nodes[-1], f"no all_reduce started before the last node: {events}"
    # one parameter per bucket: only the first layer's weight may wait for the last node
    assert len(net._buckets) == len(list(net.parameters()))
    assert sum(r < nodes[-1] for r in reduces) >= len(reduces) - 1, events
    plain = _net(0).to(dev)
    plain(x).square().sum().backward()
    for (name, p), q in zip(net.module.named_parameters(), plain.parameters()):
        expect = q.grad.clone()
        dist.all_reduce(expect, op=dist.ReduceOp.AVG)
        _close(p.grad.numpy(), expect.numpy(), f"overlapped DDP gradient: {name}")


def ddp_no_sync_and_unused():
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = clgrad.get_default_device()
    net = nn.parallel.DistributedDataParallel(_net(0).to(dev))
    plain = copy.deepcopy(net.module)              # the same weights, no DDP
    xa = clgrad.tensor(_rank_arrays(world, (4, 6), seed=10)[rank])
    xb = clgrad.tensor(_rank_arrays(world, (4, 6), seed=20)[rank])
    with net.no_sync():
        net(xa).square().sum().backward()
    net(xb).square().sum().backward()            # synced: averages the accumulated sum
    plain(xa).square().sum().backward()
    plain(xb).square().sum().backward()
    for (name, p), q in zip(net.module.named_parameters(), plain.parameters()):
        expect = q.grad.clone()
        dist.all_reduce(expect, op=dist.ReduceOp.AVG)
        _close(p.grad.numpy(), expect.numpy(), f"no_sync, then a synced backward: {name}")

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 2)
            self.unused = nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x)
    clgrad.manual_seed(0)
    strict = nn.parallel.DistributedDataParallel(Branchy().to(dev))
    x = clgrad.ones(2, 3)
    strict(x).sum().backward()
    try:
        strict(x)
    except RuntimeError as e:
        assert "find_unused_parameters=True" in str(e) and "unused.weight" in str(e), e
    else:
        raise AssertionError("a parameter without a gradient must stop the next forward")
    clgrad.manual_seed(0)
    loose = nn.parallel.DistributedDataParallel(Branchy().to(dev), find_unused_parameters=True)
    for _ in range(2):
        loose(x * (rank + 1)).sum().backward()
    assert float(loose.module.unused.weight.grad.abs().sum()) == 0.0
    # d sum(W x_r) / dW = the column sums of x_r (2 rows of rank + 1), averaged over ranks
    # and accumulated over the two backward passes
    scale = 2 * 2 * np.mean(np.arange(1, world + 1))
    _close(loose.module.used.weight.grad.numpy(), np.full((2, 3), scale), "find_unused")


def main():
    mode = sys.argv[1]
    dist.init_process_group(backend="mpi", init_method="env://")
    try:
        {"collectives": collectives, "groups": groups, "ddp": ddp, "ddp_overlap": ddp_overlap,
         "ddp_groups": ddp_groups,
         "ddp_no_sync_and_unused": ddp_no_sync_and_unused}[mode]()
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        from mpi4py import MPI
        MPI.COMM_WORLD.Abort(1)
    print(f"OK {mode} rank {dist.get_rank()} on {clgrad.get_default_device()}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
