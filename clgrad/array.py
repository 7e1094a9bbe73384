"""Floor 2, the Array: a device buffer seen through a View, with a dtype. No autograd and no
Tensor here: this is the seam where laziness, fusion and step capture can live later. Tensor
subclasses Array, so the ops floor takes and returns Arrays and works on Tensors unchanged."""
from __future__ import annotations

import math
import weakref
from threading import get_ident as _ident

import numpy as np

from . import dtypes as dt
from .dtypes import DType
from .runtime import Buffer, Device, check_dtype, lazy
from .runtime.fusion import ViewPlan, absorb_copies, chain_key, plan_chain
from .runtime.memory import count
from .view import View


# contiguous View by shape: most outputs are fresh contiguous tensors of a shape seen before
_contiguous: dict = {}


class Size(tuple):
    """A tuple of sizes that prints as PyTorch's `torch.Size`."""

    def __repr__(self) -> str:
        return f"clgrad.Size({list(self)})"

    def numel(self) -> int:
        return math.prod(self)


class Array:
    """buffer + view + dtype. `_make` builds one over an existing buffer (a view costs no copy),
    `_empty` allocates, `_from_numpy` uploads, `_pending` defers an elementwise op."""

    _lazy = None            # the _Lazy node of a pending Array (then it has no _buf yet)

    def __getattr__(self, name):
        # only reached when normal lookup fails: `_buf` of a pending Array launches it
        if name == "_buf":
            d = self.__dict__
            lz = d.get("_lazy")
            if lz is not None:
                if lz.prod:
                    _realize_producer(lz)
                else:
                    lazy.realize()
                return d["_buf"]
            # another thread's flush may have launched it between the failed lookup and here
            # (it sets _buf, then clears _lazy)
            buf = d.get("_buf")
            if buf is not None:
                return buf
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    @classmethod
    def _make(cls, buf: Buffer, view: View, dtype: DType) -> "Array":
        a = object.__new__(cls)
        a._buf = buf
        a._view = view
        a.dtype = dtype
        return a

    @classmethod
    def _empty(cls, shape, dtype: DType, device: Device) -> "Array":
        check_dtype(device, dtype)
        view = _contiguous.get(shape) if isinstance(shape, tuple) else None
        if view is None:
            shape = tuple(int(s) for s in shape)
            view = View.contiguous(shape)
            if len(_contiguous) >= 4096:
                _contiguous.clear()
            _contiguous[shape] = view
        return cls._make(Buffer(device, view.numel * dtype.itemsize), view, dtype)

    @classmethod
    def _from_numpy(cls, arr: np.ndarray, dtype: DType, device: Device) -> "Array":
        arr = np.asarray(arr)
        if dtype is dt.bfloat16:
            host = dt.bf16_bits(arr)
        else:
            host = np.ascontiguousarray(arr.astype(dtype.np, copy=False))
        if dtype is dt.bool_:
            host = host.view(np.uint8)
        a = cls._empty(arr.shape, dtype, device)
        a._buf.write(host)
        return a

    @classmethod
    def _pending(cls, plan, args, producer=False) -> "Array":
        """A pending result of the elementwise plan `plan` (ops/base.py's _EwPlan: its output
        view, dtype and device, `fuse` = (name, expression, compute type, preamble files) and
        `launch_for_run()`) over `args`: Arrays and converted scalars. A `producer` is not
        elementwise (ops/linalg.py's _GemmPlan, ops/reduce.py's _ReducePlan: `node`, `nbytes`,
        `takes(name, other)`, `produce(out_raw, args, name, other)`) and its args
        are launched Arrays: it launches on its own, computing an elementwise op that is its
        only use in its epilogue when `takes` says it can."""
        with lazy.lock:
            if len(lazy.pending) >= MAX_PENDING:
                lazy.realize()              # also forgets the chains nobody holds any more
            node = _Lazy(plan, args)
            if producer:
                node.prod = True
                node.leaves = 1             # a consumer reads it as one stored input
            return cls._holding(node)

    @classmethod
    def _holding(cls, node) -> "Array":
        """The Array of pending node `node` (listed as pending; the lock held)."""
        a = cls._make(None, node.view, node.dtype)
        del a._buf                          # reading it now reaches __getattr__
        a._lazy = node
        node.ref = weakref.ref(a)
        lazy.pending.append(weakref.ref(node))      # a chain nobody holds is simply dropped
        return a

    @classmethod
    def _pending_view(cls, lz, view: View) -> "Array":
        """`view` of the pending product lz's value (a transpose, a reshape): pending as well,
        so that the product can still launch straight into the memory its value is copied to
        (a .grad slot: runtime/fusion.absorb_copies). Launching the view launches the product
        (once, whichever is read first); the view then shares its buffer."""
        with lazy.lock:
            if len(lazy.pending) >= MAX_PENDING:
                lazy.realize()
            root = lz.base if lz.base is not None else lz
            if root.buf is not None:
                return cls._make(root.buf, view, root.dtype)
            node = _Lazy(ViewPlan(root, view), ())
            node.prod, node.leaves, node.deep = True, 1, True
            node.base = root
            node.args = [root]          # read like an input: the product launches first
            return cls._holding(node)

    def _write_pending(self, plan, args) -> "Array":
        """Write the result of the store plan `plan` (ops/base.py's _StorePlan: `fuse`,
        `out_view`, `out_dtype`, `device`, `store(dst, args)`) into this real Array, pending:
        its version counts the write now, the data arrive at the next launch."""
        buf = self._buf
        with lazy.lock:
            if len(lazy.pending) >= MAX_PENDING or buf.serial in lazy.reads:
                lazy.realize()              # a pending read of this buffer goes first
            node = _Lazy(plan, args)
            node.target = (buf, self._view, self.dtype)    # what it is now, as for reads
            lazy.writes += 1
            node.ref = _nothing
            lazy.pending.append(lambda: node)   # held strongly: a write happens regardless
        buf.version += 1
        return self

    @property
    def device(self) -> Device:
        lz = self._lazy
        return self._buf.device if lz is None else lz.device

    @property
    def shape(self) -> Size:
        return Size(self._view.shape)

    @property
    def ndim(self) -> int:
        return len(self._view.shape)

    def numel(self) -> int:
        return self._view.numel

    def is_contiguous(self, memory_format=None) -> bool:
        return self._view.is_contiguous()

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.numel() * self.dtype.itemsize


