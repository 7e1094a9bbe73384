"""Seeded random numbers: a Philox counter-based Generator whose draws run on the device."""
from __future__ import annotations

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
