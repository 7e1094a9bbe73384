"""Time the LeNet convolution layers (forward + backward, batch 64) on clgrad and PyTorch CPU in
one process, interleaved; prints milliseconds per step and PyTorch's time over clgrad's.

    python tools/bench_conv.py --device cl:0 --threads 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clgrad  # noqa: E402
import clgrad.nn.functional as F  # noqa: E402

LAYERS = [("conv 1->6 5x5 on 28x28", (64, 1, 28, 28), (6, 1, 5, 5)),
          ("conv 6->16 5x5 on 12x12", (64, 6, 12, 12), (16, 6, 5, 5))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stat", default="median", choices=["median", "min"],
                   help="min resists other processes on a shared machine")
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    device = clgrad.runtime.get_device(args.device)
    print(f"{device.spec} {device.platform_name}: {device.name}; torch threads {args.threads}")
    rng = np.random.default_rng(0)
    for name, xs, ws in LAYERS:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32) * 0.1
        b = rng.standard_normal(ws[0]).astype(np.float32)
        cx = clgrad.tensor(x, device=device, requires_grad=True)
        cw = clgrad.tensor(w, device=device, requires_grad=True)
        cb = clgrad.tensor(b, device=device, requires_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        tw = torch.tensor(w, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True)

        def step_cl():
            cx.grad = cw.grad = cb.grad = None
            F.conv2d(cx, cw, cb).relu().sum().backward()
            cx.grad.numpy()
            return cw.grad.numpy()

        def step_torch():
            tx.grad = tw.grad = tb.grad = None
            torch.nn.functional.conv2d(tx, tw, tb).relu().sum().backward()
            return tw.grad.numpy()

        np.testing.assert_allclose(step_cl(), step_torch(), rtol=2e-3, atol=2e-2)
        tcl, tto = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            step_cl()
            tcl.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            step_torch()
            tto.append(time.perf_counter() - t0)
        stat = min if args.stat == "min" else statistics.median
        mc, mt = stat(tcl) * 1e3, stat(tto) * 1e3
        print(f"{name:26s} fwd+bwd  clgrad {mc:7.2f} ms  torch {mt:7.2f} ms  "
              f"speed vs torch {mt / mc:5.2f}")


if __name__ == "__main__":
    main()