# ---- fusion: pending elementwise results ---------------------------------------------------------
MAX_OPS = 16            # ops in one fused kernel (register pressure, compile time)
MAX_LEAVES = 12         # distinct input tensors of one fused kernel (kernel argument space)
MAX_PENDING = 256       # pending results before they launch anyway
# storage types whose values a fused kernel keeps in a C variable exactly as memory would
FUSIBLE = frozenset(("float32", "float64", "bool", "uint8", "int8", "int16", "int32", "int64"))


def _nothing():
    return None


class _Lazy:
    """A pending elementwise op: its plan, its arguments (a pending input is its node), how big
    the chain behind it is, and once launched, the buffer holding its value."""

    __slots__ = ("plan", "args", "device", "view", "dtype", "compute", "ref", "keep", "buf",
                 "size", "leaves", "arr", "mat", "used", "grp", "target", "deep", "prod",
                 "into", "base", "__weakref__")

    def __init__(self, plan, args):
        size, leaves, out = 1, 0, []
        # a real input is kept as (buffer, view, dtype): what it is now, whatever later
        # happens to the Array object (`.data = ...` gives it another buffer)
        for a in args:
            if isinstance(a, Array):
                lz = a._lazy
                if lz is None:
                    leaves += 1
                    a = (a._buf, a._view, a.dtype)
                    _reads.add(a[0].serial)      # a write into it must wait for this read
                else:
                    size += lz.size
                    leaves += lz.leaves
                    a = lz
            out.append(a)
        if size > MAX_OPS or leaves > MAX_LEAVES:
            lazy.realize()                    # start a new chain over launched inputs
            self.__init__(plan, args)
            return
        self.args = out
        self.deep = size > 1                  # some input is pending too
        self.plan = plan
        self.device, self.view, self.dtype, self.compute = plan.node
        self.size, self.leaves = size, leaves
        self.keep = self.buf = self.target = self.into = self.base = None
        self.prod = False       # a producer (a GEMM), not an elementwise op
        # keep: weakly, autograd's handle on it as a saved output; target: (buffer, view,
        # dtype) a pending write stores into; base: the product a view of a product reads

    def value(self):
        """The buffer holding this node's value, launching what is pending first (a saved
        output's handle calls this)."""
        if self.buf is None:
            lazy.realize()
        return self.buf


