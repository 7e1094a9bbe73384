"""The backward walk: iterative topological order, gradient accumulation and hooks;
backward() and grad()."""
from __future__ import annotations

import warnings

from .grad_mode import _anomaly, _Switch, no_grad, set_grad_enabled
from ..array import Array
from .graph import Node

def _topo(roots):
    """Nodes reachable from `roots`, latest-created first. A node is made after the producers
    of its inputs, so this is a topological order (consumers before producers), and the one
    PyTorch's ready queue follows: each layer's parameter branches (transposes, bias sums) run
    right after the layer, so their leaves complete early instead of at the end of the walk."""
    seen, stack = set(roots), list(roots)
    while stack:
        node = stack.pop()
        for e in node.edges:
            if e is not None and type(e[0]) is Node and e[0] not in seen:
                seen.add(e[0])
                stack.append(e[0])
    return sorted(seen, key=lambda n: -n.seq)


def _needed(order, capture):
    """Nodes on a path to a captured tensor (grad(), backward(inputs=...)): only they run."""
    need = set()
    for node in reversed(order):               # producers first
        for e in node.edges:
            if e is None:
                continue
            target, idx = e
            if type(target) is Node:
                out = target.outputs[idx]()
                hit = target in need or (out is not None and id(out) in capture)
            else:
                hit = id(target) in capture
            if hit:
                need.add(node)
                break
    return need


def _leaves_due(order):
    """position in `order` -> ids of the leaves whose last contributing node sits there."""
    last = {}
    for k, node in enumerate(order):
        for e in node.edges:
            if e is not None and type(e[0]) is not Node:
                last[id(e[0])] = k
    due = {}
    for lid, k in last.items():
        due.setdefault(k, []).append(lid)
    return due


def _in_pending(pending, buf) -> bool:
    """Whether a node still to run receives `buf` (realized) as an incoming gradient."""
    if not pending:
        return False
    for slots in pending.values():
        for g in slots:
            if g is not None and g.__dict__.get("_buf") is buf:
                return True
    return False


def _observed(t) -> bool:
    """Whether code runs when leaf `t` gets its gradient (tensor or post-accumulate hooks)."""
    return bool(t._hooks or getattr(t, "_post_acc_hooks", None))


def _pending_holds(pending, g) -> bool:
    """Whether a node still to run receives the pending result `g` itself."""
    if not pending:
        return False
    return any(s is g for slots in pending.values() for s in slots)


