"""Step capture: record every kernel launch of one call (through the hook in Kernel.__call__) and
replay the list later as one enqueue per launch, with only the arguments that must change set anew.

A `Recording` is active while the captured call runs eagerly. It keeps each launch's kernel, sizes
and arguments, pins every device buffer a launch touched (runtime/memory.py then keeps it out of
the pool even when its tensor dies; only the recorded step itself reuses the ones it freed, as
its eager twin would reuse pooled memory), and marks the arguments that change between steps:

- random draws: `note_draw(generator, seed, offset, n)` (called by `Generator._take`) names the
  Philox (seed, offset) pairs of this call; a launch whose arguments hold such a pair next to each
  other gets both from the generator again at each replay, so replays continue the same stream as
  eager steps would;
- other step-dependent scalars: `vary(positions, provider)` (the optimizer's fused update says so
  for its learning rate and bias corrections) marks the next launch: at each replay `provider()`
  returns the values of those arguments (and advances whatever host state it keeps).

`Recording.finish()` turns it into a `Capture`: one cl.Kernel per launch with its arguments set
once, so a replay is a few scalar argument writes and one `enqueue_nd_range_kernel` per launch.
"""
from __future__ import annotations

import threading

import pyopencl as cl

from . import faults, lazy, memory, program
from .memory import count

_active: Recording | None = None


class _Pin:
    """A device buffer some capture replays into: `freed` is (pool, size) once its tensor died."""

    __slots__ = ("raw", "holders", "freed")

    def __init__(self, raw):
        self.raw = raw
        self.holders = 0
        self.freed = None

    def free(self, pool, size: int) -> None:
        self.freed = (pool, size)
        rec = _active
        if rec is not None and self.holders == 1 and self.raw in rec.pinned:
            # a temporary of the step being recorded: later allocations of that step may reuse
            # it, as eager steps reuse pooled memory (the replay repeats the same data flow)
            rec.spare.setdefault((id(pool), size), []).append(self)


def _pin(raw) -> None:
    pin = memory._pinned.get(raw)
    if pin is None:
        pin = memory._pinned[raw] = _Pin(raw)
    pin.holders += 1


def _unpin(raw) -> None:
    pin = memory._pinned.get(raw)
    if pin is None:
        return
    pin.holders -= 1
    if pin.holders <= 0:
        del memory._pinned[raw]
        if pin.freed is not None:
            pool, size = pin.freed
            pool.release(raw, size)


def note_draw(generator, seed: int, offset: int, n: int) -> None:
    """A generator handed out Philox counters [offset, offset + n) of `seed` (cheap when idle)."""
    rec = _active
    if rec is not None and threading.get_ident() == rec.thread:
        rec.draws[(seed, offset)] = (generator, offset, int(n))


def vary(positions, provider) -> None:
    """The next launch's arguments at `positions` come from `provider()` at each replay."""
    rec = _active
    if rec is not None and threading.get_ident() == rec.thread:
        lazy.flush()        # a pending result's launch must not take the next launch's mark
        rec.pending = (tuple(positions), provider)


def recording() -> bool:
    return _active is not None


class Recording:
    """The launches of one eager call, while it runs (see the module docstring)."""

    def __init__(self):
        self.launches: list = []          # [Kernel, global, local, [args]]
        self.draws: dict = {}             # (seed, offset) -> (generator, offset, n)
        self.varying: list = []           # (launch index, positions, provider)
        self.random: list = []            # (launch index, position of seed, seed, offset)
        self.pending = None
        self.pinned: set = set()
        self.thread = threading.get_ident()     # other threads' launches (loader workers) are theirs
        self.transfers = {"h2d": 0, "d2h": 0}   # host transfers of the recorded call
        self.spare: dict = {}                   # (pool, size) -> pins of temporaries it freed

    def _reuse(self, pool, size: int):
        if threading.get_ident() != self.thread:
            return None
        spare = self.spare.get((id(pool), size))
        while spare:
            pin = spare.pop()
            if pin.freed is not None and pin.holders == 1:
                pin.freed = None
                return pin.raw
        return None

    def _transfer(self, kind: str) -> None:
        if threading.get_ident() == self.thread:
            self.transfers[kind] += 1

    def __enter__(self) -> Recording:
        global _active
        if _active is not None:
            raise RuntimeError("a step capture is already recording (clgrad.jit functions cannot "
                               "be nested)")
        _active = self
        program._record = self._record
        memory._on_transfer = self._transfer
        memory._reuse = self._reuse
        return self

    def __exit__(self, *exc) -> None:
        global _active
        if exc[0] is None:
            lazy.flush()    # results still pending belong to the recorded call
        _active = None
        program._record = None
        memory._on_transfer = None
        memory._reuse = None
        self.spare = {}
        if exc[0] is not None:
            self.close()

    def _record(self, kernel, global_size, local_size, args) -> None:
        if threading.get_ident() != self.thread:
            return
        i = len(self.launches)
        args = list(args)
        self.launches.append([kernel, tuple(global_size), local_size and tuple(local_size),
                              args])
        pinned = self.pinned
        for a in args:
            if isinstance(a, cl.MemoryObjectHolder) and a not in pinned:
                pinned.add(a)
                _pin(a)
        if self.pending is not None:
            self.varying.append((i, *self.pending))
            self.pending = None
        draws = self.draws
        if draws:
            for j in range(len(args) - 1):
                a, b = args[j], args[j + 1]
                if type(a) is int and type(b) is int and (a, b) in draws:
                    self.random.append((i, j, a, b))

    def substitute(self, old, new) -> None:
        """Every launch that used buffer `old` uses `new` instead (an input's private copy)."""
        for launch in self.launches:
            launch[3] = [new if a is old else a for a in launch[3]]
        if new not in self.pinned:
            self.pinned.add(new)
            _pin(new)
        if old in self.pinned:
            self.pinned.discard(old)
            _unpin(old)

    def uses(self, raw) -> bool:
        return any(a is raw for launch in self.launches for a in launch[3])

    def providers(self) -> list:
        return [p for _, _, p in self.varying]

    def close(self) -> None:
        """Give back the pins (a capture that will not be replayed)."""
        for raw in self.pinned:
            _unpin(raw)
        self.pinned = set()

    def finish(self) -> Capture:
        cap = Capture(self)
        self.pinned = set()             # the Capture holds them now
        return cap


