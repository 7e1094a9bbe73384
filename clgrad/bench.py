"""The scoreboard behind `clgrad bench`: GEMM, convolution, elementwise bandwidth, launch overhead,
training steps and the cold/warm first step on one device, timed against numpy and PyTorch CPU."""
from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import clgrad
import clgrad.nn      # noqa: F401 -- the models below reach nn and optim through `lib`
import clgrad.optim   # noqa: F401
from clgrad.bench_models import lstm_lm, vae
from clgrad import runtime
from clgrad.runtime import Buffer, clblast, program

SECTIONS = ("gemm", "conv", "elementwise", "launch", "train", "jit", "first_step")
IMPLS = ("clgrad", "jit", "numpy", "torch", "clblast", "pyopencl")
UNITS = {"GFLOP/s": "higher", "GB/s": "higher", "µs": "lower", "ms": "lower", "s": "lower"}


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run; QUICK is for smoke tests, not for numbers."""

    gemm: tuple = (512, 1024, 2048)
    conv_batch: int = 64
    elementwise: int = 4 << 20
    launch_numel: int = 16
    launch_loop: int = 200
    overhead_mlp: tuple = (64, 64, 64, 10)    # a step bound by per-op cost, not by GEMM
    overhead_batch: int = 16
    mlp: tuple = (784, 512, 512, 10)
    mlp_batch: int = 256
    cnn_batch: int = 64
    gpt: tuple = (128, 4, 64, 32, 2, 64)      # d_model, heads, context, batch, layers, vocab
    small_mlp: tuple = (784, 128, 128, 10)    # launch-bound: what clgrad.jit is for
    small_mlp_batch: int = 32
    lstm: tuple = (96, 64, 128, 2, 35, 20)    # vocab, embedding, hidden, layers, sequence, batch
    vae: tuple = (784, 400, 20, 128)          # input, hidden, latent, batch
    settle: float = 0.1                       # s of pause before each timed call (interleaved)


FULL = Sizes()
QUICK = Sizes(gemm=(64, 128), conv_batch=4, elementwise=1 << 16, launch_loop=20,
              mlp=(784, 64, 64, 10), mlp_batch=16, cnn_batch=4, gpt=(32, 4, 16, 4, 2, 32),
              small_mlp=(32, 16, 10), small_mlp_batch=4, overhead_mlp=(32, 16, 10),
              overhead_batch=4, lstm=(16, 8, 16, 1, 4, 2), vae=(32, 16, 4, 4), settle=0.0)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _pyclblast():
    try:
        import pyclblast
    except ImportError:
        return None
    return pyclblast


# ---- timing ---------------------------------------------------------------------------------
def interleaved(fns: dict, repeat: int, warmup: int = 2, settle: float = 0.1,
                stat=statistics.median) -> dict:
    """Median seconds per call of each function. Repetitions alternate between the functions, so
    a noisy neighbour slows every implementation alike; each function syncs its own device.
    Each timed call starts after a short pause (`settle` seconds, untimed): numpy's
    OpenBLAS and PyTorch's OpenMP threads keep spinning for a while after a call returns, and
    without the pause whichever implementation runs next shares the cores with them (on two
    cores clgrad's GEMM timed right after numpy's measured well below the same GEMM timed
    alone; docs/performance.md)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(max(1, repeat)):
        for k, fn in fns.items():
            if settle:
                time.sleep(settle)
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: stat(v) for k, v in times.items()}


def _synced(fn, device):
    def run():
        out = fn()          # held while synchronizing: a pending result nobody holds never runs
        clgrad.synchronize(device)
        return out
    return run


def _value(unit: str, seconds: float, work: float | None) -> float:
    if unit in ("GFLOP/s", "GB/s"):
        return work / seconds / 1e9
    return seconds * {"µs": 1e6, "ms": 1e3, "s": 1.0}[unit]


def device_fields(device) -> dict:
    return {"spec": device.spec, "device": device.name, "platform": device.platform_name,
            "driver": device.driver_version}