def _leaf_of(x):
    """(buffer, view, dtype) of a launched argument: a real input or an already stored node."""
    if type(x) is _Lazy:
        return x.buf, x.view, x.dtype
    return x


_reads = lazy.reads     # the set object itself: lazy.py only ever clears it

_chains: dict = {}      # structure and views of a run of segments -> runtime/fusion.ChainPlan
MAX_SEGMENTS = 8        # independent chains in one launch
MAX_OPERANDS = 24       # buffers of one launch, all chains together


def _realize():
    me = _ident()
    if lazy.owner == me:
        return                          # this flush's own launches (only this thread sets it)
    with lazy.lock:
        lazy.owner = me
        try:
            _realize_pending()
        finally:
            # cleared only now: another thread that saw pending work waits on the lock
            # until it is enqueued, so its next launch cannot overtake it
            lazy.pending.clear()
            lazy.reads.clear()
            lazy.writes = 0
            lazy.owner = None


def _realize_producer(n):
    """Launch only the pending producer n (its inputs were launched when it was asked for, its
    output is fresh), leaving the other pending work pending, unless a pending write exists
    (then everything launches, in order, as for any other read)."""
    if lazy.owner == _ident():
        return
    with lazy.lock:
        if n.buf is not None:
            return
        if lazy.writes:
            _realize()
            return
        lazy.owner = _ident()           # its launch must not launch the rest
        try:
            _produce_now(n)
        finally:
            lazy.owner = None


def _produce_now(n):
    """Launch producer n alone, out of its flush (the lock held)."""
    a = n.ref()
    n.arr = a if a is not None and a.__dict__.get("_lazy") is n else None
    _produce(n, n)
    n.mat, n.grp = True, -1         # later flushes read it as a launched input
    n.args = n.arr = n.plan = None


def _realize_pending():
    pending = lazy.pending
    if len(pending) == 1:
        # the common case (an op whose result is read at once): no grouping to do
        n = pending[0]()
        if n is not None and n.plan is None:
            return                      # a producer already launched on its own
        if n is not None and not n.deep:
            if n.prod:
                a = n.ref()
                n.arr = a if a is not None and a.__dict__.get("_lazy") is n else None
                keep = n.keep
                if n.arr is not None or (keep is not None and keep() is not None):
                    _produce(n, n)
                n.args = n.arr = n.plan = None
            elif n.target is None:
                _launch_alone(n)
            else:
                _launch_one(n)
            return
        nodes = [] if n is None else [n]
    else:
        # (a producer launched on its own is still listed: skip it)
        nodes = [n for n in map(lambda r: r(), pending) if n is not None and n.plan is not None]
    if not nodes:
        return
    for n in nodes:
        a = n.ref()
        n.arr = a if a is not None and a.__dict__.get("_lazy") is n else None
        keep = n.keep
        n.mat = n.used = (n.arr is not None or n.target is not None or
                          (keep is not None and keep() is not None))
        n.grp = None            # the marking below counts a producer's readers in it
    # consumers before their inputs: mark what is needed and what must be stored (a
    # result something holds, or one read by an op of another shape or compute type)
    for n in reversed(nodes):
        if not n.used:
            continue
        for x in n.args:
            if type(x) is _Lazy and x.buf is None:
                x.used = True
                # a 0-d node is inlined into consumers of any shape (its leaves are 0-d too,
                # read broadcast): the loss's scalar arithmetic joins the gradient it seeds
                if (x.view.shape != n.view.shape and x.view.shape != ()) or \
                        x.compute != n.compute or x.device is not n.device or x.prod:
                    x.mat = True
                    x.grp = x.grp + 1 if type(x.grp) is int else 1    # its readers
    for n in nodes:
        # a ReLU (or ReLU's backward, masking a product by a launched ReLU output) that is
        # the only use of a product: the product's epilogue computes it
        if not n.used or n.prod or n.target is not None:
            continue
        name, args = n.plan.fuse[0], n.args
        if name == "relu" and len(args) == 1:
            other = None
        elif name == "threshold_backward" and len(args) == 2 and type(args[1]) is tuple:
            other = args[1]
        else:
            continue
        g = args[0]
        if type(g) is _Lazy and g.prod and g.buf is None and g.arr is None and \
                g.grp == 1 and (g.keep is None or g.keep() is None) and \
                g.dtype is n.dtype and g.view.shape == n.view.shape and \
                g.plan.takes(name, other):
            n.into, n.mat, g.used, g.mat = g, True, False, False
    absorb_copies(nodes)
    for n in nodes:
        n.grp = None
    groups, key, ops, leaves = [], None, 0, 0
    for n in nodes:
        if n.mat and (n.prod or n.into is not None):
            groups.append(n)        # launches on its own
            n.grp = len(groups)
            key = None
        elif n.mat:
            k = (n.device.index, n.view.shape, n.compute)
            if k != key or ops + n.size > 2 * MAX_OPS or leaves + n.leaves > MAX_LEAVES \
                    or len(groups[-1]) >= MAX_SEGMENTS:
                groups.append([])
                key, ops, leaves = k, 0, 0
            n.grp = len(groups)
            groups[-1].append(n)
            ops += n.size
            leaves += n.leaves
            if n.target is not None:
                key = None          # a write ends its chain: later ops may read it
    try:
        run = []
        for g in groups:
            if type(g) is _Lazy:
                # in creation order: letting it go before the chains collected so far would
                # make what joins them depend on what happened to be pending before it
                if run:
                    _launch(run)
                    run = []
                _produce(g, g if g.into is None else g.into)
                continue
            seg = _Segment(g)
            if run and not _joins(run, seg):
                _launch(run)
                run = []
            run.append(seg)
        if run:
            _launch(run)
    finally:
        for n in nodes:
            n.args = n.arr = n.plan = n.target = n.into = None


