"""Time clgrad's matmul (`x @ y`) against numpy in one process: GFLOP/s and the ratio to numpy.

    python tools/bench_gemm.py --device cl:0 --sizes 512,1024,2048
    python tools/bench_gemm.py --device cl:1 --family cpu,blocked --layout nt --stat min

--layout nn|nt|tn picks which operand is transposed (by strides, no copy); --family times the
kernel families side by side (cpu: vector register blocks, blocked: scalar register blocks,
local: local-memory tiles; default: the device's choice);
--tile family,rm,vw,rn,kb[,rows_first[,LxL]] times one CPU tile. Rounds interleave the
variants and numpy so a busy machine slows all alike; the timing is `clgrad bench`'s own (clgrad.bench.interleaved: two warm-up calls, a pause before
each timed call so the previous library's threads are idle, clgrad synced after each call), so
the two tools agree on the same sizes.
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
from clgrad.bench import interleaved  # noqa: E402
from clgrad.runtime import gemm  # noqa: E402


def parse_tile(text):
    if not text:
        return None
    f, rm, vw, rn, kb, *rest = text.split(",")
    local = tuple(int(v) for v in rest[1].split("x")) if len(rest) > 1 else None
    return gemm.Tile(f, int(rm), int(vw), int(rn), int(kb), bool(int(rest[0])) if rest else False,
                     local)


def bench(device, n, dtype, layout, families, tile, rounds, stat):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    ta = clgrad.tensor(a.T.copy() if layout == "tn" else a, device=device)
    tb = clgrad.tensor(b.T.copy() if layout == "nt" else b, device=device)
    x = ta.mT if layout == "tn" else ta
    y = tb.mT if layout == "nt" else tb
    pick, choose = gemm.family_for, gemm.choose
    if tile is not None:
        gemm.choose = lambda dev, fam, dt, cls="large": tile if fam == tile.family else choose(
            dev, fam, dt, cls)

    def run(fam):
        gemm.family_for = pick if fam == "default" else (lambda dev, dt: fam)
        c = x @ y
        device.synchronize()
        return c

    want = a @ b
    errs = {f: float(np.abs(run(f).numpy() - want).max() / np.abs(want).max()) for f in families}
    fns = {f: (lambda f=f: run(f)) for f in families}
    fns["numpy"] = lambda: np.dot(a, b)
    try:
        times = interleaved(fns, rounds, stat=stat)
    finally:
        gemm.family_for, gemm.choose = pick, choose
    flop = 2.0 * n ** 3
    return {f: flop / t / 1e9 for f, t in times.items()}, errs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default=None)
    p.add_argument("--sizes", default="512,1024,2048")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--layout", default="nn", choices=["nn", "nt", "tn"])
    p.add_argument("--family", default="default")
    p.add_argument("--tile", default="")
    p.add_argument("--stat", default="median", choices=["median", "min"],
                   help="min resists other processes on a shared machine")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    device = clgrad.runtime.get_device(args.device)
    tile = parse_tile(args.tile)
    families = args.family.split(",")
    stat = min if args.stat == "min" else statistics.median
    print(f"{device.spec} {device.platform_name}: {device.name}  {args.dtype} {args.layout} "
          f"{args.stat} of {args.rounds}" + (f"  tile={tile.key()}" if tile else ""))
    for n in (int(x) for x in args.sizes.split(",")):
        g, errs = bench(device, n, np.dtype(args.dtype), args.layout, families, tile,
                        args.rounds, stat)
        cols = "  ".join(f"{f} {g[f]:6.1f} ({g[f] / g['numpy']:.2f}x numpy)" for f in families)
        print(f"N={n:5d}  {cols}  numpy {g['numpy']:6.1f} GFLOP/s  "
              f"max rel.err {max(errs.values()):.1e}")


if __name__ == "__main__":
    main()