def _sum_to(g, shape):
    """Undo broadcasting: the one place where a gradient is reduced to its input's shape."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    dims = list(range(lead)) + [lead + i for i, s in enumerate(shape)
                                if s == 1 and g.shape[lead + i] != 1]
    if dims:
        g = g.sum(dim=dims, keepdim=True)
    return g.reshape(shape)


def _expandable(shape, to) -> bool:
    if len(shape) > len(to):
        return False
    return all(s == 1 or s == t for s, t in zip(reversed(shape), reversed(to)))


def _check_anomaly(node, grads):
    if not _anomaly["check_nan"]:
        return
    for i, g in enumerate(grads):
        if g is None or not g.dtype.is_floating or bool(g.isfinite().all().item()):
            continue
        kind = "nan" if bool((g != g).any().item()) else "inf"
        raise RuntimeError(
                f"Function '{node.name()}' returned {kind} values in its {i}th output.\n"
                "Traceback of forward call that caused the error:\n" + (node.trace or ""))


class _Walk:
    """One backward pass. Leaves accumulate into .grad unless `capture` (id(tensor) -> None,
    for autograd.grad and backward(inputs=...)) asks for the gradients to be returned."""

    def __init__(self, retain_graph, create_graph, capture):
        self.retain_graph = retain_graph
        self.create_graph = create_graph
        self.capture = capture
        self.owned = set()            # buffers of gradients already handed to someone
        self.owned_pending = {}       # id -> pending gradients handed out before their launch
        self.leaves = {}              # id(leaf) -> [leaf, summed gradient]
        self.pending = None           # while leaves are served mid-walk: gradients yet to flow

    def fresh(self, g):
        # a gradient handed out twice must not alias: later in-place accumulation would leak;
        # nor may a leaf keep a buffer that a node still to run reads as its incoming gradient.
        # A pending (lazy) result is judged by identity: asking for its buffer would launch it
        # mid-walk, ahead of the ops that could still fold into it (runtime/fusion.py)
        if id(g) in self.owned_pending:
            return g.clone()
        if g.__dict__.get("_lazy") is not None:
            if _pending_holds(self.pending, g):
                return g.clone()
            self.owned_pending[id(g)] = g
            return g
        if id(g._buf) in self.owned or _in_pending(self.pending, g._buf):
            g = g.clone()
        elif not g.is_contiguous():
            g = g.contiguous()
        self.owned.add(id(g._buf))
        return g

    def accumulate(self, t, g):
        """t.grad += g with PyTorch's rules (steal a fresh gradient, else add)."""
        if not self.create_graph and (g._requires_grad or g._ctx is not None):
            g = g.detach()             # (detach would launch a pending result: only if needed)
        slot = t._grad_slot
        old = t._grad
        if old is None and slot is not None and not self.create_graph:
            # the optimizer keeps this parameter's gradient at a fixed place in a flat arena
            t._grad = slot.copy_(g)
        elif old is None:
            t._grad = self.fresh(g)
        elif self.create_graph or old._requires_grad:
            t._grad = old + g
        else:
            with no_grad():
                old.add_(g)

    def _into_slot(self, t, g) -> bool:
        """Whether leaf t's gradient g is a pending product (or a view of one) that its copy
        into t's empty .grad slot can absorb (runtime/fusion.absorb_copies)."""
        lz = g.__dict__.get("_lazy")
        return (lz is not None and lz.prod and self.capture is None and not self.create_graph
                and t._grad is None and t._grad_slot is not None)

    def give_leaf(self, t, g):
        cap = self.capture
        if cap is not None and id(t) not in cap:
            return
        if t._hooks:
            g = _run_hooks(t, g, None)
        if cap is not None:
            cap[id(t)] = g
            return
        self.accumulate(t, g)
        post = getattr(t, "_post_acc_hooks", None)
        if post:
            for hook in tuple(post.values()):
                hook(t)

    def run(self, roots, root_grads):
        pending = {}
        root_nodes = []
        leaves = self.leaves
        for t, g in zip(roots, root_grads):
            self.owned.add(id(g._buf))
            if t._ctx is None:
                prev = leaves.get(id(t))
                leaves[id(t)] = [t, g if prev is None else prev[1] + g]
                continue
            slots = pending.setdefault(t._ctx, [None] * len(t._ctx.outputs))
            i = t._out_idx
            slots[i] = g if slots[i] is None else slots[i] + g
            root_nodes.append(t._ctx)
        order = _topo(root_nodes)
        need = _needed(order, self.capture) if self.capture is not None else None
        due = _leaves_due(order)
        with set_grad_enabled(self.create_graph):
            for k, node in enumerate(order):
                gouts = pending.pop(node, None)
                if gouts is not None:
                    self.step(node, gouts, pending, need)
                ready = due.get(k)
                if ready:
                    # no node left in the walk feeds these leaves: hand them their gradient now,
                    # so post-accumulate hooks (DDP's bucket all-reduces) overlap the rest
                    # (only leaves with hooks: nothing else can observe the moment, and a
                    # gradient handed over later leaves pending work to fuse, runtime/fusion.py;
                    # and a pending product bound for a .grad slot: once nothing but the slot's
                    # copy holds it, the product launches straight into the slot)
                    self.pending = pending
                    for lid in ready:
                        entry = leaves.get(lid)
                        if entry is not None and (_observed(entry[0]) or self._into_slot(*entry)):
                            del leaves[lid]
                            self.give_leaf(*entry)
                    entry = None
                    self.pending = None
            for t, g in leaves.values():
                self.give_leaf(t, g)

    def step(self, node, gouts, pending, need):
        cap = self.capture
        for i, ref in enumerate(node.outputs):
            t = ref()
            if t is None or gouts[i] is None:
                continue
            if t._ctx is not node:
                # t was modified in place since: only hooks registered before that see this
                if t._hooks:
                    gouts[i] = _run_hooks(t, gouts[i], node)
                continue
            if t._hooks:
                gouts[i] = _run_hooks(t, gouts[i], node)
            if t._retains_grad and cap is None:
                self.accumulate(t, gouts[i])
            if cap is not None and id(t) in cap:
                cap[id(t)] = gouts[i]
        if need is not None and node not in need:
            return
        ctx = node.ctx
        if node.prehooks:
            for hook in tuple(node.prehooks.values()):
                r = hook(tuple(gouts))
                if r is not None:
                    gouts = list(r)
        if ctx.materialize_grads:
            for i, g in enumerate(gouts):
                if g is None:
                    shape, dtype, device, plain = node.out_meta[i]
                    gouts[i] = plain._zeros(shape, dtype, device)
        anomaly = _anomaly["enabled"]
        if anomaly:
            try:
                grads = node.backward_fn(ctx, *gouts)
            except Exception:
                warnings.warn(f"Error detected in {node.name()}. Traceback of forward call that "
                              f"caused the error:\n{node.trace or ''}", stacklevel=2)
                raise
        else:
            grads = node.backward_fn(ctx, *gouts)
        if not isinstance(grads, (tuple, list)):
            grads = (grads,)
        edges = node.edges
        if len(grads) > len(edges) and any(g is not None for g in grads[len(edges):]):
            raise RuntimeError(f"function {node.name()} returned an incorrect number of "
                               f"gradients (expected {len(node.edges)}, got {len(grads)})")
        if node.hooks:
            for hook in tuple(node.hooks.values()):
                r = hook(tuple(grads), tuple(gouts))
                if r is not None:
                    grads = tuple(r)
        if anomaly:
            _check_anomaly(node, grads)
        if not self.retain_graph:
            ctx._free()
        in_meta = node.in_meta
        for i, (e, g) in enumerate(zip(edges, grads)):
            if e is None or g is None:
                continue
            shape, dtype = in_meta[i]
            if g._view.shape != shape:
                if not _expandable(shape, g._view.shape):
                    raise RuntimeError(f"Function {node.name()} returned an invalid gradient at "
                                       f"index {i} - got {list(g.shape)} but expected shape "
                                       f"compatible with {list(shape)}")
                g = _sum_to(g, shape)
            if g.dtype is not dtype:
                g = g.to(dtype)
            target, idx = e
            if type(target) is Node:
                if need is not None and target not in need and not self._captures(target, idx):
                    continue
                slots = pending.get(target)
                if slots is None:
                    slots = pending[target] = [None] * len(target.outputs)
                slots[idx] = g if slots[idx] is None else slots[idx] + g
            else:
                prev = self.leaves.get(id(target))
                self.leaves[id(target)] = [target, g if prev is None else prev[1] + g]

    def _captures(self, node, idx):
        t = node.outputs[idx]()
        return t is not None and id(t) in self.capture