class _Segment:
    """One group's kernel part: its ops in launch order with their references (temporaries:
    ops of the group and pending ops inlined into it; leaves: launched Arrays and stored
    nodes; scalars), outputs (fresh buffers or write targets) and indexing."""

    def __init__(self, group):
        self.group = group
        self.grp = group[0].grp
        self.body, self.temps, self.leaves, self.leaf_ids = [], {}, [], {}
        self.scalars, self.preamble, self.deps = [], [], set()
        for n in group:
            if id(n) not in self.temps:
                self.visit(n)
        first = group[0]
        self.device, self.compute = first.device, first.compute
        self.outputs = tuple(self.temps[id(n)] for n in group)
        self.single = len(group) == 1 and len(self.body) == 1
        self.writes = [(n.target[0], *n.target[1].extent()) for n in group
                       if n.target is not None]

    def visit(self, n) -> int:
        refs = []
        for x in n.args:
            if type(x) is _Lazy and (x.grp == self.grp or not x.mat):
                t = self.temps.get(id(x))
                refs.append(("t", self.visit(x) if t is None else t))
            elif type(x) is _Lazy or type(x) is tuple:
                lid = id(x) if type(x) is _Lazy else (id(x[0]), x[1].shape, x[1].strides,
                                                       x[1].offset, x[2].name)
                j = self.leaf_ids.get(lid)
                if j is None:
                    j = self.leaf_ids[lid] = len(self.leaves)
                    self.leaves.append(_leaf_of(x) if type(x) is not _Lazy else x)
                    if type(x) is _Lazy:
                        self.deps.add(x.grp)
                refs.append(("l", j))
            else:
                refs.append(("s", len(self.scalars)))
                self.scalars.append(x)
        name, expr, _, pre = n.plan.fuse
        for f in pre:
            if f not in self.preamble:
                self.preamble.append(f)
        self.temps[id(n)] = t = len(self.body)
        self.body.append((name, expr, n.dtype, tuple(refs)))
        return t

    def read_bufs(self):
        return [leaf[0] for leaf in self.leaves if type(leaf) is tuple]


def _overlap(a, b) -> bool:
    return a[0] is b[0] and a[1] <= b[2] and b[1] <= a[2]


