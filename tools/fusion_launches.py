"""Launches per training step with fusion off and on, and the per-op CPU time of small ops.

    python tools/fusion_launches.py --device cl:0 [--names] [--quick] [--cpu-time]

Steps are `clgrad.bench.training_cases` (MLP 784-512-512-10, LeNet, the 2-layer Transformer);
the third step of each is counted with `runtime.stats()` (the first two build kernels and fill
caches). `--names` lists the kernels the fused step launches. `--cpu-time` adds process CPU
time per op (`time.process_time`, best of 15 interleaved repeats), fusion off / on, for a
16-element `a + b` read at once, one never read, and a 4-op chain read at once: CPU time, not
wall time, so a busy machine distorts it less.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import clgrad  # noqa: E402
from clgrad import bench, runtime  # noqa: E402
from clgrad.runtime import lazy, program  # noqa: E402


def step_launches(device, only, sizes, names=None):
    """(launches, fused, fused_ops, loss) of the third step of one bench model."""
    clgrad.manual_seed(0)
    (_, step), = bench.training_cases(clgrad, sizes, device, only)
    step()
    step()
    runtime.reset_stats()
    if names is not None:
        names.clear()
    loss = step()
    st = runtime.stats()
    return st["launches"], st["fused"], st["fused_ops"], loss


def _watch(names):
    """Collect the name of every kernel launched (a tool may wrap the launch; clgrad does not)."""
    call = program.Kernel.__call__

    def named(self, global_size, local_size, *args):
        if lazy.pending and lazy.owner is None:
            lazy.realize()              # what the launch itself does first, named in order
        names.append(self.cl_kernel.function_name)
        return call(self, global_size, local_size, *args)
    program.Kernel.__call__ = named


def cpu_per_op(device, n=400, repeat=15):
    a = clgrad.tensor(np.ones(16, np.float32), device=device)
    b = clgrad.tensor(np.ones(16, np.float32), device=device)

    def read_at_once():
        for _ in range(n):
            (a + b)._buf

    def never_read():
        for _ in range(n):
            a + b
        lazy.flush()

    def chain():
        for _ in range(n):
            ((((a + b) * a) - 1) * 2)._buf
    cases = [("a + b, read at once", read_at_once, 1), ("a + b, never read", never_read, 1),
             ("(((a + b) * a) - 1) * 2 read at once, per op", chain, 4)]
    best = {}
    for _ in range(repeat):
        for flag in (False, True):
            lazy.set_enabled(flag)
            for name, fn, k in cases:
                fn()
                t = time.process_time()
                fn()
                us = (time.process_time() - t) / n / k * 1e6
                best[name, flag] = min(best.get((name, flag), us), us)
    lazy.set_enabled(True)
    return [(name, best[name, False], best[name, True]) for name, _, _ in cases]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="small models (a smoke test)")
    p.add_argument("--names", action="store_true", help="list the fused step's kernels")
    p.add_argument("--cpu-time", action="store_true", help="per-op CPU time, fusion off / on")
    args = p.parse_args(argv)
    sizes = bench.QUICK if args.quick else bench.FULL
    names = [] if args.names else None
    if names is not None:
        _watch(names)
    print(f"{'step':12s} {'off':>6s} {'on':>6s} {'fused':>6s} {'ops':>5s}  loss equal")
    for only in ("mlp", "cnn", "gpt"):
        old = lazy.set_enabled(False)
        off = step_launches(args.device, only, sizes)
        lazy.set_enabled(True)
        on = step_launches(args.device, only, sizes, names)
        lazy.set_enabled(old)
        print(f"{only:12s} {off[0]:6d} {on[0]:6d} {on[1]:6d} {on[2]:5d}  {off[3] == on[3]}")
        for k in names or ():
            print(f"    {k}")
    if args.cpu_time:
        print(f"\n{'CPU time per op (µs)':48s} {'off':>7s} {'on':>7s}")
        for name, off, on in cpu_per_op(args.device):
            print(f"{name:48s} {off:7.2f} {on:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
