"""Where a training step's time goes, per kernel: each launch timed alone (synchronized).

    python tools/kernel_profile.py --device cl:0 [--model gpt|mlp|cnn] [--steps 3] [--shapes]
                                   [--quick]

Runs `clgrad.bench.training_cases` for one model (warm-up steps first, which build kernels), then
times `--steps` steps with every launch wrapped: the queue is drained, the launch enqueued, the
queue drained again, and the wall time between is charged to the kernel's name (`--shapes`
splits each name by its global size). The sum is kernel time plus ~30 µs of enqueue + finish
per launch; the step timed without the wrapper is printed beside it, the difference being the
cost of the synchronization and of Python between launches. A per-launch synchronization, not
an OpenCL profiling queue: clgrad's queues are created without profiling, and this way the tool
needs nothing from the runtime but the one launch entry point (`program.Kernel.__call__`).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import clgrad  # noqa: E402
from clgrad import bench  # noqa: E402
from clgrad.runtime import lazy, program  # noqa: E402


def family(name: str) -> str:
    """A kernel name without its dtype, rank and tile suffixes: 'gemm_nn', 'fused', 'softmax'."""
    base = re.split(r"_(?:f16|f32|f64|bf16|i\d+|u\d+|b\d+|r\d+|\d+)(?:_|$)", name)[0]
    return re.sub(r"_[0-9a-f]{8,}$", "", base)


def profile(device, model: str, steps: int, shapes: bool, sizes=None):
    clgrad.manual_seed(0)
    (case, step), = bench.training_cases(clgrad, sizes or bench.Sizes(), device, model)
    for _ in range(3):
        step()
    clgrad.synchronize(device)
    plain = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        clgrad.synchronize(device)
        plain.append(time.perf_counter() - t0)

    per = defaultdict(lambda: [0, 0.0])
    call = program.Kernel.__call__

    def timed(self, global_size, local_size, *args):
        if lazy.pending and lazy.owner is None:
            lazy.realize()              # the pending launches it would make, timed on their own
        self.queue.finish()
        t0 = time.perf_counter()
        call(self, global_size, local_size, *args)
        self.queue.finish()
        key = self.cl_kernel.function_name
        if shapes:
            key += " " + "x".join(map(str, global_size))
        rec = per[key]
        rec[0] += 1
        rec[1] += time.perf_counter() - t0

    program.Kernel.__call__ = timed
    try:
        wall = time.perf_counter()
        for _ in range(steps):
            step()
        clgrad.synchronize(device)
        wall = time.perf_counter() - wall
    finally:
        program.Kernel.__call__ = call
    return case, sorted(plain)[len(plain) // 2], wall / steps, {
        k: (n / steps, t / steps) for k, (n, t) in per.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--model", default="gpt", choices=("gpt", "mlp", "cnn"))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--shapes", action="store_true", help="split each kernel by global size")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--quick", action="store_true", help="the bench's quick sizes (for tests)")
    a = p.parse_args(argv)
    device = clgrad.device(a.device) if a.device else None
    with open("/proc/loadavg") as f:
        load0 = f.read().split()[0]
    case, plain, synced, per = profile(device, a.model, a.steps, a.shapes,
                                      bench.QUICK if a.quick else None)
    with open("/proc/loadavg") as f:
        load1 = f.read().split()[0]
    total = sum(t for _, t in per.values())
    launches = sum(n for n, _ in per.values())
    print(f"{case}: step {plain * 1e3:.1f} ms unsynchronized, {synced * 1e3:.1f} ms with a sync "
          f"per launch; {launches:.0f} launches, kernels {total * 1e3:.1f} ms; load "
          f"{load0} -> {load1}")
    fam = defaultdict(lambda: [0, 0.0])
    for k, (n, t) in per.items():
        f = fam[family(k.split(" ")[0])]
        f[0] += n
        f[1] += t
    for title, table in (("by family", fam), ("by kernel", per)):
        print(f"\n{title}:{'':50s} launches      ms   share")
        for k, (n, t) in sorted(table.items(), key=lambda kv: -kv[1][1])[:a.top]:
            print(f"  {k[:62]:62s} {n:8.0f} {t * 1e3:7.2f} {t / total:6.1%}")


if __name__ == "__main__":
    main()