def _joins(run, seg) -> bool:
    """Whether seg can run in the same launch as the segments of `run`: same device and compute
    type, room for its operands, and no data passing between them (nothing of the run read or
    written by seg, nothing seg writes read by the run)."""
    first = run[0]
    if len(run) >= MAX_SEGMENTS or seg.device is not first.device or \
            seg.compute != first.compute:
        return False
    if sum(len(r.leaves) + len(r.outputs) for r in run) + len(seg.leaves) + \
            len(seg.outputs) > MAX_OPERANDS:
        return False
    grps = {r.grp for r in run}
    if seg.deps & grps:
        return False
    reads = seg.read_bufs()
    for r in run:
        for w in r.writes:
            if any(b is w[0] for b in reads) or any(_overlap(w, x) for x in seg.writes):
                return False
        if seg.writes:
            rr = r.read_bufs()
            if any(b is w[0] for w in seg.writes for b in rr):
                return False
    return True


def _launch_alone(n):
    """The only pending node, no pending input: its op's own (unfused) kernel, exactly as
    eager, if anything can still read it."""
    plan = n.plan
    args = n.args
    n.args = n.plan = None
    a = n.ref()
    if a is None or a.__dict__.get("_lazy") is not n:
        a = None
        keep = n.keep
        if keep is None or keep() is None:
            return                      # nobody can read it: never launched
    buf = Buffer(n.device, plan.nbytes)
    plan.launch_for_run().run_leaves(buf.raw, args)
    buf.version = 1                  # as an eager op's output after its launch
    n.buf = buf
    if a is not None:
        a._buf = buf
        a._lazy = None


def _launch_one(n):
    """A chain of one: the op's own (unfused) kernel, exactly as eager."""
    try:
        if n.target is not None:
            args = [Array._make(*_leaf_of(x)) if type(x) is _Lazy or type(x) is tuple else x
                    for x in n.args]
            n.plan.store(Array._make(*n.target), args)
            return
        buf = Buffer(n.device, n.view.numel * n.dtype.itemsize)
        n.plan.launch_for_run().run_leaves(buf.raw, n.args)
        _store(n, buf)
    finally:
        n.args = n.arr = n.plan = n.target = None


def _produce(n, src):
    """Launch the producer node `src` (a pending GEMM) into a fresh buffer for node n: src
    itself, or an op of it (a ReLU, ReLU's backward) that its epilogue computes."""
    plan = src.plan
    if n.target is not None:
        # a copy into an existing tensor that the product writes directly (absorb_copies)
        tbuf, tview, _ = n.target
        plan.produce(tbuf.raw, src.args, out_off=tview.offset)
        count("fused")
        count("fused_ops", 2)
        return
    if type(plan) is ViewPlan:
        root = n.base
        if root.buf is None:
            _produce_now(root)
        _store(n, root.buf)
        return
    buf = Buffer(n.device, plan.nbytes)
    if n is src:
        plan.produce(buf.raw, src.args)
    else:
        plan.produce(buf.raw, src.args, n.plan.fuse[0], n.args[1] if len(n.args) > 1 else None)
        count("fused")
        count("fused_ops", 2)
    _store(n, buf)


def _launch(run):
    if len(run) == 1 and run[0].single:
        _launch_one(run[0].group[0])
        return
    key = chain_key(run)
    plan = _chains.get(key)
    if plan is None:
        if len(_chains) >= 4096:
            _chains.clear()
        plan = _chains[key] = plan_chain(run)
    args = plan.args.copy()
    bufs, scalars, fresh = [], [], []
    for seg in run:
        for n in seg.group:
            if n.target is not None:
                bufs.append(n.target[0])
            else:
                b = Buffer(n.device, n.view.numel * n.dtype.itemsize)
                fresh.append((n, b))
                bufs.append(b)
        for x in seg.leaves:
            bufs.append(x.buf if type(x) is _Lazy else x[0])
        scalars += seg.scalars
    for pos, b in zip(plan.bpos, bufs):
        args[pos] = b.raw
    for pos, v in zip(plan.spos, scalars):
        args[pos] = v
    count("fused")
    count("fused_ops", plan.n_ops)
    plan.kernel(plan.gsize, plan.lsize, *args)
    for n, b in fresh:
        _store(n, b)


def _store(n, buf):
    buf.version = 1                  # as an eager op's output after its launch
    n.buf = buf
    a = n.arr
    if a is not None:
        a._buf = buf
        a._lazy = None


lazy.realize = _realize