def _run_hooks(t, g, node):
    """The tensor hooks of t registered while `node` produced it (None: t is a leaf)."""
    for hook, owner in tuple(t._hooks.values()):
        if owner is not node:
            continue
        r = hook(g)
        if r is None:
            continue
        if r.shape != g.shape:
            raise RuntimeError(f"hook '{getattr(hook, '__name__', 'hook')}' has changed the size "
                               "of value")
        g = r
    return g


def _make_grads(outputs, grad_outputs):
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad requires one grad_output per output: got {len(grad_outputs)} "
                           f"grad_outputs and {len(outputs)} outputs")
    grads = []
    for i, (t, g) in enumerate(zip(outputs, grad_outputs)):
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               "a grad_fn")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if not t.dtype.is_floating:
                raise RuntimeError(f"grad can be implicitly created only for real scalar "
                                   f"outputs but got {t.dtype}")
            g = _seed(t)
        elif not isinstance(g, Array):
            g = t._plain._full(t.shape, g, t.dtype, t.device)
        elif g.shape != t.shape:
            if g.numel() == t.numel() and g.numel() == 1:
                g = g.reshape(t.shape)
            else:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{g.shape!r} and output[{i}] has a shape of {t.shape!r}.")
        grads.append(g)
    return grads


_seeds: dict = {}


