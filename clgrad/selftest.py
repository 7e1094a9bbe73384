"""`clgrad selftest`: every kernel family against numpy on one device, as a PASS/FAIL list.

Each case runs clgrad and numpy (float64 reference) on seeded inputs at sizes that catch
tail-handling bugs (1, odd, non-power-of-two) and on non-contiguous views. This is what a user
runs first on a new device; the CLI only prints the results."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import numpy as np

from . import dtypes as dt
from .runtime import get_device
from .tensor import creation
from .tensor.pointwise import where
from .tensor.random import Generator

FAMILIES = ("elementwise", "cast", "reduce", "matmul", "random")
SIZES = (1, 7, 100, 1023)


@dataclass
class CaseResult:
    family: str
    case: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


class _Mismatch(AssertionError):
    pass


def _put(arr: np.ndarray, dtype, device, layout: str):
    """`arr` on the device: contiguous, transposed (a permuted view) or a strided slice."""
    if layout == "t" and arr.ndim >= 2:
        base = creation.tensor(np.ascontiguousarray(np.swapaxes(arr, -1, -2)), dtype=dtype,
                               device=device)
        return base.transpose(-1, -2)
    if layout == "s" and arr.ndim >= 1:
        wide = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1] + 1,), dtype=arr.dtype)
        wide[..., 1::2] = arr
        return creation.tensor(wide, dtype=dtype, device=device)[..., 1::2]
    return creation.tensor(arr, dtype=dtype, device=device)


def _compare(got, want, rtol, atol):
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise _Mismatch(f"shape {got.shape} != {want.shape}")
    if want.dtype == np.bool_ or got.dtype == np.bool_ or want.dtype.kind in "iu":
        bad = got != want
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        bad = ~(np.isclose(g, w, rtol=rtol, atol=atol) | (np.isnan(g) & np.isnan(w)))
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
        raise _Mismatch(f"{int(bad.sum())} of {bad.size} differ; at {tuple(int(x) for x in i)} "
                        f"got {got[i]!r}, expected {want[i]!r}")


def _rng(seed):
    return np.random.default_rng(seed)


def _floats(device):
    out = [dt.float32, dt.float16]
    if device.has_fp64:
        out.append(dt.float64)
    return out


def _tol(d):
    return {"float16": (2e-3, 1e-3), "float64": (1e-12, 1e-12)}.get(d.name, (2e-6, 1e-6))


# ---- cases: each yields (family, name, thunk) -----------------------------------------------
def _elementwise_cases(device):
    unary = [("neg", lambda x: -x, np.negative, -2, 2),
             ("exp", lambda x: x.exp(), np.exp, -2, 2),
             ("log", lambda x: x.log(), np.log, 0.1, 3),
             ("sqrt", lambda x: x.sqrt(), np.sqrt, 0, 4),
             ("sin", lambda x: x.sin(), np.sin, -3, 3),
             ("cos", lambda x: x.cos(), np.cos, -3, 3),
             ("tanh", lambda x: x.tanh(), np.tanh, -3, 3),
             ("sigmoid", lambda x: x.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), -4, 4),
             ("relu", lambda x: x.relu(), lambda a: np.maximum(a, 0), -2, 2),
             ("abs", lambda x: x.abs(), np.abs, -2, 2),
             ("sign", lambda x: x.sign(), np.sign, -2, 2)]
    for d in _floats(device):
        for name, f, g, lo, hi in unary:
            for n, layout in ((1, "c"), (1023, "c"), (100, "s")):
                def run(f=f, g=g, lo=lo, hi=hi, n=n, layout=layout, d=d):
                    a = _rng(n).uniform(lo, hi, size=(n,)).astype(d.np)
                    out = f(_put(a, d, device, layout))
                    _compare(out.numpy(), g(a.astype(np.float64)).astype(d.np), *_tol(d))
                sliced = " sliced" if layout == "s" else ""
                yield "elementwise", f"{name} {d.name} n={n}{sliced}", run
    binary = [("add", lambda x, y: x + y, np.add), ("sub", lambda x, y: x - y, np.subtract),
              ("mul", lambda x, y: x * y, np.multiply),
              ("maximum", lambda x, y: x.maximum(y), np.maximum),
              ("minimum", lambda x, y: x.minimum(y), np.minimum)]
    shapes = [((7,), (7,)), ((13, 1), (1, 9)), ((3, 5, 7), (5, 7)), ((), (33,))]
    # float32 gets every shape and layout; other dtypes a broadcast and a transposed case (each
    # distinct program costs a build, and selftest should finish in a minute or two)
    for d in (*_floats(device), dt.int32, dt.int64, dt.uint8, dt.int8, dt.int16):
        for name, f, g in binary:
            if d is not dt.float32 and name not in ("add", "mul", "maximum"):
                continue
            for (sa, sb) in shapes if d is dt.float32 else shapes[1:2] + shapes[3:]:
                for layout in ("c", "t") if d is dt.float32 or sa else ("c",):
                    def run(f=f, g=g, sa=sa, sb=sb, layout=layout, d=d):
                        r = _rng(len(sa) * 10 + len(sb))
                        a = r.integers(0, 12, size=sa).astype(d.np) if not d.is_floating else \
                            r.uniform(-2, 2, size=sa).astype(d.np)
                        b = r.integers(0, 12, size=sb).astype(d.np) if not d.is_floating else \
                            r.uniform(-2, 2, size=sb).astype(d.np)
                        out = f(_put(a, d, device, layout), _put(b, d, device, layout))
                        want = g(a.astype(np.float64), b.astype(np.float64)).astype(d.np)
                        _compare(out.numpy(), want, *_tol(d))
                    yield ("elementwise",
                           f"{name} {d.name} {sa}x{sb}{' transposed' if layout == 't' else ''}",
                           run)
    for d in _floats(device):
        def run_div(d=d):
            r = _rng(5)
            a = r.uniform(-2, 2, size=(9, 31)).astype(d.np)
            b = r.uniform(0.5, 2, size=(31,)).astype(d.np)
            _compare((_put(a, d, device, "t") / _put(b, d, device, "c")).numpy(),
                     (a.astype(np.float64) / b).astype(d.np), *_tol(d))
        yield "elementwise", f"div {d.name} (9,31)/(31,)", run_div
    cmps = [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
            ("gt", np.greater), ("ge", np.greater_equal)]
    for d in (dt.float32, dt.int64, dt.uint8, dt.bool_):
        for name, g in cmps:
            def run_cmp(name=name, g=g, d=d):
                r = _rng(3)
                a = (r.integers(0, 3, size=(17, 5)) if d is not dt.bool_ else
                     r.integers(0, 2, size=(17, 5))).astype(d.np)
                b = (r.integers(0, 3, size=(5,)) if d is not dt.bool_ else
                     r.integers(0, 2, size=(5,))).astype(d.np)
                out = getattr(_put(a, d, device, "t"), name)(_put(b, d, device, "c"))
                _compare(out.numpy(), g(a, b), 0, 0)
            yield "elementwise", f"{name} {d.name} (17,5)vs(5,)", run_cmp

    def run_where():
        r = _rng(11)
        c = r.random((6, 1, 7)) < 0.5
        a = r.uniform(-1, 1, size=(5, 7)).astype(np.float32)
        b = r.uniform(-1, 1, size=(6, 5, 1)).astype(np.float32)
        out = where(_put(c, dt.bool_, device, "s"), _put(a, dt.float32, device, "t"),
                    _put(b, dt.float32, device, "c"))
        _compare(out.numpy(), np.where(c, a, b), 0, 0)
    yield "elementwise", "where bool/(5,7)/(6,5,1) broadcast", run_where

    def run_fill():
        for n in SIZES:
            _compare(creation.arange(n, device=device).numpy(), np.arange(n), 0, 0)
            _compare(creation.full((n, 3), 2.5, device=device).numpy(),
                     np.full((n, 3), 2.5, np.float32), 0, 0)
            _compare(creation.linspace(-1, 2, n, device=device).numpy(),
                     np.linspace(-1, 2, n).astype(np.float32), 1e-6, 1e-6)
        _compare(creation.eye(5, 7, device=device).numpy(), np.eye(5, 7, dtype=np.float32), 0, 0)
    yield "elementwise", "arange/full/linspace/eye", run_fill


def _cast_cases(device):
    kinds = [dt.float32, dt.float16, dt.int32, dt.int64, dt.int16, dt.int8, dt.uint8, dt.bool_]
    if device.has_fp64:
        kinds.append(dt.float64)
    for src in kinds:
        def run(src=src):
            # values in every type's range; halves so float -> int truncation is visible
            r = _rng(7)
            a = (r.integers(0, 200, size=(3, 43)) / 2.0) if src.is_floating else \
                r.integers(0, 100, size=(3, 43))
            a[0, :5] = 0
            a = a.astype(src.np)
            x = _put(a, src, device, "t")
            failed = []
            for dst in kinds:
                try:
                    _compare(x.to(dst).numpy(), a.astype(dst.np), 0, 0)
                except _Mismatch as e:
                    failed.append(f"-> {dst.name}: {e}")
            if failed:
                raise _Mismatch("; ".join(failed))
        yield "cast", f"{src.name} -> all", run


def _reduce_cases(device):
    kinds = [("sum", np.sum), ("mean", np.mean), ("prod", np.prod), ("amax", np.max),
             ("amin", np.min), ("argmax", np.argmax), ("argmin", np.argmin)]
    for name, g in kinds:
        for n in SIZES + (4099,):
            def run(name=name, g=g, n=n):
                r = _rng(n)
                lo, hi = (0.9, 1.1) if name == "prod" else (-2, 2)
                a = r.uniform(lo, hi, size=(n,)).astype(np.float32)
                x = _put(a, dt.float32, device, "s")
                got = getattr(x, name)().numpy()
                want = g(a.astype(np.float64))
                _compare(got, np.asarray(want).astype(got.dtype), 1e-4, 1e-5)
            yield "reduce", f"{name} n={n} sliced", run
        for shape, dims in (((33, 17), 0), ((33, 17), 1), ((5, 6, 7), (0, 2)), ((3, 1, 7), -1)):
            if name.startswith("arg") and isinstance(dims, tuple):
                continue      # argmax/argmin take one dim, as in PyTorch
            def run_dim(name=name, g=g, shape=shape, dims=dims):
                r = _rng(sum(shape))
                lo, hi = (0.9, 1.1) if name == "prod" else (-2, 2)
                a = r.uniform(lo, hi, size=shape).astype(np.float32)
                x = _put(a, dt.float32, device, "t")
                if name.startswith("arg"):
                    got = getattr(x, name)(dim=dims, keepdim=True).numpy()
                    want = np.expand_dims(g(a, axis=dims), dims)
                else:
                    got = getattr(x, name)(dim=dims, keepdim=True).numpy()
                    want = g(a.astype(np.float64), axis=dims, keepdims=True)
                _compare(got, np.asarray(want).astype(got.dtype), 1e-4, 1e-5)
            yield "reduce", f"{name} {shape} dim={dims} keepdim", run_dim
    for d in (dt.int32, dt.int64, dt.uint8, dt.bool_):
        def run_int(d=d):
            r = _rng(4)
            a = r.integers(0, 2 if d is dt.bool_ else 5, size=(7, 129)).astype(d.np)
            x = _put(a, d, device, "t")
            _compare(x.sum(dim=1).numpy(), a.astype(np.int64).sum(1), 0, 0)
            _compare(x.amax(dim=0).numpy(), a.max(0), 0, 0)
            _compare(x.argmax(dim=1).numpy(), a.argmax(1), 0, 0)
            _compare(x.all(dim=1).numpy(), a.all(1), 0, 0)
            _compare(x.any(dim=0).numpy(), a.any(0), 0, 0)
        yield "reduce", f"sum/amax/argmax/all/any {d.name} (7,129)", run_int


def _matmul_cases(device):
    shapes = [((1, 1), (1, 1)), ((7, 13), (13, 5)), ((33, 17), (17, 65)), ((64, 64), (64, 64)),
              ((2, 3, 9, 11), (11, 6)), ((4, 1, 5, 3), (2, 3, 7)), ((13,), (13, 4)),
              ((6, 13), (13,)), ((100,), (100,))]
    for d in (dt.float32, *([dt.float64] if device.has_fp64 else []), dt.int64):
        for sa, sb in shapes:
            for layout in ("c", "t"):
                def run(sa=sa, sb=sb, layout=layout, d=d):
                    r = _rng(len(sa) + sa[-1])
                    a = r.uniform(-1, 1, size=sa) if d.is_floating else r.integers(-3, 4, sa)
                    b = r.uniform(-1, 1, size=sb) if d.is_floating else r.integers(-3, 4, sb)
                    a, b = a.astype(d.np), b.astype(d.np)
                    out = _put(a, d, device, layout) @ _put(b, d, device, layout)
                    want = (a.astype(np.float64) @ b.astype(np.float64)).astype(d.np)
                    _compare(out.numpy(), want, 1e-5, 1e-5 * sa[-1])
                yield ("matmul",
                       f"{d.name} {sa}@{sb}{' transposed' if layout == 't' else ''}", run)


def _random_cases(device):
    def same_seed():
        a = creation.rand(1001, generator=Generator().manual_seed(5), device=device).numpy()
        b = creation.rand(1001, generator=Generator().manual_seed(5), device=device).numpy()
        c = creation.rand(1001, generator=Generator().manual_seed(6), device=device).numpy()
        _compare(a, b, 0, 0)
        if np.array_equal(a, c):
            raise _Mismatch("seeds 5 and 6 gave the same numbers")
    yield "random", "same seed, same numbers", same_seed

    def uniform():
        x = creation.rand(100_003, generator=Generator().manual_seed(1), device=device).numpy()
        if x.min() < 0 or x.max() >= 1:
            raise _Mismatch(f"uniform draw outside [0, 1): {x.min()}..{x.max()}")
        # 100k draws: mean within 5 standard errors of 1/2, variance of 1/12
        if abs(x.mean() - 0.5) > 5 * (1 / 12) ** 0.5 / 100_003 ** 0.5 or \
                abs(x.var() - 1 / 12) > 0.003:
            raise _Mismatch(f"uniform mean {x.mean():.4f} var {x.var():.4f}")
    yield "random", "rand n=100003 range, mean, variance", uniform

    def normal():
        for d in _floats(device):
            x = creation.randn(50_001, generator=Generator().manual_seed(2), dtype=d,
                               device=device).numpy().astype(np.float64)
            if not np.all(np.isfinite(x)) or abs(x.mean()) > 5 / 50_001 ** 0.5 or \
                    abs(x.std() - 1) > 0.02:
                raise _Mismatch(f"{d.name}: normal mean {x.mean():.4f} std {x.std():.4f}")
    yield "random", "randn mean, std (each float dtype)", normal

    def ints():
        x = creation.randint(-3, 7, (20_001,), generator=Generator().manual_seed(3),
                             device=device).numpy()
        counts = np.bincount(x + 3, minlength=10)
        if x.min() != -3 or x.max() != 6 or counts.min() < 1500:
            raise _Mismatch(f"randint range {x.min()}..{x.max()}, counts {counts.tolist()}")
    yield "random", "randint [-3, 7) range and spread", ints


_CASES = {"elementwise": _elementwise_cases, "cast": _cast_cases, "reduce": _reduce_cases,
          "matmul": _matmul_cases, "random": _random_cases}


def run_selftest(device=None, families=None, progress=None) -> list[CaseResult]:
    """Run every case of `families` (default: all) on `device`; never raises for a failing
    case. `progress(result)` is called after each case (the CLI streams rows with it)."""
    dev = get_device(device)
    fams = FAMILIES if not families else tuple(families)
    for f in fams:
        if f not in _CASES:
            raise ValueError(f"unknown selftest family {f!r}; choose from {', '.join(FAMILIES)}")
    results = []
    for fam in fams:
        for family, case, thunk in _CASES[fam](dev):
            t0 = time.perf_counter()
            try:
                thunk()
                res = CaseResult(family, case, True)
            except _Mismatch as e:
                res = CaseResult(family, case, False, str(e))
            except Exception as e:  # a crash in one case must not stop the others
                tb = traceback.extract_tb(e.__traceback__)[-1]
                res = CaseResult(family, case, False,
                                 f"{type(e).__name__}: {e} ({tb.filename.split('/')[-1]}:"
                                 f"{tb.lineno})")
            res.seconds = time.perf_counter() - t0
            results.append(res)
            if progress is not None:
                progress(res)
    return results
