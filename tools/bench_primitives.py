"""Time clgrad's primitive kernels against numpy: elementwise, reductions, matmul.

    python tools/bench_primitives.py                      # default sizes on the chosen device
    python tools/bench_primitives.py --device cl:0 --repeat 20 --matmul 256,512,1024

Each figure is the median of --repeat runs after a warm-up run (which also builds the kernel);
clgrad timings wait for the device to finish. The ratio is clgrad time / numpy time (below 1:
clgrad is faster). Not run by the tests: the machine is shared and timings are noisy."""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import clgrad  # noqa: E402


def median_time(fn, repeat: int, sync=None) -> float:
    fn()
    if sync:
        sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cases(sizes, mm_sizes, device):
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        x, y = clgrad.tensor(a, device=device), clgrad.tensor(b, device=device)
        yield f"add n={n}", lambda: x + y, lambda: a + b, 3 * n * 4, "GB/s"
        yield f"exp n={n}", lambda: x.exp(), lambda: np.exp(a), 2 * n * 4, "GB/s"
        yield f"sum n={n}", lambda: x.sum(), lambda: a.sum(), n * 4, "GB/s"
        r = int(np.sqrt(n))
        a2 = a[: r * r].reshape(r, r)
        x2 = clgrad.tensor(a2, device=device)
        yield f"sum rows {r}x{r}", lambda: x2.sum(dim=1), lambda: a2.sum(1), r * r * 4, "GB/s"
        yield (f"sum cols {r}x{r}", lambda: x2.sum(dim=0), lambda: a2.sum(0), r * r * 4, "GB/s")
        yield (f"argmax rows {r}x{r}", lambda: x2.argmax(dim=1), lambda: a2.argmax(1),
               r * r * 4, "GB/s")
        yield (f"transpose copy {r}x{r}", lambda: x2.T.contiguous(),
               lambda: np.ascontiguousarray(a2.T), 2 * r * r * 4, "GB/s")
    for n in mm_sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        x, y = clgrad.tensor(a, device=device), clgrad.tensor(b, device=device)
        yield f"matmul {n}x{n}", lambda: x @ y, lambda: a @ b, 2 * n ** 3, "GFLOP/s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--sizes", default="1000,1000000,16000000",
                    help="element counts for elementwise and reductions")
    ap.add_argument("--matmul", default="128,512", help="square matmul sizes")
    args = ap.parse_args(argv)
    device = clgrad.device(args.device)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    mm = [int(s) for s in args.matmul.split(",") if s]
    print(f"device {device.spec}: {device.name} ({device.platform_name}); "
          f"median of {args.repeat} runs")
    print(f"{'case':<26} {'clgrad':>10} {'numpy':>10} {'ratio':>7} {'clgrad rate':>14}")
    for name, cl_fn, np_fn, work, unit in cases(sizes, mm, device):
        tc = median_time(cl_fn, args.repeat, device.synchronize)
        tn = median_time(np_fn, args.repeat)
        scale = 1e9
        print(f"{name:<26} {tc * 1e3:8.3f}ms {tn * 1e3:8.3f}ms {tc / tn:7.2f} "
              f"{work / tc / scale:9.2f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