def make_row(device, section: str, case: str, unit: str, seconds: dict, work=None,
             ratios=(), **extra) -> dict:
    """One scoreboard row: median seconds per call and the value in `unit` per implementation,
    and time ratios a/b (above 1: a takes longer than b)."""
    row = {"section": section, "case": case, **device_fields(device), "unit": unit,
           "better": UNITS[unit],
           "seconds": {k: seconds[k] for k in IMPLS if k in seconds},
           "values": {k: _value(unit, seconds[k], work) for k in IMPLS if k in seconds},
           "ratios": {f"{a}/{b}": seconds[a] / seconds[b] for a, b in ratios
                      if a in seconds and b in seconds}}
    row.update(extra)
    return row


# ---- the benchmarks -------------------------------------------------------------------------
def bench_gemm(device, sizes: Sizes, repeat: int):
    torch, blast = _torch(), _pyclblast()
    rng = np.random.default_rng(0)
    for n in sizes.gemm:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        x, y = clgrad.tensor(a, device=device), clgrad.tensor(b, device=device)
        fns = {"clgrad": _synced(lambda: x @ y, device), "numpy": lambda: a @ b}
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            fns["torch"] = lambda: ta @ tb
        extra = {}
        if blast is not None:
            fn, note = clblast.sgemm_runner(blast, device, a, b)
            if fn is not None:
                fns["clblast"] = fn
            else:
                extra["note"] = note
        s = interleaved(fns, repeat, settle=sizes.settle)
        yield make_row(device, "gemm", f"{n}x{n}x{n} fp32", "GFLOP/s", s, work=2 * n ** 3,
                       ratios=[("clgrad", "numpy"), ("torch", "numpy"), ("clblast", "numpy")],
                       **extra)


def bench_conv(device, sizes: Sizes, repeat: int):
    """LeNet's two convolutions, forward and backward (the first has no input gradient)."""
    torch = _torch()
    rng = np.random.default_rng(1)
    B = sizes.conv_batch
    for cin, cout, hw in ((1, 6, 28), (6, 16, 12)):
        ho = hw - 4
        arrays = [rng.standard_normal(s, dtype=np.float32)
                  for s in ((B, cin, hw, hw), (cout, cin, 5, 5), (cout,), (B, cout, ho, ho))]
        fns = {"clgrad": _synced(_conv_step(clgrad, arrays, cin > 1, device), device)}
        if torch is not None:
            fns["torch"] = _conv_step(torch, arrays, cin > 1, None)
        s = interleaved(fns, repeat, settle=sizes.settle)
        # forward, weight gradient and (inner layer only) input gradient: one product each
        flops = (3 if cin > 1 else 2) * 2 * B * cout * ho * ho * cin * 25
        yield make_row(device, "conv",
                       f"conv {cin}->{cout} 5x5 on {hw}x{hw}, batch {B}, fwd+bwd", "ms", s,
                       ratios=[("clgrad", "torch")],
                       gflops={k: flops / v / 1e9 for k, v in s.items()})


def _conv_step(lib, arrays, input_grad: bool, device):
    kw = {"device": device} if lib is clgrad else {}
    x, w, b, g = (lib.tensor(a, **kw) for a in arrays)
    x.requires_grad_(input_grad)
    w.requires_grad_(True)
    b.requires_grad_(True)

    def step():
        x.grad = w.grad = b.grad = None
        lib.nn.functional.conv2d(x, w, b).backward(g)
    return step


def bench_elementwise(device, sizes: Sizes, repeat: int):
    torch = _torch()
    n = sizes.elementwise
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal(n, dtype=np.float32) for _ in range(2))
    x, y = clgrad.tensor(a, device=device), clgrad.tensor(b, device=device)
    fns = {"clgrad": _synced(lambda: x + y, device), "numpy": lambda: a + b}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns["torch"] = lambda: ta + tb
    s = interleaved(fns, repeat, settle=sizes.settle)
    yield make_row(device, "elementwise", f"a + b, {n} float32", "GB/s", s, work=3 * 4 * n,
                   ratios=[("clgrad", "numpy"), ("clgrad", "torch")])


