"""How much of DistributedDataParallel's gradient all-reduce runs while backward is still going.

    mpiexec -n 2 python tools/ddp_overlap.py [--device cl:0] [--layers 6] [--width 768]
                                             [--batch 64] [--bucket-mb 2] [--steps 8]

Trains an MLP (layers x Linear(width, width) + Tanh) for `steps` steps; the first two warm up.
Timestamps come from instrumenting, not from clgrad's code paths: each autograd node's start and
end (node pre-hooks and hooks), each bucket's all_reduce (when DDP issues it: the host copy of
the bucket, then MPI's non-blocking Iallreduce) and when its Work completes (a poll inside a
later hook, or the final wait). Rank 0 prints medians over the measured steps:

  backward       wall time of loss.backward() with DDP
  no_sync        the same backward inside no_sync() (no communication at all)
  walk           from backward's start to the end of its last autograd node
  tail           from that node's end until backward() returns (waits + copy-back)
  issued early   buckets issued before the last node started, of all buckets
  done early     buckets whose completion a poll saw before the last node ended
  in flight      of the summed time buckets spend between issue and completion, the part that
                 falls before the last node ended. With MPICH a message moves only while some
                 MPI call runs (DDP polls at every parameter hook), so this is time in flight
                 beside the walk, an upper bound on the transfer time it hides
The device work of a node runs asynchronously: "walk" ends when the host has issued the last
node, and DDP's host copy of each bucket waits for the kernels that produced it.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import clgrad  # noqa: E402
import clgrad.distributed as dist  # noqa: E402
from clgrad import nn  # noqa: E402
from clgrad.distributed import collectives  # noqa: E402


class _Log:
    def __init__(self):
        self.events = []              # (kind, time, extra)

    def add(self, kind, extra=None):
        self.events.append((kind, time.perf_counter(), extra))


def _instrument(log):
    issue = dist.all_reduce
    complete = collectives.Work._complete

    def all_reduce(tensor, *a, **k):
        log.add("issue")
        work = issue(tensor, *a, **k)
        if work is not None:
            work._tag = len([e for e in log.events if e[0] == "issue"])
        log.add("posted")
        return work

    def _complete(self):
        log.add("done", getattr(self, "_tag", None))
        return complete(self)
    dist.all_reduce = all_reduce
    collectives.Work._complete = _complete


def _hook_nodes(root, log):
    stack, seen = [root], set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen or type(fn).__name__ == "AccumulateGrad":
            continue
        seen.add(id(fn))
        fn.register_prehook(lambda g: log.add("node"))
        fn.register_hook(lambda gi, go: log.add("node_end"))
        stack.extend(nxt for nxt, _ in fn.next_functions)


def _measure(log, t0, t1):
    ev = [e for e in log.events if t0 <= e[1] <= t1]
    starts = [t for k, t, _ in ev if k == "node"]
    ends = [t for k, t, _ in ev if k == "node_end"]
    last_start, walk_end = max(starts), max(ends)
    issues = [t for k, t, _ in ev if k == "issue"]
    done = {x: t for k, t, x in ev if k == "done"}
    total = over = 0.0
    for i, t in enumerate(issues, start=1):
        end = done.get(i, t1)
        total += end - t
        over += max(0.0, min(end, walk_end) - t)
    return dict(walk=walk_end - t0, tail=t1 - walk_end,
                early=sum(t < last_start for t in issues), buckets=len(issues),
                done_early=sum(t < walk_end for t in done.values()),
                overlap=over / total if total else 0.0, comm=total)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="every rank's device (default: DDP's pick)")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--bucket-mb", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    dist.init_process_group("mpi", device_id=args.device)
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = clgrad.get_default_device()
    clgrad.manual_seed(0)
    layers = []
    for _ in range(args.layers):
        layers += [nn.Linear(args.width, args.width), nn.Tanh()]
    model = nn.Sequential(*layers).to(dev)
    net = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    opt = clgrad.optim.SGD(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(rank)
    x = clgrad.tensor(rng.standard_normal((args.batch, args.width), dtype=np.float32), device=dev)
    log = _Log()
    _instrument(log)
    rows, plain = [], []
    for step in range(args.steps):
        for synced in (True, False):
            opt.zero_grad()
            dist.barrier()
            if synced:
                loss = net(x).square().mean()
                _hook_nodes(loss.grad_fn, log)
                clgrad.synchronize()
                t0 = time.perf_counter()
                loss.backward()
                clgrad.synchronize()
                t1 = time.perf_counter()
            else:
                with net.no_sync():
                    loss = net(x).square().mean()
                    clgrad.synchronize()
                    t0 = time.perf_counter()
                    loss.backward()
                    clgrad.synchronize()
                    t1 = time.perf_counter()
            if step >= 2:
                if synced:
                    rows.append(dict(_measure(log, t0, t1), backward=t1 - t0))
                else:
                    plain.append(t1 - t0)
            log.events.clear()
    if rank == 0:
        med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
        params = sum(p.numel() for p in model.parameters())
        print(f"{world} ranks on {dev} (CLGRAD_DEVICE={os.environ.get('CLGRAD_DEVICE', '-')}); "
              f"MLP {args.layers} x {args.width}, batch {args.batch}/rank, {params / 1e6:.2f} M "
              f"parameters, {len(net._buckets)} buckets of <= {args.bucket_mb} MiB; "
              f"medians of {len(rows)} steps; load {open('/proc/loadavg').read().split()[:3]}")
        print(f"backward {1e3 * med('backward'):.1f} ms   no_sync "
              f"{1e3 * statistics.median(plain):.1f} ms   walk {1e3 * med('walk'):.1f} ms   "
              f"tail {1e3 * med('tail'):.1f} ms")
        print(f"issued early {med('early'):.0f}/{med('buckets'):.0f} buckets   done early "
              f"{med('done_early'):.0f}   in flight {100 * med('overlap'):.0f}% of "
              f"{1e3 * med('comm'):.1f} ms bucket-time")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
