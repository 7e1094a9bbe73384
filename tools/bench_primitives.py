"""Time clgrad's primitive kernels against numpy and PyTorch CPU: elementwise, reductions, matmul,
and one MLP training step.

    python tools/bench_primitives.py                      # default sizes on the chosen device
    python tools/bench_primitives.py --device cl:0 --repeat 20 --matmul 256,512,1024

Each figure is the median of --repeat runs after a warm-up run (which also builds the kernel);
clgrad timings wait for the device to finish. Ratios are clgrad time / numpy time and clgrad time
/ PyTorch time (below 1: clgrad is faster); the PyTorch column is left empty when torch is not
importable. Not run by the tests: the machine is shared and timings are noisy."""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import clgrad  # noqa: E402

try:
    import torch  # noqa: E402
    torch.set_num_threads(max(1, torch.get_num_threads()))
except ImportError:         # the PyTorch column is optional
    torch = None


def _t(a):
    return torch.from_numpy(a) if torch is not None else None


def _torch(fn):
    return fn if torch is not None else None


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
    """(name, clgrad fn, numpy fn or None, torch fn or None, work, unit) per benchmark."""
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        x, y = clgrad.tensor(a, device=device), clgrad.tensor(b, device=device)
        ta, tb = _t(a), _t(b)
        yield f"add n={n}", lambda: x + y, lambda: a + b, _torch(lambda: ta + tb), 3 * n * 4, "GB/s"
        yield (f"exp n={n}", lambda: x.exp(), lambda: np.exp(a), _torch(lambda: ta.exp()),
               2 * n * 4, "GB/s")
        yield f"sum n={n}", lambda: x.sum(), lambda: a.sum(), _torch(lambda: ta.sum()), n * 4, "GB/s"
        r = int(np.sqrt(n))
        a2 = a[: r * r].reshape(r, r)
        x2, t2 = clgrad.tensor(a2, device=device), _t(a2)
        yield (f"sum rows {r}x{r}", lambda: x2.sum(dim=1), lambda: a2.sum(1),
               _torch(lambda: t2.sum(1)), r * r * 4, "GB/s")
        yield (f"sum cols {r}x{r}", lambda: x2.sum(dim=0), lambda: a2.sum(0),
               _torch(lambda: t2.sum(0)), r * r * 4, "GB/s")
        yield (f"softmax rows {r}x{r}", lambda: x2.softmax(dim=1), None,
               _torch(lambda: t2.softmax(1)), 2 * r * r * 4, "GB/s")
        yield (f"argmax rows {r}x{r}", lambda: x2.argmax(dim=1), lambda: a2.argmax(1),
               _torch(lambda: t2.argmax(1)), r * r * 4, "GB/s")
        yield (f"transpose copy {r}x{r}", lambda: x2.T.contiguous(),
               lambda: np.ascontiguousarray(a2.T), _torch(lambda: t2.T.contiguous()),
               2 * r * r * 4, "GB/s")
    for n in mm_sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        x, y = clgrad.tensor(a, device=device), clgrad.tensor(b, device=device)
        ta, tb = _t(a), _t(b)
        yield (f"matmul {n}x{n}", lambda: x @ y, lambda: a @ b, _torch(lambda: ta @ tb),
               2 * n ** 3, "GFLOP/s")
    yield ("MLP step 784-128-10 b64", _mlp_step(clgrad, device), None,
           _mlp_step(torch, None) if torch is not None else None, 1, "steps/s")


def _mlp_step(lib, device):
    """One forward + backward + AdamW step of the same MLP, written once for both libraries."""
    rng = np.random.default_rng(1)
    kw = {"device": device} if lib is clgrad else {}
    x = lib.tensor(rng.standard_normal((64, 784)).astype(np.float32), **kw)
    y = lib.tensor(rng.integers(0, 10, 64), **kw)
    model = lib.nn.Sequential(lib.nn.Linear(784, 128), lib.nn.ReLU(), lib.nn.Linear(128, 10))
    model = model.to(device) if lib is clgrad else model
    opt = lib.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        loss = lib.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


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
    print(f"{'case':<26} {'clgrad':>10} {'numpy':>10} {'torch':>10} {'/numpy':>7} {'/torch':>7} "
          f"{'clgrad rate':>14}")
    for name, cl_fn, np_fn, t_fn, work, unit in cases(sizes, mm, device):
        tc = median_time(cl_fn, args.repeat, device.synchronize)
        tn = median_time(np_fn, args.repeat) if np_fn else None
        tt = median_time(t_fn, args.repeat) if t_fn else None
        scale = 1 if unit == "steps/s" else 1e9

        def col(t):
            return f"{t * 1e3:8.3f}ms" if t else f"{'-':>10}"

        def ratio(t):
            return f"{tc / t:7.2f}" if t else f"{'-':>7}"
        print(f"{name:<26} {col(tc)} {col(tn)} {col(tt)} {ratio(tn)} {ratio(tt)} "
              f"{work / tc / scale:9.2f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