def bench_launch(device, sizes: Sizes, repeat: int):
    """Per-op cost at a size where the work is nothing: Python, dispatch and the launch."""
    torch = _torch()
    n, loop = sizes.launch_numel, sizes.launch_loop
    a = np.arange(n, dtype=np.float32)
    libs = [(clgrad, {"device": device})] + ([(torch, {})] if torch is not None else [])
    for case, make in ((f"a + b, {n} elements, per op", _add_loop),
                       (f"(x*x).sum().backward(), {n} elements", _backward_loop)):
        fns = {}
        for lib, kw in libs:
            fn = make(lib, lib.tensor(a, **kw), loop)
            fns[lib.__name__] = _synced(fn, device) if lib is clgrad else fn
        if make is _add_loop:
            fns["pyopencl"] = _raw_add_loop(device, n, loop)
        s = {k: v / loop for k, v in interleaved(fns, repeat, settle=sizes.settle).items()}
        yield make_row(device, "launch", case, "µs", s,
                       ratios=[("clgrad", "torch"), ("clgrad", "pyopencl"),
                               ("pyopencl", "torch")])
    small = replace(sizes, mlp=sizes.overhead_mlp, mlp_batch=sizes.overhead_batch)
    fns = {}
    for lib in [clgrad] + ([torch] if torch is not None else []):
        lib.manual_seed(0)
        (name, fns[lib.__name__]), = training_cases(lib, small, device if lib is clgrad else None,
                                                     "mlp")
    s = interleaved(fns, repeat * 4, settle=sizes.settle)
    yield make_row(device, "launch", f"{name}, step", "µs", s, ratios=[("clgrad", "torch")])


def _add_loop(lib, x, loop):
    if lib is clgrad:
        def run():
            for _ in range(loop):
                (x + x)._buf     # launched now: an unread pending result would never run
        return run

    def run():
        for _ in range(loop):
            x + x
    return run


def _raw_add_loop(device, n, loop):
    """The floor under clgrad's per-op time: the same add enqueued straight through pyopencl
    (built once, preallocated buffers, none of clgrad's Python), then one wait."""
    dev = runtime.get_device(device)
    k = program.kernel(dev, "__kernel void clg_raw_add(__global float* o, __global const float* a,"
                       " int n) { int i = get_global_id(0); if (i < n) o[i] = a[i] + a[i]; }",
                       "clg_raw_add", [None, None, np.int32]).cl_kernel
    a = Buffer(dev, 4 * n)
    o = Buffer(dev, 4 * n)
    q, glob, args = dev.queue, (n,), (o.raw, a.raw, np.int32(n))

    def run():
        for _ in range(loop):
            k(q, glob, None, *args)
        q.finish()
    return run


def _backward_loop(lib, x, loop):
    x.requires_grad_(True)

    def run():
        for _ in range(loop):
            x.grad = None
            (x * x).sum().backward()
    return run


# ---- training steps -------------------------------------------------------------------------
def mlp(lib, dims, device=None):
    kw = {"device": device} if device is not None else {}
    layers = []
    for i, (fi, fo) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(lib.nn.Linear(fi, fo, **kw))
        if i < len(dims) - 2:
            layers.append(lib.nn.ReLU())
    return lib.nn.Sequential(*layers)


def lenet(lib, device=None):
    kw = {"device": device} if device is not None else {}
    L = lib.nn
    return L.Sequential(L.Conv2d(1, 6, 5, **kw), L.ReLU(), L.MaxPool2d(2),      # (B, 6, 12, 12)
                        L.Conv2d(6, 16, 5, **kw), L.ReLU(), L.MaxPool2d(2),     # (B, 16, 4, 4)
                        L.Flatten(), L.Linear(256, 120, **kw), L.ReLU(),
                        L.Linear(120, 84, **kw), L.ReLU(), L.Linear(84, 10, **kw))


