"""Time clgrad's GEMM against numpy in one process: GFLOP/s medians and the ratio to numpy.

    OCL_ICD_VENDORS=/work/icd python tools/bench_gemm.py --device cl:0 --sizes 512,1024,2048
    python tools/bench_gemm.py --device cl:1 --layout nt --tile nn,8,16,1,256

--layout nn|nt|tn picks which operand is transposed (by strides, no copy); --tile family,rm,vw,
rn,kb[,rows_first] times one configuration instead of the device's choice. Rounds interleave
clgrad and numpy so a busy machine slows both alike."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clgrad  # noqa: E402
from clgrad.runtime import gemm  # noqa: E402


def parse_tile(text):
    if not text:
        return None
    f, rm, vw, rn, kb, *rest = text.split(",")
    return gemm.Tile(f, int(rm), int(vw), int(rn), int(kb), bool(int(rest[0])) if rest else False)


def bench(device, n, dtype, layout, tile, rounds, stat=statistics.median):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    ta = clgrad.tensor(a, device=device)
    tb = clgrad.tensor(b, device=device)
    tc = clgrad.empty((n, n), dtype=ta.dtype, device=device)
    A = gemm.Operand(ta._buf.raw, 0, n, 1)
    B = gemm.Operand(tb._buf.raw, 0, n, 1)
    if layout == "nt":
        B = B.T
    if layout == "tn":
        A = A.T
    C = gemm.Operand(tc._buf.raw, 0, n, 1)

    def run():
        gemm.cpu_gemm(device, ta.dtype, C, A, B, n, n, n, tile=tile)
        device.synchronize()

    run()
    want = (a.T if layout == "tn" else a) @ (b.T if layout == "nt" else b)
    err = np.abs(tc.numpy() - want).max() / max(1.0, np.abs(want).max())
    tcl, tnp = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run()
        tcl.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.dot(a, b)
        tnp.append(time.perf_counter() - t0)
    flop = 2.0 * n ** 3
    g_cl = flop / stat(tcl) / 1e9
    g_np = flop / stat(tnp) / 1e9
    return g_cl, g_np, err


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default=None)
    p.add_argument("--sizes", default="512,1024,2048")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--layout", default="nn", choices=["nn", "nt", "tn"])
    p.add_argument("--tile", default="")
    p.add_argument("--stat", default="median", choices=["median", "min"],
                   help="min resists other processes on a shared machine")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    device = clgrad.runtime.get_device(args.device)
    tile = parse_tile(args.tile)
    print(f"{device.spec} {device.platform_name}: {device.name}  {args.dtype} {args.layout} "
          f"tile={tile.key() if tile else 'device choice'}")
    for n in (int(x) for x in args.sizes.split(",")):
        g_cl, g_np, err = bench(device, n, np.dtype(args.dtype), args.layout, tile, args.rounds,
                                min if args.stat == "min" else statistics.median)
        print(f"N={n:5d}  clgrad {g_cl:7.1f} GFLOP/s  numpy {g_np:7.1f}  ratio {g_cl / g_np:5.2f}"
              f"  rel.err {err:.1e}")


if __name__ == "__main__":
    main()
