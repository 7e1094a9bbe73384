"""How a captured step's launches are cheapest to enqueue again (what runtime/capture.py does).

    python tools/bench_jit.py --device cl:0

Captures the small MLP step of `clgrad bench --section jit` and times, per launch (median of
interleaved rounds, enqueue time only, the queue drained before each round):
  replay      Capture.replay(): one kernel object per launch, arguments set once; the
              optimizer's scalars rewritten, then one enqueue per launch
  set+enqueue the shared kernel object of each entry point, all arguments set at each launch
              (what an eager launch does, without the Python above it)
  eager       the eager step itself (all of clgrad's Python per op), divided by its launches
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import clgrad  # noqa: E402
from clgrad import bench  # noqa: E402
from clgrad.runtime import capture  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    dev = clgrad.device(args.device) if args.device else clgrad.get_default_device()
    step, x, y = bench._mlp_step(clgrad, (784, 128, 128, 10), 32, dev)
    jitted = clgrad.jit(step)
    jitted(x, y)
    jitted(x, y)
    jitted(x, y)       # the first replay copies x and y into the capture's own input buffers
    cap = next(iter(jitted._entries.values())).capture
    eager, ex, ey = bench._mlp_step(clgrad, (784, 128, 128, 10), 32, dev)
    eager(ex, ey)
    with capture.Recording() as rec:
        eager(ex, ey)
    shared = [(k.cl_kernel, k.device.queue, g, loc, a) for k, g, loc, a in rec.launches]
    rec.close()

    def set_and_enqueue():
        for ck, q, g, loc, a in shared:
            ck(q, g, loc, *a)
    fns = {"replay": cap.replay, "set+enqueue": set_and_enqueue, "eager": lambda: eager(ex, ey)}
    times = {k: [] for k in fns}
    for _ in range(args.rounds):
        for k, fn in fns.items():
            dev.synchronize()
            t = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t) / cap.n_launches * 1e6)
    dev.synchronize()
    print(f"{dev.spec} ({dev.name}, {dev.platform_name}): {cap.n_launches} launches per step")
    for k, v in times.items():
        print(f"  {k:<12} {statistics.median(v):7.2f} us per launch")


if __name__ == "__main__":
    main()