def gpt(lib, d_model, heads, context, layers, vocab, device=None):
    """Token + position embeddings, pre-norm causal encoder layers, LayerNorm, LM head."""
    kw = {"device": device} if device is not None else {}
    L = lib.nn

    class GPT(L.Module):
        def __init__(self):
            super().__init__()
            self.tok = L.Embedding(vocab, d_model, **kw)
            self.pos = L.Embedding(context, d_model, **kw)
            layer = L.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0,
                                              activation="gelu", batch_first=True,
                                              norm_first=True, **kw)
            self.blocks = L.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = L.LayerNorm(d_model, **kw)
            self.head = L.Linear(d_model, vocab, **kw)
            self.register_buffer("where", lib.arange(context, **kw), persistent=False)
            self.register_buffer("mask", L.Transformer.generate_square_subsequent_mask(
                context, **kw), persistent=False)

        def forward(self, idx):                                    # (B, T)
            x = self.tok(idx) + self.pos(self.where)               # (B, T, C)
            x = self.blocks(x, mask=self.mask, is_causal=True)
            return self.head(self.norm(x))                         # (B, T, V)
    return GPT()


def training_cases(lib, sizes: Sizes, device=None, only=None):
    """(name, step) per model: `step()` runs forward, loss, backward and the optimizer step and
    reads the loss once; the same code builds the clgrad and the PyTorch model."""
    kw = {"device": device} if device is not None else {}
    rng = np.random.default_rng(3)
    F = lib.nn.functional
    cases = []
    if only in (None, "mlp"):
        d, B = sizes.mlp, sizes.mlp_batch
        model = mlp(lib, d, device)
        x = lib.tensor(rng.standard_normal((B, d[0]), dtype=np.float32), **kw)
        y = lib.tensor(rng.integers(0, d[-1], B), **kw)
        cases.append((f"MLP {'-'.join(map(str, d))}, batch {B}, Adam", model,
                      lib.optim.Adam(model.parameters(), lr=1e-3), x, y))
    if only in (None, "cnn"):
        B = sizes.cnn_batch
        model = lenet(lib, device)
        x = lib.tensor(rng.standard_normal((B, 1, 28, 28), dtype=np.float32), **kw)
        y = lib.tensor(rng.integers(0, 10, B), **kw)
        cases.append((f"LeNet CNN, batch {B}, SGD momentum", model,
                      lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), x, y))
    if only in (None, "gpt"):
        C, H, T, B, nl, V = sizes.gpt
        model = gpt(lib, C, H, T, nl, V, device)
        x = lib.tensor(rng.integers(0, V, (B, T)), **kw)
        y = lib.tensor(rng.integers(0, V, (B * T,)), **kw)
        cases.append((f"Transformer {nl}x(d{C}, {H} heads), context {T}, batch {B}, AdamW",
                      model, lib.optim.AdamW(model.parameters(), lr=1e-3), x, y))
    for name, model, opt, x, y in cases:
        def step(model=model, opt=opt, x=x, y=y):
            out = model(x)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
        yield name, step


def bench_train(device, sizes: Sizes, repeat: int):
    torch = _torch()
    for only in ("mlp", "cnn", "gpt"):
        clgrad.manual_seed(0)
        (name, step), = training_cases(clgrad, sizes, device, only)
        fns = {"clgrad": step}
        if torch is not None:
            torch.manual_seed(0)
            (_, fns["torch"]), = training_cases(torch, sizes, None, only)
        s = interleaved(fns, repeat, settle=sizes.settle)
        yield make_row(device, "train", name + ", step", "ms", s, ratios=[("clgrad", "torch")])


def _mlp_step(lib, dims, batch, device=None):
    """(step, x, y): an MLP training step with Adam that returns its loss (the caller reads it,
    so the same step can be captured by clgrad.jit)."""
    kw = {"device": device} if device is not None else {}
    rng = np.random.default_rng(3)
    model = mlp(lib, dims, device)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    x = lib.tensor(rng.standard_normal((batch, dims[0]), dtype=np.float32), **kw)
    y = lib.tensor(rng.integers(0, dims[-1], batch), **kw)

    def step(x, y):
        opt.zero_grad()
        loss = lib.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, x, y


