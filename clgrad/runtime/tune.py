"""`clgrad tune`: time GEMM tiles on a device within a budget and store the winners per device and
driver (runtime/gemm.py reads them back on the next run)."""
from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, replace

import numpy as np

from ..dtypes import DType, float32
from . import gemm
from .device import Device
from .memory import Buffer

OPS = ("matmul", "conv2d")


@dataclass(frozen=True)
class Problem:
    """One timed GEMM: batch x (M x K) @ (K x N); nt: B is stored transposed."""
    family: str
    M: int
    N: int
    K: int
    batch: int = 1

    @property
    def flop(self) -> float:
        return 2.0 * self.batch * self.M * self.N * self.K


# per op, the shape classes it tunes (runtime/gemm.py's shape_class) and per class and family
# the problems timed: matmul's medium (512-1024, k-blocks optional) and large products (2048:
# k-blocking pays); conv2d: the GEMMs of the LeNet layers (batch 64) that conv's forward (nn) and
# weight gradient (nt) run
PROBLEMS = {
    "matmul": {
        "medium": {"nn": [Problem("nn", 512, 512, 512), Problem("nn", 1024, 1024, 1024)],
                   "nt": [Problem("nt", 512, 512, 512)]},
        "large": {"nn": [Problem("nn", 2048, 2048, 2048)],
                  "nt": [Problem("nt", 1024, 1024, 2048)]}},
    "conv2d": {
        "small": {"nn": [Problem("nn", 6, 576, 25, 64), Problem("nn", 16, 64, 150, 64)],
                  "nt": [Problem("nt", 6, 25, 576, 64), Problem("nt", 16, 150, 64, 64)]}},
}