class Capture:
    """A recorded call ready to replay: one kernel object per launch, arguments set once."""

    def __init__(self, rec: Recording):
        self.pinned = rec.pinned
        self.plan = []                  # (queue, cl.Kernel, global, local)
        kernels = []
        for kernel, g, l, args in rec.launches:
            k = cl.Kernel(kernel.cl_kernel.program, kernel.name)
            types = list(kernel.layout.types if isinstance(kernel.layout, program.Args)
                         else kernel.layout)
            k.set_scalar_arg_dtypes(types)
            k.set_args(*args)
            kernels.append((k, types))
            self.plan.append((kernel.device.queue, k, g, l))
        self.n_launches = len(self.plan)
        # launches that may set a device's error flag arm it again at each replay, so the sync
        # after a replay checks the flag as it would after the eager step
        self.flags = {a for *_, args in rec.launches for a in faults.flag_raws(args)}
        # random draws: per generator, (kernel, seed position, type, offset from the first draw)
        by_gen: dict = {}
        for gen, offset, n in rec.draws.values():
            first, end, _ = by_gen.get(id(gen), (offset, offset + n, gen))
            by_gen[id(gen)] = (min(first, offset), max(end, offset + n), gen)
        self.random = []
        for gid, (first, end, gen) in by_gen.items():
            sites = []
            for i, j, seed, offset in rec.random:
                if rec.draws[(seed, offset)][0] is gen:
                    k, types = kernels[i]
                    sites.append((_setter(k), j, types[j], types[j + 1], offset - first))
            if sites:
                self.random.append((gen, end - first, sites))
        self.varying = []
        for i, positions, provider in rec.varying:
            k, types = kernels[i]
            self.varying.append((_setter(k), tuple((p, types[p]) for p in positions),
                                 provider))

    def replay(self) -> None:
        """Enqueue every launch again (never waits); step-dependent arguments are set first."""
        lazy.flush()        # pending results may read buffers this replay overwrites
        for gen, total, sites in self.random:
            seed, base = gen._take(total)
            for put, j, tseed, toff, rel in sites:
                put(j, tseed(seed))
                put(j + 1, toff(base + rel))
        for put, slots, provider in self.varying:
            for (p, t), v in zip(slots, provider()):
                put(p, t(v))
        enqueue = cl.enqueue_nd_range_kernel
        for q, k, g, l in self.plan:
            enqueue(q, k, g, l)
        if self.flags:
            faults.arm_raws(self.flags)
        count("launches", self.n_launches)
        count("replays")
        count("replay_launches", self.n_launches)

    def close(self) -> None:
        """Unpin its buffers: those whose tensors died go back to the pool."""
        self.plan = []
        self.random = []
        self.varying = []
        for raw in self.pinned:
            _unpin(raw)
        self.pinned = set()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _setter(k):
    """k.set_arg for a numpy scalar. pyopencl's public set_arg tries argument kinds in turn
    (about 10 us a call here); its buffer setter takes the scalar's bytes directly (0.1 us)."""
    return getattr(k, "_set_arg_buf", None) or k.set_arg


def copy(queue, dst, dst_offset: int, src, src_offset: int, nbytes: int) -> None:
    """Device-to-device copy of `nbytes` (an input's new data into its captured buffer)."""
    if nbytes > 0:
        cl.enqueue_copy(queue, dst, src, byte_count=nbytes, src_offset=src_offset,
                        dst_offset=dst_offset)
