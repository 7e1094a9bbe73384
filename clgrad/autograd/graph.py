"""The tape: saved tensors, Context, graph nodes and how an op records one."""
from __future__ import annotations

import os
import traceback
import weakref

from ..array import Array
from ..dtypes import torch_name
from .grad_mode import _anomaly, is_grad_enabled

# the clgrad package folder: frames inside it are the library, not the user's code
_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _forward_trace() -> str:
    # the user's frames and the op that recorded the node, without the tape's own frames
    frames = traceback.extract_stack()
    while frames and frames[-1].filename.startswith(_HERE + os.sep):
        frames.pop()
    return "".join(traceback.format_list(frames))


# ---- saved tensors and the context --------------------------------------------------------------
class _Saved:
    """A tensor saved for backward with the version of its storage at save time.

    A forward's own outputs are held weakly and rebuilt from their buffer on unpacking, so that
    output -> node -> context -> output forms no reference cycle."""

    __slots__ = ("tensor", "ref", "buf", "view", "dtype", "requires_grad", "version", "out_idx",
                 "producer", "shape", "plain", "pending", "__weakref__")

    def __init__(self, t):
        self.tensor = t
        self.plain = t._plain       # rebuilds a weakly held output as a plain Tensor
        self.ref = None
        self.pending = None
        self.version = t._version
        self.shape = t._view.shape
        self.dtype = t.dtype
        grad_fn = t._ctx if t.requires_grad else None
        self.producer = None if grad_fn is None else grad_fn.name()
        self.out_idx = t._out_idx

    def weaken(self, out_idx: int, producer: str):
        t = self.tensor
        self.ref = weakref.ref(t)
        lz = t._lazy
        if lz is None:
            self.buf = t._buf
        else:
            # a pending output stays pending: its node is told to store the value
            lz.keep = weakref.ref(self)
            self.pending, self.buf = lz, None
        self.view = t._view
        self.requires_grad = t.requires_grad
        self.out_idx = out_idx
        self.producer = producer
        self.tensor = None

    def unpack(self, node):
        t = self.tensor
        if t is None:
            if self.pending is not None:
                self.buf, self.pending = self.pending.value(), None
            t = self.ref()
            if t is None or t._buf is not self.buf or t._view != self.view:
                t = self.plain._make(self.buf, self.view, self.dtype)
                if self.requires_grad and node is not None:
                    t.requires_grad = True
                    t._ctx, t._out_idx = node, self.out_idx
        if t._buf.version != self.version:
            which = "" if self.producer is None else \
                f", which is output {self.out_idx} of {self.producer},"
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [clgrad.{torch_name(self.dtype)}Tensor {list(self.shape)}]"
                f"{which} is at version {t._buf.version}; expected version {self.version} "
                "instead. Hint: enable anomaly detection to find the operation that failed to "
                "compute its gradient, with clgrad.autograd.set_detect_anomaly(True).")
        return t


_FREED = ("Trying to backward through the graph a second time (or directly access saved "
          "tensors after they have already been freed). Saved intermediate values of the "
          "graph are freed when you call .backward() or autograd.grad(). Specify "
          "retain_graph=True if you need to backward through the graph a second time or "
          "if you need to access saved tensors after calling backward.")


class Context:
    """What a forward leaves for its backward (PyTorch's `ctx`)."""

    def __init__(self, needs_input_grad=()):
        self.needs_input_grad = tuple(needs_input_grad)
        self._saved = ()
        self._freed = False
        self._node = None                      # weak: node -> ctx -> node would be a cycle
        self.materialize_grads = True
        self.non_differentiable = ()
        self.dirty = ()

    def save_for_backward(self, *tensors):
        for t in tensors:
            if t is not None and not isinstance(t, Array):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{tensors.index(t)} is of type {type(t).__name__}")
        self._saved = tuple(None if t is None else _Saved(t) for t in tensors)

    def _save(self, tensors):
        """save_for_backward for callers that pass only tensors (the table ops' tape path)."""
        self._saved = tuple([_Saved(t) for t in tensors])

    def _unpack(self, i):
        """Saved tensor i alone: a backward that needs one value does not check the others."""
        if self._freed:
            raise RuntimeError(_FREED)
        s = self._saved[i]
        return None if s is None else s.unpack(self._node() if self._node else None)

    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(_FREED)
        node = self._node() if self._node else None
        return tuple(None if s is None else s.unpack(node) for s in self._saved)

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable = tuple(id(t) for t in tensors)

    def mark_dirty(self, *tensors):
        self.dirty = tuple(id(t) for t in tensors)

    @property
    def _records_backward(self) -> bool:
        """In a backward: whether its own Tensor calls are recorded (backward with
        create_graph=True), so a backward with a fused fast path knows to take its composite
        one. Private: a user's Function may keep any public name on its ctx."""
        return is_grad_enabled()

    def forbid_double_backward(self, name: str):
        """Called by a backward that is one fused kernel: it has no graph of its own to build."""
        if is_grad_enabled():
            raise NotImplementedError(f"double backward (create_graph=True) through {name} is "
                                      "not supported: its gradient is a fused kernel")

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = bool(value)

    def _free(self):
        # a node that saved nothing can be walked again, as in PyTorch
        if self._saved:
            self._saved = ()
            self._freed = True