def _lstm_step(lib, sizes: Sizes, device=None):
    """(name, step, inputs): a character LSTM language-model step (cross entropy over every
    position, clip_grad_norm_ at 1, Adam) that returns its loss; `step.model` is its model."""
    kw = {"device": device} if device is not None else {}
    V, E, H, nl, T, B = sizes.lstm
    rng = np.random.default_rng(4)
    model = lstm_lm(lib, V, E, H, nl, device)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    x = lib.tensor(rng.integers(0, V, (B, T)), **kw)
    y = lib.tensor(rng.integers(0, V, (B, T)), **kw)

    def step(x, y):
        opt.zero_grad()
        loss = lib.nn.functional.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        loss.backward()
        lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss
    step.model = model
    return (f"LSTM LM {nl}x{H}, embedding {E}, vocab {V}, seq {T}, batch {B}, clip, Adam",
            step, (x, y))


def _vae_step(lib, sizes: Sizes, device=None):
    """(name, step, inputs): PyTorch's examples/vae training step (BCE summed + KL, Adam) that
    returns its loss; the reparameterization draws new noise at every call (and replay);
    `step.model` is its model."""
    kw = {"device": device} if device is not None else {}
    D, Hd, Z, B = sizes.vae
    rng = np.random.default_rng(5)
    model = vae(lib, D, Hd, Z, device)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    x = lib.tensor(rng.random((B, D), dtype=np.float32), **kw)

    def step(x):
        opt.zero_grad()
        recon, mu, logvar = model(x)
        bce = lib.nn.functional.binary_cross_entropy(recon, x, reduction="sum")
        kld = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
        loss = bce + kld
        loss.backward()
        opt.step()
        return loss
    step.model = model
    return f"VAE {D}-{Hd}-{Z}, batch {B}, BCE + KL, Adam", step, (x,)


def _mlp_case(dims, batch):
    def build(lib, sizes, device=None):
        step, x, y = _mlp_step(lib, dims, batch, device)
        return f"MLP {'-'.join(map(str, dims))}, batch {batch}, Adam", step, (x, y)
    return build


def jit_cases(sizes: Sizes):
    """The builders of the jit section: each `build(lib, sizes, device)` gives (name, step,
    inputs) from the same code for clgrad and PyTorch."""
    return [_mlp_case(sizes.mlp, sizes.mlp_batch), _mlp_case(sizes.small_mlp,
                                                             sizes.small_mlp_batch),
            _lstm_step, _vae_step]


def bench_jit(device, sizes: Sizes, repeat: int):
    """Each step eagerly ("clgrad"), replayed by clgrad.jit ("jit") and in PyTorch; each reads
    its loss once. The warm-up calls are the jit's eager call and its recording call."""
    torch = _torch()
    for build in jit_cases(sizes):
        clgrad.manual_seed(0)
        name, eager, xs = build(clgrad, sizes, device)
        _, jitted, jxs = build(clgrad, sizes, device)
        jitted = clgrad.jit(jitted)
        fns = {"clgrad": lambda: eager(*xs).item(), "jit": lambda: jitted(*jxs).item()}
        if torch is not None:
            torch.manual_seed(0)
            _, tstep, txs = build(torch, sizes)
            fns["torch"] = lambda: tstep(*txs).item()
        s = interleaved(fns, repeat, settle=sizes.settle)
        yield make_row(device, "jit", f"{name}, step", "ms", s,
                       ratios=[("clgrad", "torch"), ("jit", "torch"), ("clgrad", "jit")],
                       launches=jitted.launches())


# ---- cold and warm first step ---------------------------------------------------------------
_CHILD = ("import time; t0 = time.perf_counter(); import clgrad.bench as b; "
          "b.first_step_child(t0)")


def first_step_child(t0: float) -> None:
    """Run in a fresh interpreter: time the CNN's first and second training steps and print one
    JSON line. argv: device spec, batch size."""
    spec, batch = sys.argv[1], int(sys.argv[2])
    t_import = time.perf_counter() - t0
    clgrad.runtime.reset_stats()
    t = time.perf_counter()
    device = clgrad.device(spec)
    device.queue                          # context and queue: part of any first step
    t_context = time.perf_counter() - t
    t = time.perf_counter()
    clgrad.manual_seed(0)
    (_, step), = training_cases(clgrad, Sizes(cnn_batch=batch), device, "cnn")
    t_model = time.perf_counter() - t
    t = time.perf_counter()
    step()
    t_step = time.perf_counter() - t
    first = dict(clgrad.runtime.stats())
    t = time.perf_counter()
    step()
    t_second = time.perf_counter() - t
    print(json.dumps({"import_s": t_import, "context_s": t_context, "model_s": t_model,
                      "step_s": t_step, "first_step_s": t_context + t_model + t_step,
                      "second_step_s": t_second, "builds": first["builds"],
                      "disk_cache_hits": first["disk_cache_hits"],
                      "launches": first["launches"]}))


