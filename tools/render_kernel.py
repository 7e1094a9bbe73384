"""Print the exact OpenCL source clgrad builds for an op: debugging a kernel starts here.

    python tools/render_kernel.py exp float32
    python tools/render_kernel.py add int64 --shape 3,4 --layout permuted
    python tools/render_kernel.py sum float16          # reductions: sum mean prod amax amin
    python tools/render_kernel.py argmax int32         #   argmax argmin all any
    python tools/render_kernel.py matmul float32
    python tools/render_kernel.py cast:float16 float32 # cast from DTYPE to float16
    python tools/render_kernel.py randn float32        # rand randn randint arange linspace eye

OP is any record of the op table (clgrad.ops.TABLE) by name (exp, add, where, ...), a reduction,
matmul, cast:DST, a creation kernel, or a Tensor method taking only tensors. The op runs once on
small inputs with every kernel request recorded, so what is printed is what gets built; the
shape and layout matter because the rank of the strided loop is part of the program. The
compiler's build log follows each source, as a comment, when the compiler wrote one."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import clgrad  # noqa: E402
from clgrad import ops  # noqa: E402
from clgrad.dtypes import to_dtype  # noqa: E402
from clgrad.runtime import codegen, program  # noqa: E402

REDUCTIONS = ("sum", "mean", "prod", "amax", "amin", "argmax", "argmin", "all", "any")
CREATION = ("rand", "randn", "randint", "arange", "linspace", "eye", "zeros", "ones", "full")


def _input(shape, dtype, device, layout, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, size=shape)
    t = clgrad.tensor(a, dtype=dtype, device=device)
    if layout == "permuted" and t.ndim >= 2:
        t = clgrad.tensor(np.ascontiguousarray(a.T), dtype=dtype, device=device).T
    elif layout == "sliced" and t.ndim >= 1:
        t = clgrad.zeros(*shape[:-1], 2 * shape[-1], dtype=dtype, device=device)[..., ::2]
    return t


def _arity(op: ops.Op) -> int:
    found = [int(m) for m in re.findall(r"\bx(\d)\b", op.expr + " " + (op.int_expr or ""))]
    return max(found) + 1 if found else 0


def run_op(name: str, dtype, device, shape, layout):
    """Run OP once on small inputs (the kernels it requests are captured by the caller)."""
    x = lambda i=0: _input(shape, dtype, device, layout, i)  # noqa: E731
    if name.startswith("cast:"):
        return x().to(to_dtype(name.split(":", 1)[1]))
    if name in REDUCTIONS:
        return getattr(x(), name)(dim=-1)
    if name == "matmul":
        return x() @ x(1).mT
    if name in CREATION:
        n = shape[0] if shape else 4
        if name == "randint":
            return clgrad.randint(0, 10, shape, dtype=dtype, device=device)
        if name in ("arange", "eye"):
            return getattr(clgrad, name)(n, dtype=dtype, device=device)
        if name == "linspace":
            return clgrad.linspace(0, 1, n, dtype=dtype, device=device)
        if name == "full":
            return clgrad.full(shape, 2, dtype=dtype, device=device)
        return getattr(clgrad, name)(*shape, dtype=dtype, device=device)
    rec = ops.TABLE.get(name)
    if rec is not None:
        args = [x(i) for i in range(_arity(rec))]
        if name == "where":       # a bool condition from the host: no kernel of its own
            cond = np.arange(int(np.prod(shape))).reshape(shape) % 2 == 0
            args[0] = clgrad.tensor(cond, device=device)
        return ops.ew(rec, *args)
    method = getattr(clgrad.Tensor, name, None)
    if callable(method):
        return method(x())
    raise SystemExit(f"unknown op {name!r}: an op table record name, a reduction "
                     f"({', '.join(REDUCTIONS)}), matmul, cast:DTYPE, one of "
                     f"{', '.join(CREATION)}, or a Tensor method")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("op")
    ap.add_argument("dtype")
    ap.add_argument("--device", default=None, help="device spec (default: the chosen one)")
    ap.add_argument("--shape", default="3,5", help="comma-separated input shape (default 3,5)")
    ap.add_argument("--layout", choices=("contiguous", "permuted", "sliced"),
                    default="contiguous")
    ap.add_argument("--names", action="store_true", help="only list the kernels' names")
    args = ap.parse_args(argv)
    dtype = to_dtype(args.dtype)
    device = clgrad.device(args.device)
    shape = tuple(int(s) for s in args.shape.split(",") if s.strip())
    # inputs are made first, outside the capture, so only the op's own kernels are shown
    codegen._memo.clear()
    with program.capture_sources() as seen:
        run_op(args.op, dtype, device, shape, args.layout)
    inputs_only = {"copy_", "fill_"}
    shown = [(n, o, s) for n, o, s in seen if not any(n.startswith(p) for p in inputs_only)] \
        or seen
    for name, options, source in dict(((n, s), (n, o, s)) for n, o, s in shown).values():
        if args.names:
            print(name)
            continue
        print(f"/* ==== kernel {name} on {device.spec} ({device.name}); "
              f"build options: {' '.join(options)} ==== */")
        print(source)
        log = (program.build_log(device, source, options) or "").strip()
        if log:
            print("/* build log:\n" + log.replace("*/", "* /") + "\n*/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