class AccumulateGrad:
    """The graph's sink for a leaf tensor, as `next_functions` shows it."""

    __slots__ = ("variable", "__weakref__")
    next_functions = ()

    def __init__(self, t):
        self.variable = t

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    def __repr__(self):
        return f"<AccumulateGrad object at {hex(id(self))}>"


def _accumulator(t):
    ref = getattr(t, "_acc_ref", None)
    acc = ref() if ref is not None else None
    if acc is None:
        acc = AccumulateGrad(t)
        t._acc_ref = weakref.ref(acc)
    return acc


class _Handle:
    def __init__(self, table, key):
        self.table, self.key = table, key

    def remove(self):
        self.table.pop(self.key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Node:
    """One recorded operation: how to map output gradients to input gradients.

    `edges[i]` is where input i's gradient goes: None, (producer Node, output index), or
    (leaf Tensor, 0). The node keeps no non-leaf input alive, only what its ctx saved."""

    __slots__ = ("backward_fn", "ctx", "edges", "in_meta", "_name", "outputs", "out_meta",
                 "trace", "hooks", "prehooks", "seq", "__weakref__")

    count = 0                        # nodes made so far: tells which nodes a call created

    def __init__(self, name, backward_fn, ctx, inputs, outputs):
        Node.count += 1
        self.seq = Node.count
        self._name = name
        self.backward_fn = backward_fn
        self.ctx = ctx
        edges, meta = [], []
        for t in inputs:
            if t is None or not t.requires_grad:
                edges.append(None)
                meta.append(None)
                continue
            edges.append((t, 0) if t._ctx is None else (t._ctx, t._out_idx))
            meta.append((t._view.shape, t.dtype))
        self.edges = tuple(edges)
        self.in_meta = tuple(meta)
        self.outputs = [weakref.ref(t) for t in outputs]
        self.out_meta = [(t._view.shape, t.dtype, t.device, t._plain) for t in outputs]
        self.trace = _forward_trace() if _anomaly["enabled"] else None
        self.hooks = None
        self.prehooks = None
        ctx._node = weakref.ref(self)

    def name(self) -> str:
        return self._name

    @property
    def next_functions(self):
        out = []
        for e in self.edges:
            if e is None:
                out.append((None, 0))
            elif isinstance(e[0], Node):
                out.append(e)
            else:
                out.append((_accumulator(e[0]), 0))
        return tuple(out)

    @property
    def metadata(self):
        return self.ctx.__dict__.setdefault("_metadata", {})

    def __repr__(self):
        return f"<{self._name} object at {hex(id(self))}>"

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) runs after this node's backward; it may return new
        grad_inputs."""
        if self.hooks is None:
            self.hooks = {}
        key = object()
        self.hooks[key] = fn
        return _Handle(self.hooks, key)

    def register_prehook(self, fn):
        """fn(grad_outputs) runs before this node's backward; it may return new grad_outputs."""
        if self.prehooks is None:
            self.prehooks = {}
        key = object()
        self.prehooks[key] = fn
        return _Handle(self.prehooks, key)


def record(name, backward_fn, ctx, args, outputs):
    """Attach a node to `outputs` (the differentiable ones) as their grad_fn; the caller has
    checked `needs_grad(*args)`."""
    inputs = tuple([a if isinstance(a, Array) else None for a in args])
    if not ctx.needs_input_grad:
        ctx.needs_input_grad = tuple([t is not None and t.requires_grad for t in inputs])
    return _record(name, backward_fn, ctx, inputs, outputs)


def _record(name, backward_fn, ctx, inputs, outputs):
    """record() once `inputs` (tensor or None per argument) and ctx.needs_input_grad are set."""
    node = Node(name, backward_fn, ctx, inputs, outputs)
    nondiff = ctx.non_differentiable
    for i, t in enumerate(outputs):
        if (nondiff and id(t) in nondiff) or not t.dtype.is_floating:
            continue
        t._ctx, t._out_idx = node, i
        t._requires_grad = True
    saved = ctx._saved
    if saved:
        ids = {id(t): i for i, t in enumerate(outputs)}
        for s in saved:
            t = None if s is None else s.tensor
            if t is None:
                continue
            i = ids.get(id(t))
            if i is not None:
                s.weaken(i, name)
            elif t._base is not None or t._hooks:
                # a view's base (or a hook's closure) may lead back to this node: keep a bare
                # handle on the storage instead of the user's tensor
                bare = t._plain._make(t._buf, t._view, t.dtype)
                bare._requires_grad, bare._ctx, bare._out_idx = (t._requires_grad, t._ctx,
                                                                 t._out_idx)
                s.tensor = bare
    return node


def nodes_since(node, start):
    """`node` and the nodes behind it made after Node.count was `start` (one op's subgraph)."""
    out, stack, seen = [], [node], set()
    while stack:
        n = stack.pop()
        if n in seen or n.seq <= start:
            continue
        seen.add(n)
        out.append(n)
        stack.extend(e[0] for e in n.edges if e is not None and type(e[0]) is Node)
    return out


def needs_grad(*args) -> bool:
    for a in args:
        if isinstance(a, Array) and a.requires_grad:
            return is_grad_enabled()
    return False