def candidates(device: Device, family: str, dt: DType, cls: str = "large") -> list:
    """Tiles to try: the shipped default and the safe tile first, then the default with one
    parameter changed, then a grid."""
    v = 64 // dt.itemsize
    base = gemm.default_tile(device, family, dt, cls)
    first = [base, gemm.safe_tile(family, dt)]
    locals_ = (None, (4, 4), (8, 8), (2, 8), (16, 1))
    first += [replace(base, local=loc) for loc in locals_]
    first += [replace(base, kb=kb) for kb in (128, 256, 512, 0)]
    first += [replace(base, rows_first=not base.rows_first)]
    if family == "nn":
        first += [replace(base, rm=rm) for rm in (4, 6, 12)]
        grid = [gemm.Tile("nn", rm, vw, kb=kb, rows_first=rf, local=loc)
                for loc, kb, rm, vw, rf in itertools.product(
                    locals_, (256, 512, 128, 0), (8, 4, 12, 6), (v, v // 2), (False, True))]
    else:
        first += [replace(base, rm=rm, rn=rn) for rm, rn in ((4, 2), (2, 4), (8, 2), (2, 2))]
        grid = [gemm.Tile("nt", rm, vw, rn=rn, kb=kb, local=loc)
                for loc, kb, (rm, rn), vw in itertools.product(
                    locals_, (0, 512, 256), ((4, 2), (4, 4), (2, 4), (2, 2), (8, 2)),
                    (v // 2, v))]
    out = []
    for t in first + grid:
        if t not in out:
            out.append(t)
    return out


class _Operands:
    def __init__(self, device: Device, dt: DType, p: Problem):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((p.batch, p.M, p.K)).astype(dt.np)
        b = rng.standard_normal((p.batch, p.K, p.N)).astype(dt.np)
        self.b = b
        host_b = np.ascontiguousarray(b.transpose(0, 2, 1)) if p.family == "nt" else b
        self.bufs = [Buffer(device, x.nbytes) for x in (self.a, host_b)]
        self.bufs[0].write(self.a)
        self.bufs[1].write(host_b)
        self.cbuf = Buffer(device, p.batch * p.M * p.N * dt.itemsize)
        self.A = gemm.Operand(self.bufs[0].raw, 0, p.K, 1, (p.M * p.K,))
        if p.family == "nt":
            self.B = gemm.Operand(self.bufs[1].raw, 0, 1, p.K, (p.K * p.N,))
        else:
            self.B = gemm.Operand(self.bufs[1].raw, 0, p.N, 1, (p.K * p.N,))
        self.C = gemm.Operand(self.cbuf.raw, 0, p.N, 1, (p.M * p.N,))


def measure(device: Device, dt: DType, tile, p: Problem, ops: _Operands, reps: int = 3) -> float:
    """GFLOP/s of `tile` (or "blocked": the scalar kernel) on `p` (the best of `reps` after one
    warm-up: on a shared machine the fastest run is the one least disturbed, so the ranking of
    tiles follows the kernels rather than the neighbours); 0 if its result is wrong."""
    def run():
        if tile == "blocked":
            gemm.matmul(device, dt, dt.ctype, ops.C, ops.A, ops.B, p.M, p.N, p.K, (p.batch,),
                        False, family="blocked")
        else:
            gemm.cpu_gemm(device, dt, ops.C, ops.A, ops.B, p.M, p.N, p.K, (p.batch,), tile=tile)
        device.synchronize()

    run()
    got = ops.cbuf.read(np.empty((p.batch, p.M, p.N), dt.np))
    if not np.allclose(got, ops.a @ ops.b, rtol=1e-3, atol=1e-3):
        return 0.0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return p.flop / min(times) / 1e9


def tune(device: Device, ops=("matmul",), budget: float = 60.0, dtypes=(float32,),
         progress=None, clock=time.monotonic, measure_fn=measure) -> dict:
    """Try candidates per (op, shape class, family, dtype) until `budget` seconds (shared
    evenly) are spent; store and return the winners {store key: entry}. Risky tiles are probed
    first."""
    targets = [(op, cls, fam, dt) for op in ops for cls in PROBLEMS[op] for fam in ("nn", "nt")
               for dt in dtypes]
    if not targets:
        return {}
    share = budget / len(targets)
    winners = {}
    for op, cls, fam, dt in targets:
        start = clock()
        problems = PROBLEMS[op][cls][fam]
        operands = [_Operands(device, dt, p) for p in problems]
        best, best_score, tried = None, -1.0, 0
        for tile in candidates(device, fam, dt, cls):
            if best is not None and clock() - start >= share:
                break
            if tile.risky(dt) and not gemm.probe_ok(device, dt, tile):
                continue
            tried += 1
            scores = [measure_fn(device, dt, tile, p, o) for p, o in zip(problems, operands)]
            score = statistics.geometric_mean([max(s, 1e-9) for s in scores])
            if progress:
                progress(f"{op} {cls} {fam} {dt.name} {tile.key()}: {score:.1f} GFLOP/s")
            if score > best_score:
                best, best_score = tile, score
        del operands
        if best is not None:
            key = f"matmul/{fam}/{dt.name}/{cls}"
            winners[key] = {"tile": _asdict(best), "gflops": round(best_score, 2),
                            "tried": tried, "op": op}
    for dt in dtypes:
        if "matmul" in ops:
            winners[f"matmul/family/{dt.name}"] = _pick_family(device, dt, measure_fn, winners)
    path = gemm.store_path(device, "tune")
    entries = gemm.read_store(path)
    entries.update(winners)
    gemm.write_store(path, device, entries)
    gemm.forget()
    return winners


def _pick_family(device: Device, dt: DType, measure_fn, winners: dict) -> dict:
    """The vector kernels' best medium nn/nt scores against the scalar kernel's on the same
    problems: which family float GEMMs use on this device."""
    blocked, vector = [], []
    for fam in ("nn", "nt"):
        entry = winners.get(f"matmul/{fam}/{dt.name}/medium")
        if entry is None:
            continue
        for p in PROBLEMS["matmul"]["medium"][fam][:1]:
            blocked.append(measure_fn(device, dt, "blocked", p, _Operands(device, dt, p)))
        vector.append(entry["gflops"])
    if not vector:
        return {"family": "cpu" if gemm.uses_cpu_kernels(device, dt) else "blocked"}
    g_vec = statistics.geometric_mean([max(v, 1e-9) for v in vector])
    g_blk = statistics.geometric_mean([max(v, 1e-9) for v in blocked])
    return {"family": "cpu" if g_vec >= g_blk else "blocked", "gflops": round(max(g_vec, g_blk), 2),
            "vector_gflops": round(g_vec, 2), "blocked_gflops": round(g_blk, 2)}


def _asdict(t) -> dict:
    d = dict(t.__dict__)
    d["local"] = list(t.local) if t.local else None
    return d