def first_step(device, sizes: Sizes, timeout: float = 600.0) -> dict:
    """The CNN's first step in two fresh processes on one new, empty cache folder: cold (nothing
    cached: clgrad's, pyopencl's and the driver's caches all live there) and then warm."""
    root = str(Path(clgrad.__file__).resolve().parent.parent)
    out = {}
    with tempfile.TemporaryDirectory(prefix="clgrad-bench-") as tmp:
        env = dict(os.environ, CLGRAD_CACHE_DIR=str(Path(tmp) / "clgrad"),
                   XDG_CACHE_HOME=str(Path(tmp) / "xdg"),
                   PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        env.pop("CLGRAD_NO_CACHE", None)
        for label in ("cold", "warm"):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", _CHILD, device.spec,
                                str(sizes.cnn_batch)], env=env, capture_output=True,
                               text=True, timeout=timeout)
            wall = time.perf_counter() - t
            lines = r.stdout.strip().splitlines()
            if r.returncode != 0 or not lines:
                raise RuntimeError(f"the {label} first-step process failed (exit "
                                   f"{r.returncode}):\n{r.stderr.strip()[-2000:]}")
            out[label] = {**json.loads(lines[-1]), "process_s": wall}
        out["cache_entries"] = sum(1 for _ in Path(tmp, "clgrad").glob("*/*/meta.json"))
    return out


def bench_first_step(device, sizes: Sizes, repeat: int):
    fs = first_step(device, sizes)
    for label in ("cold", "warm"):
        d = fs[label]
        yield make_row(device, "first_step",
                       f"LeNet CNN first step, batch {sizes.cnn_batch}, {label} cache", "s",
                       {"clgrad": d["first_step_s"]}, detail=d,
                       cache_entries=fs["cache_entries"])


BENCHES = {"gemm": bench_gemm, "conv": bench_conv, "elementwise": bench_elementwise,
           "launch": bench_launch, "train": bench_train, "jit": bench_jit,
           "first_step": bench_first_step}


def run(device=None, *, repeat: int | None = None, quick: bool = False, sections=None,
        progress=None) -> dict:
    """Run the scoreboard on one device and return {"meta": ..., "rows": [...]}.

    Args:
        device: a device spec or Device (default: clgrad's default device).
        repeat: timed repetitions per case, median reported (default 5, quick 2).
        quick: tiny sizes, for smoke tests; its numbers mean nothing.
        sections: names from SECTIONS (default: all).
        progress: called with each row as it is measured.
    """
    sections = list(sections or SECTIONS)
    for s in sections:
        if s not in BENCHES:
            raise ValueError(f"unknown bench section {s!r}; choose from {', '.join(SECTIONS)}")
    device = clgrad.device(device) if device is not None else clgrad.get_default_device()
    sizes = QUICK if quick else FULL
    repeat = repeat if repeat is not None else (2 if quick else 5)
    torch = _torch()
    threads = None
    if torch is not None:
        threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            **device_fields(device), "platform_version": device.platform_version,
            "repeat": repeat, "quick": quick, "sections": sections,
            "versions": {"clgrad": clgrad.__version__, "numpy": np.__version__,
                         "torch": torch.__version__ if torch is not None else None,
                         "pyclblast": "yes" if _pyclblast() is not None else None},
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "cpu_count": os.cpu_count(), "load_before": _load()}
    rows = []
    try:
        for s in sections:
            for row in BENCHES[s](device, sizes, repeat):
                rows.append(row)
                if progress is not None:
                    progress(row)
    finally:
        if torch is not None:
            torch.set_num_threads(threads)
    meta["load_after"] = _load()
    return {"meta": meta, "rows": rows}


def _load():
    """The 1-minute load average (None where the OS has none): above the CPU count, other work
    shared the machine and every ratio is suspect."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
