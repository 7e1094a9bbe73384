"""GEMM on raw buffers: the kernel family and tile for a device, the child-process probe of risky
variants, the per-device tuning store, and the launch (k-blocked, batched, strided operands).

A problem is C[b] = A[b] @ B[b] (+ bias, + relu) with each operand given as (buffer, offset,
row stride, column stride) plus per-batch strides, so transposed and broadcast operands never
need a copy. CPU devices get register-blocked kernels (kernels_cl/gemm_cpu*.cl); other devices
the local-memory tiles of kernels_cl/matmul.cl."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..dtypes import DType, float32, float64
from . import codegen, lazy, memory
from .device import Device, devices
from .memory import Buffer
from .program import cache_dir, kernel, memoize, render

# the epilogue is a launch flag (kernels_cl/gemm_cpu*.cl): bit 1 bias, 2 relu, 3 mask (in bias)
EPILOGUES = {None: 0, "bias": 2, "bias_relu": 6, "relu": 4, "mask": 8}
PROBE_ENV = "CLGRAD_GEMM_PROBE"        # "0" trusts every variant without a child process
# runtimes that have run every variant without crashing: their probe checks the result in this
# process (the program it builds is the one the GEMM then uses), saving a child interpreter
IN_PROCESS_PROBE = ("Intel CPU runtime",)


@dataclass(frozen=True)
class Tile:
    """One CPU GEMM configuration. nn: RM rows x VW columns (vectors over columns); nt: RM x RN
    dot products with vectors of VW over k. kb: k-block per launch (0: all of K at once);
    rows_first: global dim 0 walks rows (work-items next to each other share B's columns);
    local: work-group shape or None to let the driver choose."""
    family: str
    rm: int
    vw: int
    rn: int = 1
    kb: int = 0
    rows_first: bool = False
    local: tuple | None = None

    def key(self) -> str:
        loc = "x".join(map(str, self.local)) if self.local else "auto"
        return (f"{self.family}-r{self.rm}x{self.rn}-v{self.vw}-k{self.kb}-"
                f"{'R' if self.rows_first else 'C'}-{loc}")

    @staticmethod
    def from_dict(d: dict) -> "Tile":
        d = dict(d)
        if d.get("local") is not None:
            d["local"] = tuple(int(x) for x in d["local"])
        t = Tile(**d)
        if (t.family not in ("nn", "nt") or t.vw not in (1, 2, 4, 8, 16)
                or not 1 <= t.rm <= 16 or not 1 <= t.rn <= 16 or t.kb < 0):
            raise ValueError(f"not a valid GEMM tile: {d}")
        return t

    def risky(self, dt: DType) -> bool:
        # pip's PoCL 3.0 builds but cannot run 64-byte vector accumulators (POCL-FACTS)
        return self.vw * dt.itemsize >= 64 or self.rm * self.rn * self.vw * dt.itemsize > 512


def safe_tile(family: str, dt: DType) -> Tile:
    """The variant every device has run: 32-byte vectors, a modest block."""
    vw = 32 // dt.itemsize
    if family == "nt":
        return Tile("nt", 4, vw, rn=2, kb=512)
    return Tile("nn", 8, vw, kb=256)


def default_tile(device: Device, family: str, dt: DType, cls: str = "large") -> Tile:
    """The shipped tile per shape class (before tuning; may be risky, then probed). On Intel's
    runtime (Zen 4): 8 rows x 64-byte vectors for nn with 256-deep k-blocks, in 4 x 4 groups for
    the medium class; the large one in 8 x 8 groups with work-items next to each other walking
    rows (they share B's columns, whose k-slab stays in cache across more row blocks). The small
    and medium nn tiles differ only in launch parameters, so a model whose products fall in both
    classes builds one program for them;
    4 x 4 dot products of 32-byte vectors for nt. Small batched nn products (a convolution's)
    let the driver choose groups, which would otherwise only pad rows."""
    if family == "nt" and cls == "small":
        # a convolution's weight gradient: 2 x 4 blocks in 2 x 8 groups measured 2-3.5x the
        # large tile on the LeNet shapes (Intel's runtime)
        return Tile("nt", 2, 32 // dt.itemsize, rn=4, kb=0, local=(2, 8))
    if device.speed_label != "Intel CPU runtime":
        # elsewhere 64-byte vectors are unproven: pip's PoCL 3.0 spends minutes compiling them,
        # then crashes or computes wrong sums; `clgrad tune` may still pick them after a probe
        local = (4, 4) if cls != "small" else None
        if family == "nt":
            return Tile("nt", 4, 32 // dt.itemsize, rn=4, kb=0, local=local)
        return replace(safe_tile(family, dt), local=local)
    vw = 64 // dt.itemsize
    if family == "nt":
        return Tile("nt", 4, vw // 2, rn=4, kb=0, local=(4, 4) if cls != "small" else None)
    if cls == "small":
        return Tile("nn", 8, vw, kb=256)
    if cls == "medium":
        return Tile("nn", 8, vw, kb=256, local=(4, 4))
    return Tile("nn", 8, vw, kb=256, rows_first=True, local=(8, 8))


# ---- kernels ------------------------------------------------------------------------------------
def _batch(batch_rank, idx):
    args = "".join(f", {idx} clg_bshape{d}" for d in range(batch_rank))
    for m in ("c", "a", "b"):
        args += "".join(f", {idx} {m}_bst{d}" for d in range(batch_rank))
    ops = [("c_off", "c_bst"), ("a_off", "a_bst"), ("b_off", "b_bst")]
    lines = codegen._index_lines(batch_rank, [f"clg_bshape{d}" for d in range(batch_rank)], ops)
    return args, lines


def _hsum(vw: int, v="v") -> str:
    if vw == 1:
        return v
    comps = [f"{v}.s{i:x}" for i in range(vw)]
    while len(comps) > 1:
        comps = [f"({comps[i]} + {comps[i + 1]})" for i in range(0, len(comps), 2)]
    return comps[0]


def _cpu_kernel_key(device, dt, tile, batch_rank, wide, gather=False):
    # the k-block, work-group shape and epilogue are launch parameters: one kernel serves them all
    return (device, dt, tile.family, tile.rm, tile.rn, tile.vw, tile.rows_first, batch_rank, wide,
            gather)


@memoize(key=_cpu_kernel_key)
def cpu_kernel(device: Device, dt: DType, tile: Tile, batch_rank: int, wide: bool,
               gather: bool = False):
    """Build (memoised) the CPU GEMM kernel for `tile`; `gather`: B's columns are not contiguous
    (nn only), so its vector is assembled from strided loads. The epilogue is chosen per launch
    (flags), and A's strides are arguments: a program specialised for a unit k-stride measured
    the same (Intel's runtime, 512-1024) and cost one more build on a cold start."""
    idx = "long" if wide else "int"
    I = codegen._NP[idx]
    acc, vw, rm, rn = dt.ctype, tile.vw, tile.rm, tile.rn
    vec = f"{acc}{vw}" if vw > 1 else acc
    batch_args, batch_index = _batch(batch_rank, idx)
    common = dict(extensions=codegen._extensions(acc), acc_t=acc, vec_t=vec, vw=vw, idx=idx,
                  rm=rm, batch_args=batch_args, batch_index=batch_index,
                  col_dim=1 if tile.rows_first else 0,
                  row_dim=0 if tile.rows_first else 1)
    ind = " " * 12
    if tile.family == "nn":
        name = (f"gemm_nn_{dt.short}_b{batch_rank}_r{rm}v{vw}{'_g' if gather else ''}"
                f"{'_R' if tile.rows_first else ''}")
        if vw == 1:
            load_bv = "B[(o)]"
        elif gather:
            load_bv = "(clg_vec_t)(" + ", ".join(
                f"B[(o) + {j} * b_cs]" for j in range(vw)) + ")"
        else:
            load_bv = f"vload{vw}(0, B + (o))"
        ak = "k * a_cs"
        fma = "\n".join(f"{ind}acc{i} += (clg_vec_t)A[ar{i} + {ak}] * b;"
                        for i in range(rm))
        src = render(
            "gemm_cpu", name=name, **common, load_bv=load_bv,
            store_whole="C[co] = v;" if vw == 1 else f"vstore{vw}(v, 0, C + co);",
            store_private="row[0] = v;" if vw == 1 else f"vstore{vw}(v, 0, row);",
            row_offsets="\n".join(f"    const {idx} ar{i} = a_off + min(row0 + {i}, M - 1) * a_rs;"
                                  for i in range(rm)),
            acc_init="\n".join(f"    clg_vec_t acc{i} = (clg_vec_t)0;" for i in range(rm)),
            fma=fma,
            edge_cols="\n".join(f"        const {idx} bc{j} = b_off + min(col0 + {j}, N - 1) "
                                f"* b_cs;" for j in range(vw)),
            edge_load="(clg_vec_t)(" + ", ".join(f"B[bc{j} + kb]" for j in range(vw)) + ")",
            store="\n".join(
                f"    if (row0 + {i} < M)\n        clg_store_row(C, c_off + (row0 + {i}) * c_rs"
                f" + col0 * c_cs, c_cs, ncol, acc{i}, flags, bias, bias_off + (row0 + {i}) * "
                f"bias_rs + col0 * bias_cs, bias_cs);" for i in range(rm)))
    else:
        name = f"gemm_nt_{dt.short}_b{batch_rank}_r{rm}x{rn}v{vw}{'_R' if tile.rows_first else ''}"
        pairs = [(i, j) for i in range(rm) for j in range(rn)]
        offsets = [f"    const {idx} ar{i} = a_off + min(row0 + {i}, M - 1) * a_rs;"
                   for i in range(rm)]
        offsets += [f"    const {idx} bc{j} = b_off + min(col0 + {j}, N - 1) * b_cs;"
                    for j in range(rn)]
        ind = " " * 8
        src = render(
            "gemm_cpu_nt", name=name, **common, rn=rn, hsum=_hsum(vw),
            offsets="\n".join(offsets),
            acc_init="\n".join(f"    clg_vec_t acc{i}_{j} = (clg_vec_t)0;" for i, j in pairs),
            loads="\n".join([f"{ind}const clg_vec_t a{i} = vload{vw}(0, A + ar{i} + k);"
                             for i in range(rm)] +
                            [f"{ind}const clg_vec_t b{j} = vload{vw}(0, B + bc{j} + k);"
                             for j in range(rn)]),
            fma="\n".join(f"{ind}acc{i}_{j} += a{i} * b{j};" for i, j in pairs),
            reduce="\n".join(f"    clg_acc_t s{i}_{j} = clg_hsum(acc{i}_{j});" for i, j in pairs),
            tail="\n".join(f"{ind}s{i}_{j} += A[ar{i} + k] * B[bc{j} + k];" for i, j in pairs),
            store="\n".join(
                f"    if (row0 + {i} < M && col0 + {j} < N)\n        clg_store(C, c_off + "
                f"(row0 + {i}) * c_rs + (col0 + {j}) * c_cs, s{i}_{j}, flags, bias, bias_off + "
                f"(row0 + {i}) * bias_rs + (col0 + {j}) * bias_cs);" for i, j in pairs))
    dtypes = ([None, I, I, I] * 3 + [I, I, I, I, np.int32] + [None, I, I, I]
              + [I] * (4 * batch_rank))
    return kernel(device, src, name, dtypes)


# ---- the launch ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operand:
    """A matrix operand: buffer, offset, row stride, column stride, per-batch strides."""
    raw: object
    off: int
    rs: int
    cs: int
    bst: tuple = ()

    @property
    def T(self) -> "Operand":
        return Operand(self.raw, self.off, self.cs, self.rs, self.bst)


def layout(a: Operand, b: Operand, M: int, N: int, K: int, vw: int = 8) -> tuple[str, bool, bool]:
    """(family, swap, gather) for the CPU kernels. swap computes C^T = B^T A^T, which turns a
    transposed A into a B with contiguous columns."""
    b_cs = 1 if N == 1 else b.cs
    a_rs = 1 if M == 1 else a.rs
    a_cs = 1 if K == 1 else a.cs
    b_rs = 1 if K == 1 else b.rs
    if a_cs == 1 and b_rs == 1 and (b_cs != 1 or N < vw) and (a_rs != 1 or M < vw):
        return "nt", False, False
    if b_cs == 1:
        return "nn", False, False
    if a_rs == 1:
        return "nn", True, False
    return "nn", False, True


def dot_form_copies_b(device: Device, dt: DType, a: Operand, b: Operand, M: int, N: int,
                      K: int) -> bool:
    """Whether a product that would run in the dot form (A's rows and B's columns both contiguous
    over k, as x @ W^T) should run in the outer-product form on a contiguous copy of B instead:
    many rows over a short k, where the dot form spends much of its time on the horizontal sums
    of its vector accumulators. Measured on Intel's runtime (tools/kernel_profile.py, the bench
    Transformer, M = 2048 tokens, K = 128): the dot form ran at about half the speed of the
    outer-product form on the same shapes; copying W (K x N) costs M times less than the GEMM."""
    return (device.speed_label == "Intel CPU runtime" and M >= 256 and K <= 256
            and layout(a, b, M, N, K, 64 // dt.itemsize)[0] == "nt")


def cpu_gemm(device: Device, dt: DType, c: Operand, a: Operand, b: Operand, M: int, N: int, K: int,
             bshape=(1,), wide=False, bias: Operand | None = None, epilogue=None, tile=None):
    """C = A @ B (+ epilogue) with the CPU kernels; `bias` is an Operand whose (rs, cs) walk the
    rows and columns of C (0 where it broadcasts). `tile` overrides the device's choice."""
    family, swap, gather = layout(a, b, M, N, K, 64 // dt.itemsize)
    if swap:
        a, b, c = b.T, a.T, c.T
        M, N = N, M
        bias = bias.T if bias is not None else None
    if tile is None or tile.family != family:
        tile = choose(device, family, dt, shape_class(M, N, K))
        if family == "nn" and M < 2 * tile.rm and (-M) % tile.rm > tile.rm // 2:
            tile = replace(tile, rm=small_rm(M, tile.rm))
        if family == "nn" and M <= tile.rm and (tile.rows_first or tile.kb or tile.local):
            # one block of rows (a column sum as ones @ g): k-blocks would share no slab of B,
            # and the work-items next to each other, which the runtime vectorizes across, must
            # walk columns, not padding rows
            tile = replace(tile, rows_first=False, local=None, kb=0)
    if epilogue not in EPILOGUES:
        raise ValueError(f"unknown GEMM epilogue {epilogue!r}; one of {list(EPILOGUES)}")
    k = cpu_kernel(device, dt, tile, len(bshape), wide, gather)
    nb = 1
    for s in bshape:
        nb *= s
    rn = tile.vw if family == "nn" else tile.rn
    gc, gr = (N + rn - 1) // rn, (M + tile.rm - 1) // tile.rm
    glob = (gr, gc, nb) if tile.rows_first else (gc, gr, nb)
    local = None
    want = tile.local or ((4, 4) if k.one_local else None)    # PoCL: one group per kernel
    if want is not None and want[0] * want[1] <= k.max_group:
        local = (want[0], want[1], 1)
        glob = tuple((g + l - 1) // l * l for g, l in zip(glob, local))
    bias = bias or Operand(c.raw, 0, 0, 0)
    zero = (0,) * len(bshape)
    bargs = (*bshape, *(c.bst or zero), *(a.bst or zero), *(b.bst or zero))
    kb = tile.kb if tile.kb and K > tile.kb * 3 // 2 else max(K, 1)
    k0 = 0
    while True:
        k1 = min(K, k0 + kb)
        flags = (1 if k0 > 0 else 0) | (EPILOGUES[epilogue] if k1 >= K else 0)
        k(glob, local, c.raw, c.off, c.rs, c.cs, a.raw, a.off, a.rs, a.cs, b.raw, b.off, b.rs,
          b.cs, M, N, k0, k1, flags, bias.raw, bias.off, bias.rs, bias.cs, *bargs)
        k0 = k1
        if k0 >= K:
            break


def small_rm(M: int, rm: int) -> int:
    """Rows per work-item for a product of few rows: the fewest row blocks of at most `rm` rows,
    evened out, so no block computes padding rows that are thrown away. Used only where the
    padding would exceed half a block (M = 3 of 8): each other row count is one more program to
    build on a cold start, which costs more than a few padded rows in a small product (LeNet's
    6 and 12 output channels run on the 8-row program). Fewer rows than a probed tile are never
    riskier than it."""
    blocks = (M + rm - 1) // rm
    return (M + blocks - 1) // blocks


def uses_cpu_kernels(device: Device, dt: DType) -> bool:
    """Vector register blocks for float32/64 on CPU devices (measured 2-4x the scalar kernel on
    Intel's runtime and pip's PoCL) unless `clgrad tune` found the scalar kernel faster."""
    if not device.is_cpu or dt not in (float32, float64):
        return False
    entry = tuned(device).get(f"matmul/family/{dt.name}")
    if isinstance(entry, dict) and entry.get("family") in ("cpu", "blocked"):
        return entry["family"] == "cpu"
    return True


# ---- choosing a tile: tuned store, then shipped default, each probed when risky -----------------
_chosen: dict = {}


SHAPE_CLASSES = ("small", "medium", "large")


def shape_class(M: int, N: int, K: int) -> str:
    """GEMMs are tuned apart by size: 'small' (a convolution's per-image products, under 2**20
    multiply-adds), 'large' (deep K, over 1024, or over 2**31 multiply-adds: k-blocking and
    bigger groups pay there) and 'medium' between (square 512-1024)."""
    work = M * N * K
    if work < 1 << 20:
        return "small"
    if K > 1024 or work >= 1 << 31:
        return "large"
    return "medium"


def choose(device: Device, family: str, dt: DType, cls: str = "large") -> Tile:
    """The tuned tile for (family, dtype, shape class), else the shipped default; a risky one
    only after its probe passed, else the safe tile."""
    key = (device, family, dt, cls)
    t = _chosen.get(key)
    if t is None:
        entry = tuned(device).get(f"matmul/{family}/{dt.name}/{cls}")
        t = None
        if isinstance(entry, dict):
            try:
                t = Tile.from_dict(entry["tile"])
                if t.family != family:
                    raise ValueError(f"a {t.family} tile stored for {family}")
            except (KeyError, TypeError, ValueError) as e:
                warnings.warn(f"clgrad: ignoring the tuned GEMM entry {key[1:]} ({e})",
                              RuntimeWarning, stacklevel=3)
                t = None
        if t is None:
            t = default_tile(device, family, dt, cls)
        if t.risky(dt) and not probe_ok(device, dt, t):
            t = safe_tile(family, dt)
        _chosen[key] = t
    return t


def _device_slug(device: Device) -> str:
    return hashlib.sha256("\0".join(device.identity).encode()).hexdigest()[:16]


def store_path(device: Device, what: str) -> Path:
    """Where tuning results ('tune') or probe verdicts ('probe') live for this device+driver."""
    return cache_dir() / "gemm" / f"{what}-{_device_slug(device)}.json"


def read_store(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError:
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("entries", {}), dict):
            raise ValueError("not a JSON object with an 'entries' object")
    except ValueError as e:
        warnings.warn(f"clgrad: ignoring the unreadable GEMM store {path} ({e}); "
                      f"delete it or run `clgrad tune` again", RuntimeWarning, stacklevel=3)
        return {}
    return data.get("entries", {})


def write_store(path: Path, device: Device, entries: dict) -> None:
    """Atomic: a temp file in the same folder, then a rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump({"device": list(device.identity), "entries": entries}, f, indent=1,
                      sort_keys=True)
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"clgrad: could not write {path}: {e}", RuntimeWarning, stacklevel=2)


_tuned: dict = {}


def tuned(device: Device) -> dict:
    t = _tuned.get(device)
    if t is None:
        t = _tuned[device] = read_store(store_path(device, "tune"))
    return t


def forget() -> None:
    """Drop in-memory choices so the stores are read again (after `clgrad tune`, in tests)."""
    _chosen.clear()
    _tuned.clear()
    _verdicts.clear()


# ---- the child-process probe --------------------------------------------------------------------
_verdicts: dict = {}


def _probe_key(dt: DType, t: Tile) -> str:
    return f"{dt.name}/{t.family}-r{t.rm}x{t.rn}-v{t.vw}"


def probe_ok(device: Device, dt: DType, tile: Tile) -> bool:
    """Whether `tile` runs correctly on `device`, decided once per device+driver in a child
    process (a broken driver may crash the process that launches it), remembered on disk."""
    if os.environ.get(PROBE_ENV, "") == "0":
        return True
    key = _probe_key(dt, tile)
    mem = _verdicts.setdefault(device, {})
    if key in mem:
        return mem[key]
    path = store_path(device, "probe")
    disk = read_store(path)
    if key in disk:
        mem[key] = bool(disk[key]["ok"])
        return mem[key]
    ok, detail = run_probe(device, dt, tile)
    if not ok:
        warnings.warn(f"clgrad: GEMM variant {key} failed its probe on {device.name} "
                      f"({device.platform_name}); using a safe variant. {detail}",
                      RuntimeWarning, stacklevel=3)
    disk = read_store(path)
    disk[key] = {"ok": ok, "detail": detail[-400:], "time": time.time()}
    write_store(path, device, disk)
    mem[key] = ok
    return ok


PROBE_OK = "CLGRAD-GEMM-PROBE-OK"


def run_probe(device: Device, dt: DType, tile: Tile):
    """(ok, detail) for `tile`: checked in this process on runtimes known not to crash on any
    variant (IN_PROCESS_PROBE), else in a child process."""
    if device.speed_label in IN_PROCESS_PROBE:
        # the probe's own launches and transfers are not the caller's work: keep the counters
        # (runtime.stats()) as they were, builds aside (the program is the one the GEMM uses)
        before = {k: v for k, v in memory._counters.items() if k != "builds"}
        try:
            return probe_check(device, dt, tile)
        finally:
            for k in list(memory._counters):
                if k != "builds":
                    memory._counters[k] = before.get(k, 0)
    return run_probe_child(device, dt, tile)


def run_probe_child(device: Device, dt: DType, tile: Tile, timeout: float = 60.0):
    """Build, launch and check `tile` in a fresh interpreter; (ok, detail)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    spec = json.dumps({"device": [device.platform_index, device.device_index],
                       "dtype": dt.name, "tile": asdict(tile)})
    cmd = [sys.executable, "-c", "from clgrad.runtime.gemm import probe_child; probe_child()",
           spec]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"probe process: {type(e).__name__}: {e}"
    if r.returncode == 0 and PROBE_OK in r.stdout:
        return True, ""
    tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
    return False, f"exit status {r.returncode}: " + " | ".join(tail)


def probe_child() -> None:
    """Entry point of the probe process."""
    spec = json.loads(sys.argv[-1])
    p, d = spec["device"]
    device = next(x for x in devices() if (x.platform_index, x.device_index) == (p, d))
    dt = {"float32": float32, "float64": float64}[spec["dtype"]]
    ok, detail = probe_check(device, dt, Tile.from_dict(spec["tile"]))
    if not ok:
        print(detail, file=sys.stderr)
        sys.exit(1)
    print(PROBE_OK)


def probe_check(device: Device, dt: DType, tile: Tile):
    """(ok, detail): `tile` on odd sizes, two k-blocks each with whole vectors and a tail, a
    batch of two, against numpy. May crash the process on a broken driver (see probe_ok)."""
    tile = replace(tile, kb=2 * tile.vw + 3)
    rng = np.random.default_rng(0)
    M, N, K = 2 * tile.rm + 3, 2 * max(tile.vw, tile.rn) + 5, 4 * tile.vw + 7
    a = rng.standard_normal((2, M, K)).astype(dt.np)
    b = rng.standard_normal((2, K, N)).astype(dt.np)
    if tile.family == "nt":
        b_host = np.ascontiguousarray(b.transpose(0, 2, 1))
        bop = (K * N, 1, K)
    else:
        b_host = b
        bop = (K * N, N, 1)
    try:
        with lazy.aside():
            got = _probe_run(device, dt, tile, a, b_host, bop, M, N, K)
    except Exception as e:                        # a build or launch error: not usable here
        return False, f"{type(e).__name__}: {e}"
    want = a @ b
    tol = 1e-4 if dt is float32 else 1e-10
    if not np.allclose(got, want, rtol=tol, atol=tol):
        return False, f"wrong result: max error {np.abs(got - want).max()}"
    return True, ""


def _probe_run(device, dt, tile, a, b_host, bop, M, N, K):
    bufs = [Buffer(device, x.nbytes) for x in (a, b_host)]
    cbuf = Buffer(device, 2 * M * N * dt.itemsize)
    bufs[0].write(a)
    bufs[1].write(b_host)
    cpu_gemm(device, dt, Operand(cbuf.raw, 0, N, 1, (M * N,)), Operand(bufs[0].raw, 0, K, 1,
             (M * K,)), Operand(bufs[1].raw, 0, bop[1], bop[2], (bop[0],)), M, N, K,
             bshape=(2,), tile=tile)
    return cbuf.read(np.empty((2, M, N), dt.np))


# ---- the entry point for every dtype ------------------------------------------------------------
def family_for(device: Device, dt: DType) -> str:
    """'cpu' (vector register blocks, float32/64 on CPU devices), 'blocked' (scalar register
    blocks: other dtypes on CPU devices, where local memory is ordinary RAM) or 'local'
    (local-memory tiles, GPUs)."""
    if uses_cpu_kernels(device, dt):
        return "cpu"
    if device.is_cpu or device.local_mem_is_global:
        return "blocked"
    return "local"


BLOCKED_TILE = (8, 8)     # rows x columns of C per work-item for the scalar CPU kernel


def matmul(device: Device, dt: DType, acc_t: str, c: Operand, a: Operand, b: Operand,
           M: int, N: int, K: int, bshape, wide: bool, family: str | None = None,
           bias: Operand | None = None, relu: bool = False,
           mask: Operand | None = None) -> None:
    """C = A @ B for M, N >= 1, K >= 1, batched over `bshape` (each Operand's bst); `family`
    overrides family_for. Epilogues (the 'cpu' family only): `bias` (same for every batch)
    added, then `relu`; or C kept where `mask` (an operand like the bias) is > 0."""
    if M == 0 or N == 0 or 0 in tuple(bshape):
        return                   # nothing to write (an empty NDRange crashes pip's PoCL)
    family = family or family_for(device, dt)
    if family == "cpu":
        epilogue = "mask" if mask is not None else ("bias_relu" if relu else "bias") \
            if bias is not None else ("relu" if relu else None)
        bias = mask if mask is not None else bias
        cpu_gemm(device, dt, c, a, b, M, N, K, tuple(bshape), wide, bias=bias,
                 epilogue=epilogue)
        return
    if bias is not None or relu or mask is not None:
        raise ValueError(f"the {family} GEMM family has no epilogue")
    nb = 1
    for s in bshape:
        nb *= s
    args = (c.raw, c.off, c.rs, c.cs, a.raw, a.off, a.rs, a.cs, b.raw, b.off, b.rs, b.cs,
            M, N, K, *bshape, *c.bst, *a.bst, *b.bst)
    if family == "blocked":
        rm, rn = BLOCKED_TILE
        k = codegen.matmul_kernel(device, dt, dt, dt, acc_t, len(bshape), wide,
                                  ("blocked", rm, rn))
        k(*k.fixed_group(((N + rn - 1) // rn, (M + rm - 1) // rm, nb), (4, 4, 1)), *args)
        return
    acc_bytes = 8 if acc_t in ("double", "long") else 4
    ts = codegen.matmul_tile(device, acc_bytes)
    k = None
    while k is None:
        k = codegen.matmul_kernel(device, dt, dt, dt, acc_t, len(bshape), wide, ("local", ts))
        if k is None:
            ts //= 2
    k(((N + ts - 1) // ts * ts, (M + ts - 1) // ts * ts, nb), (ts, ts, 1), *args)
