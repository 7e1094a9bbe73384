"""Seeded random numbers: a Philox counter-based Generator whose draws run on the device."""
from __future__ import annotations

import math
import os
import time

from .. import ops
from ..runtime import capture


class Generator:
    """Philox4x32-10 state: a 64-bit seed and a counter offset advanced by every draw.

    The same seed gives the same numbers on every device and vendor: element i of a draw is a
    pure function of (seed, offset + i)."""

    def __init__(self, device=None):
        self.device = device
        self._seed = 67280421310721
        self._offset = 0

    def manual_seed(self, seed: int) -> "Generator":
        seed = int(seed)
        if not -(1 << 63) <= seed < (1 << 64):
            raise RuntimeError(f"Overflow when unpacking long: seed {seed} does not fit 64 bits")
        self._seed = seed & ((1 << 64) - 1)
        self._offset = 0
        return self

    def seed(self) -> int:
        s = int.from_bytes(os.urandom(8), "little") ^ time.monotonic_ns()
        self.manual_seed(s & ((1 << 63) - 1))
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        return (self._seed, self._offset)

    def set_state(self, state) -> "Generator":
        self._seed, self._offset = int(state[0]), int(state[1])
        return self

    def _take(self, n: int) -> tuple[int, int]:
        offset = self._offset
        self._offset += max(int(n), 0)
        capture.note_draw(self, self._seed, offset, n)   # a captured step draws anew per replay
        return self._seed, offset


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (and so every draw that names no generator)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)


def fill_random(t, kind: str, a, b, generator=None):
    """Fill tensor `t` in place with draws of `kind` (see ops.random_fill)."""
    gen = generator or default_generator
    seed, offset = gen._take(t.numel())
    return ops.random_fill(t, kind, seed, offset, a, b)


def fill_trunc_normal(t, mean: float, std: float, a: float, b: float, generator=None):
    """Fill tensor `t` in place with Normal(mean, std) truncated to [a, b]: the inverse CDF of
    a uniform draw between the CDF values of the bounds (as PyTorch does), in one kernel."""
    def cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0
    lo, hi = 2 * cdf((a - mean) / std) - 1, 2 * cdf((b - mean) / std) - 1
    gen = generator or default_generator
    seed, offset = gen._take(t.numel())
    dt = t.dtype
    double = dt.ctype == "double"
    compute = "double" if double else "float"
    uni = "clg_uniform_d" if double else "clg_uniform_f"
    pre = ("philox.cl", "philox_f64.cl", "nn_random.cl") if double else ("philox.cl",
                                                                          "nn_random.cl")
    expr = (f"clamp(x4 + x5 * F(1.4142135623730951) * clg_erfinv(x2 + (x3 - x2) * "
            f"{uni}(clg_random_words(x0, x1, clg_gid))), x6, x7)")
    ops.launch_ew_raw(f"trunc_normal_{dt.short}", expr, t, compute, pre,
                      [("ulong", seed & ((1 << 64) - 1)), ("ulong", offset),
                       (compute, lo), (compute, hi), (compute, float(mean)),
                       (compute, float(std)), (compute, float(a)), (compute, float(b))])
    return t