def _seed(t):
    """The implicit gradient 1 of a one-element output, read from a cached device constant
    (one fill per device, dtype and shape, not a launch per backward). Nothing writes into it:
    the walk counts root gradients as owned (a leaf gets a copy of one), and a write into it
    (a hook's, in place) bumps its buffer's version, after which a fresh one is made. Under
    clgrad.jit, a step whose hook writes into it did so in the calls before the recorded one
    too, so the recorded call makes a fresh one and its fill is replayed with the step."""
    key = (t.device, t.dtype, tuple(t.shape))
    hit = _seeds.get(key)
    if hit is None or hit[0].version != hit[1]:
        one = t._plain._full(t.shape, 1, t.dtype, t.device)
        hit = _seeds[key] = (one._buf, one._buf.version, one._view)
    return t._plain._make(hit[0], hit[2], t.dtype)


def _as_list(x):
    return [x] if isinstance(x, Array) else list(x)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaves) into the leaves' .grad (torch.autograd.backward).

    Args:
        tensors: tensor(s) to differentiate.
        grad_tensors: the vector in the vector-Jacobian product, one per tensor (None for a
            scalar means 1).
        retain_graph: keep saved tensors for another backward (default: create_graph).
        create_graph: record the backward itself, for higher-order gradients.
        inputs: accumulate only into these tensors' .grad (leaves or not).
    """
    tensors = _as_list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    else:
        grad_tensors = _as_list(grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    grads = _make_grads(tensors, grad_tensors)
    if inputs is not None:
        inputs = _as_list(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        for t in inputs:
            if not isinstance(t, Array) or not t.requires_grad:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
        cap = {id(t): None for t in inputs}
        walk = _Walk(retain_graph, create_graph, cap)
        walk.run(tensors, grads)
        walk.capture = None
        with set_grad_enabled(create_graph):
            for t in inputs:
                if cap[id(t)] is not None:
                    walk.accumulate(t, cap[id(t)])
        return
    _Walk(retain_graph, create_graph, None).run(tensors, grads)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Return d(outputs)/d(inputs) without touching any .grad (torch.autograd.grad).

    Only the part of the graph between `outputs` and `inputs` runs. An input the outputs do
    not depend on raises unless `allow_unused` (then None) or `materialize_grads` (zeros)."""
    if is_grads_batched:
        raise NotImplementedError("is_grads_batched=True is not supported")
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when "
                         "materialize_grads=True, but got: allow_unused=False.")
    if allow_unused is None:
        allow_unused = materialize_grads
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = _as_list(grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    for t in inputs:
        if not isinstance(t, Array) or not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    grads = _make_grads(outputs, grad_outputs)
    cap = {id(t): None for t in inputs}
    _Walk(retain_graph, create_graph, cap).run(outputs, grads)
    result = []
    for t in inputs:
        g = cap[id(t)]
        if g is None:
            if materialize_grads:
                g = t._plain._zeros(t.shape, t.dtype, t.device)
            elif not allow_unused:
                raise RuntimeError(
                    "One of the differentiated Tensors appears to not have been used in the "
                    "graph. Set allow_unused=True if this is the desired behavior.")
        elif not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)
