"""Per-op cost of clgrad's eager path against PyTorch CPU, as the best of many short repeats.

    python tools/bench_overhead.py --device cl:0 [--repeat 40]

The minimum over repeats is what a call costs when nothing else interrupts it, so it survives a
busy machine better than `clgrad bench`'s medians (which are the figures to publish from a quiet
one). PyTorch runs on one thread here, so its workers cannot spin against other processes.
"""
from __future__ import annotations

import argparse
import sys
import timeit
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import clgrad  # noqa: E402
from clgrad import bench  # noqa: E402


def cases(lib, device):
    kw = {"device": device} if lib is clgrad else {}
    a = np.arange(16, dtype=np.float32)
    x = lib.tensor(a, **kw)
    w = lib.tensor(a, **kw).requires_grad_(True)

    def backward():
        w.grad = None
        (w * w).sum().backward()
    small = replace(bench.FULL, mlp=bench.FULL.overhead_mlp, mlp_batch=bench.FULL.overhead_batch)
    lib.manual_seed(0)
    (name, step), = bench.training_cases(lib, small, device if lib is clgrad else None, "mlp")
    return [("a + b, 16 elements", lambda: x + x, 200),
            ("x.sum(), 16 elements", lambda: x.sum(), 200),
            ("(x*x).sum().backward(), 16 elements", backward, 50),
            (f"{name}, step", step, 10)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeat", type=int, default=40)
    args = ap.parse_args()
    device = clgrad.device(args.device) if args.device else clgrad.get_default_device()
    libs = [clgrad]
    torch = bench._torch()
    if torch is not None:
        torch.set_num_threads(1)
        libs.append(torch)
    best = {}
    for lib in libs:
        for case, fn, number in cases(lib, device):
            def loop(fn=fn, number=number):
                for _ in range(number):
                    fn()
                clgrad.synchronize(device)      # each repeat waits for its own kernels
            loop()
            t = min(timeit.repeat(loop, number=1, repeat=args.repeat)) / number
            best.setdefault(case, {})[lib.__name__] = t * 1e6
    print(f"{device.spec} = {device.name}, {device.platform_name}; best of {args.repeat}, µs per call")
    for case, r in best.items():
        line = f"{case:45s} clgrad {r['clgrad']:9.1f}"
        if "torch" in r:
            line += f"   torch {r['torch']:8.1f}   clgrad/torch {r['clgrad'] / r['torch']:6.2f}"
        print(line)


if __name__ == "__main__":
    main()
