"""Trace one call through clgrad's floors: every call from one clgrad module into another, as
(caller floor -> callee floor), for `(a*b).sum().backward()` by default.

    python tools/trace_walk.py [--device cl:0] [--calls]

The expression runs once first, so kernel builds and caches do not show in the walk. The floor
table is tests/test_imports.py's (docs/architecture.md draws the same one)."""
from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import clgrad  # noqa: E402


def _floor_of():
    spec = importlib.util.spec_from_file_location("test_imports", ROOT / "tests" /
                                                  "test_imports.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.floor_of


def _module(frame):
    path = frame.f_code.co_filename
    if not path.startswith(str(ROOT / "clgrad")):
        return None
    parts = list(pathlib.Path(path).relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def trace(fn):
    """[(depth, caller module, callee module, callee function)] for every call from one clgrad
    module into another; depth counts the module changes already on the stack."""
    edges = []

    def prof(frame, event, arg):
        if event != "call":
            return
        callee = _module(frame)
        if callee is None:
            return
        chain = []
        back = frame.f_back
        while back is not None and back.f_code.co_filename != __file__:
            m = _module(back)
            if m is not None:
                chain.append(m)
            back = back.f_back           # library frames (contextlib, functools) are skipped
        if chain and chain[0] != callee:
            depth = sum(1 for x, y in zip(chain, chain[1:]) if x != y)
            code = frame.f_code
            # a method of an object handed down (self / cls), or a function handed down as a
            # callback (a node's backward), against a function the caller names by import
            handed = bool(code.co_varnames[:1] in (("self",), ("cls",), ("ctx",), ("c",))
                          or code.co_name in ("backward", "<lambda>") or code.co_freevars)
            edges.append((depth, chain[0], callee, code.co_name, handed))

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return edges


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--calls", action="store_true", help="list every module-changing call")
    args = p.parse_args(argv)
    a = clgrad.randn(4, 4, device=args.device, requires_grad=True)
    b = clgrad.randn(4, 4, device=args.device, requires_grad=True)

    def walk():
        (a * b).sum().backward()
    walk()
    a.grad = b.grad = None
    floor_of = _floor_of()
    edges = trace(walk)
    up = [(s, t, f, h) for _, s, t, f, h in edges if floor_of(t) > floor_of(s)]
    mods = sorted({m for e in edges for m in e[1:3]}, key=lambda m: (floor_of(m), m))
    launches = sum(1 for e in edges if e[2] == "clgrad.runtime.device" and e[3] == "queue")
    if args.calls:
        for depth, s, t, f, h in edges:
            arrow = "  " if floor_of(t) <= floor_of(s) else ("up" if h else "UP")
            print(f"{arrow} {'  ' * depth}{floor_of(t)} {t}.{f}")
    print(f"{len(edges)} calls from one clgrad module into another, {launches} kernel launches; "
          f"{len(mods)} modules:")
    for m in mods:
        print(f"  {floor_of(m)} {m}")
    counts = {}
    for s, t, f, h in up:
        counts[(s, t, f, h)] = counts.get((s, t, f, h), 0) + 1
    print(f"{len(up)} calls go up a floor; each is a method of an object or a callback handed "
          "down ('up'), or a function named by import ('UP'):")
    for (s, t, f, h), n in sorted(counts.items()):
        print(f"  {'up' if h else 'UP'} x{n}: {s} -> {t}.{f}")


if __name__ == "__main__":
    main()
