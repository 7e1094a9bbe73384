"""The autograd tape: grad modes, Context and saved tensors, graph nodes, the backward walk."""
from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import traceback
import warnings
import weakref

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def _set_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


def is_inference_mode_enabled() -> bool:
    return getattr(_state, "inference", False)


class _GradMode:
    """Base of the grad-mode context managers; each also works as a decorator (also on
    generator functions, where the mode holds while the generator runs, not between yields)."""

    _bare_ok = True

    def __new__(cls, *args):
        # `@no_grad` without parentheses hands the decorated function in directly
        if (cls._bare_ok and len(args) == 1 and callable(args[0])
                and not isinstance(args[0], bool)):
            return cls()(args[0])
        return super().__new__(cls)

    def __init__(self, *args):
        self._args = args

    def _target(self) -> bool:
        raise NotImplementedError

    def clone(self):
        return self.__class__(*self._args)

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set_enabled(self._target())
        return None

    def __exit__(self, *exc):
        _set_enabled(self._prev)
        return False

    def __call__(self, fn):
        if inspect.isclass(fn):
            raise RuntimeError(f"{self.__class__.__name__} cannot decorate a class")
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with self.clone():
                return fn(*a, **k)
        return wrapper

    def _wrap_generator(self, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            gen = fn(*a, **k)
            try:
                with self.clone():
                    response = gen.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with self.clone():
                            gen.close()
                        raise
                    except BaseException:
                        with self.clone():
                            response = gen.throw(*sys.exc_info())
                    else:
                        with self.clone():
                            response = gen.send(request)
            except StopIteration as e:
                return e.value
        return wrapper


class no_grad(_GradMode):
    """Disable gradient recording inside the block (or the decorated function).

    Example::

        with clgrad.no_grad():
            w -= lr * w.grad
    """

    def _target(self):
        return False


class enable_grad(_GradMode):
    """Enable gradient recording inside the block, even within no_grad."""

    def _target(self):
        return True


class inference_mode(_GradMode):
    """Like no_grad, and `is_inference_mode_enabled()` reports it (clgrad keeps no separate
    inference tensors); `inference_mode(False)` leaves the grad mode as it is."""

    def __init__(self, mode: bool = True):
        self._args = (mode,)
        self.mode = bool(mode)

    def _target(self):
        return False if self.mode else is_grad_enabled()

    def __enter__(self):
        self._prev_inf = is_inference_mode_enabled()
        _state.inference = self.mode
        return super().__enter__()

    def __exit__(self, *exc):
        _state.inference = self._prev_inf
        return super().__exit__(*exc)


class set_grad_enabled(_GradMode):
    """Turn gradient recording on or off: immediately when called, and back to the previous
    mode at the end of a `with` block (or around each call of a decorated function)."""

    _bare_ok = False

    def __init__(self, mode: bool):
        self._args = (mode,)
        self.mode = bool(mode)
        self._prev = is_grad_enabled()
        _set_enabled(self.mode)

    def _target(self):
        return self.mode

    def __enter__(self):
        return None

    def __call__(self, fn):
        # used as a decorator: construction switched the mode, which must not leak out
        _set_enabled(self._prev)
        return super().__call__(fn)

    def clone(self):
        return _Switch(self.mode)


class _Switch(_GradMode):
    _bare_ok = False

    def __init__(self, mode):
        self._args = (mode,)
        self.mode = mode

    def _target(self):
        return self.mode


# ---- anomaly detection --------------------------------------------------------------------------
_anomaly = {"enabled": False, "check_nan": True}


def set_detect_anomaly(mode: bool, check_nan: bool = True) -> None:
    """Record each forward op's traceback, and check every backward's result for NaN/Inf."""
    _anomaly["enabled"] = bool(mode)
    _anomaly["check_nan"] = bool(check_nan)


def is_anomaly_enabled() -> bool:
    return _anomaly["enabled"]


def is_anomaly_check_nan_enabled() -> bool:
    return _anomaly["check_nan"]


class detect_anomaly:
    """Context manager (and decorator) form of `set_detect_anomaly(True)`."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = dict(_anomaly)
        set_detect_anomaly(True, self.check_nan)

    def __exit__(self, *exc):
        _anomaly.update(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            with detect_anomaly(self.check_nan):
                return fn(*a, **k)
        return wrapper


_HERE = os.path.dirname(os.path.abspath(__file__))


def _forward_trace() -> str:
    # the user's frames and the op that recorded the node, without the tape's own frames
    frames = traceback.extract_stack()
    while frames and frames[-1].filename.startswith(_HERE + os.sep):
        frames.pop()
    return "".join(traceback.format_list(frames))


# ---- saved tensors and the context --------------------------------------------------------------
_T = None


def _tensor_cls():
    global _T
    if _T is None:
        from .tensor import Tensor
        _T = Tensor
    return _T


class _Saved:
    """A tensor saved for backward with the version of its storage at save time.

    A forward's own outputs are held weakly and rebuilt from their buffer on unpacking, so that
    output -> node -> context -> output forms no reference cycle."""

    __slots__ = ("tensor", "ref", "buf", "view", "dtype", "requires_grad", "version", "out_idx",
                 "producer", "shape")

    def __init__(self, t):
        self.tensor = t
        self.ref = None
        self.version = t._buf.version
        self.shape = tuple(t.shape)
        self.dtype = t.dtype
        grad_fn = t._ctx if t.requires_grad else None
        self.producer = None if grad_fn is None else grad_fn.name()
        self.out_idx = t._out_idx

    def weaken(self, out_idx: int, producer: str):
        t = self.tensor
        self.ref = weakref.ref(t)
        self.buf, self.view = t._buf, t._view
        self.requires_grad = t.requires_grad
        self.out_idx = out_idx
        self.producer = producer
        self.tensor = None

    def unpack(self, node):
        t = self.tensor
        if t is None:
            t = self.ref()
            if t is None or t._buf is not self.buf or t._view != self.view:
                t = _tensor_cls()._make(self.buf, self.view, self.dtype)
                if self.requires_grad and node is not None:
                    t.requires_grad = True
                    t._ctx, t._out_idx = node, self.out_idx
        if t._buf.version != self.version:
            from .ops import torch_name
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
        T = _tensor_cls()
        for t in tensors:
            if t is not None and not isinstance(t, T):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{tensors.index(t)} is of type {type(t).__name__}")
        self._saved = tuple(None if t is None else _Saved(t) for t in tensors)

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
                 "trace", "hooks", "prehooks", "__weakref__")

    def __init__(self, name, backward_fn, ctx, inputs, outputs):
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
        self.out_meta = [(t._view.shape, t.dtype, t.device) for t in outputs]
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
    T = _tensor_cls()
    inputs = tuple(a if isinstance(a, T) else None for a in args)
    if not ctx.needs_input_grad:
        ctx.needs_input_grad = tuple(t is not None and t.requires_grad for t in inputs)
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
            if id(t) in ids:
                s.weaken(ids[id(t)], name)
            elif t._base is not None or t._hooks:
                # a view's base (or a hook's closure) may lead back to this node: keep a bare
                # handle on the storage instead of the user's tensor
                bare = T._make(t._buf, t._view, t.dtype)
                bare._requires_grad, bare._ctx, bare._out_idx = (t._requires_grad, t._ctx,
                                                                 t._out_idx)
                s.tensor = bare
    return node


def needs_grad(*args) -> bool:
    if not is_grad_enabled():
        return False
    T = _tensor_cls()
    return any(isinstance(a, T) and a.requires_grad for a in args)


# ---- user-defined functions ---------------------------------------------------------------------
class FunctionCtx(Context):
    pass


class Function:
    """Base class for user-defined differentiable operations (PyTorch's autograd.Function).

    Subclasses define static `forward(ctx, *args)` and `backward(ctx, *grad_outputs)` (or
    `forward(*args)` plus `setup_context(ctx, inputs, output)`), and are called through
    `apply`. `backward` returns one gradient (or None) per forward argument.

    Example::

        class Square(clgrad.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return 2 * x * g

        y = Square.apply(x)
    """

    def __init__(self, *args, **kwargs):
        warnings.warn(f"{self.__class__.__name__} should not be instantiated. Methods on "
                      "autograd functions are all static, so you should invoke them on the "
                      "class itself.", DeprecationWarning)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Legacy autograd function with non-static forward method is "
                           "deprecated. Please use new-style autograd function with static "
                           "forward method.")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        T = _tensor_cls()
        arg_is_tensor = tuple(isinstance(a, T) for a in args)
        ctx = FunctionCtx([t and a.requires_grad for t, a in zip(arg_is_tensor, args)])
        separate = cls.setup_context is not Function.setup_context
        with no_grad():
            if separate:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        if not needs_grad(*args):
            return out
        outs = out if isinstance(out, tuple) else (out,)
        dirty = set(ctx.dirty)
        fixed = []
        for o in outs:
            if isinstance(o, T):
                if id(o) in dirty:
                    if o.requires_grad and o._ctx is None:
                        raise RuntimeError("a leaf Variable that requires grad has been used in "
                                           "an in-place operation.")
                elif any(o is a for a in args):
                    o = o._alias()      # returning an input: the output gets its own identity
            fixed.append(o)
        out_is_tensor = tuple(isinstance(o, T) for o in fixed)
        name = cls.__name__ + "Backward"
        nargs = len(args)

        def backward(ctx_, *grads):
            it = iter(grads)
            full = [next(it) if is_t else None for is_t in out_is_tensor]
            res = cls.backward(ctx_, *full)
            res = res if isinstance(res, tuple) else (res,)
            if len(res) != nargs:
                if len(res) > nargs and all(r is None for r in res[nargs:]):
                    res = res[:nargs]
                else:
                    raise RuntimeError(f"function {name} returned an incorrect number of "
                                       f"gradients (expected {nargs}, got {len(res)})")
            for i, (r, is_t) in enumerate(zip(res, arg_is_tensor)):
                if r is not None and not is_t:
                    raise RuntimeError(f"function {name} returned a gradient different than "
                                       f"None at position {i + 1}, but the corresponding "
                                       "forward input was not a Variable")
            return res

        record(name, backward, ctx, args, [o for o in fixed if isinstance(o, T)])
        return tuple(fixed) if isinstance(out, tuple) else fixed[0]


def once_differentiable(fn):
    """Decorate a Function's backward that is not itself differentiable: it runs without
    recording, so a double backward through it sees no graph."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            return fn(ctx, *args)
    return wrapper


# ---- the backward walk ------------------------------------------------------------------------
def _topo(roots):
    """Nodes reachable from `roots`, consumers before producers (iterative DFS post-order)."""
    order, visited = [], set()
    stack = [(n, False) for n in roots]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for e in node.edges:
            if e is not None and type(e[0]) is Node and e[0] not in visited:
                stack.append((e[0], False))
    order.reverse()
    return order


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
        self.leaves = {}              # id(leaf) -> [leaf, summed gradient]

    def fresh(self, g):
        # a gradient handed out twice must not alias: later in-place accumulation would leak
        if id(g._buf) in self.owned:
            g = g.clone()
        elif not g.is_contiguous():
            g = g.contiguous()
        self.owned.add(id(g._buf))
        return g

    def accumulate(self, t, g):
        """t.grad += g with PyTorch's rules (steal a fresh gradient, else add)."""
        if not self.create_graph:
            g = g.detach()
        slot = t._grad_slot
        old = t._grad
        if old is None and slot is not None and not self.create_graph:
            # the optimizer keeps this parameter's gradient at a fixed place in a flat arena
            from .ops import copy_into
            t._grad = copy_into(slot, g)
        elif old is None:
            t._grad = self.fresh(g)
        elif self.create_graph or old._requires_grad:
            t._grad = old + g
        else:
            with no_grad():
                old.add_(g)

    def give_leaf(self, t, g):
        cap = self.capture
        if cap is not None and id(t) not in cap:
            return
        if t._hooks:
            g = _run_hooks(t, g)
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
        with set_grad_enabled(self.create_graph):
            for node in order:
                gouts = pending.pop(node, None)
                if gouts is not None:
                    self.step(node, gouts, pending, need)
            for t, g in leaves.values():
                self.give_leaf(t, g)

    def step(self, node, gouts, pending, need):
        cap = self.capture
        for i, ref in enumerate(node.outputs):
            t = ref()
            if t is None or gouts[i] is None or t._ctx is not node:
                continue
            if t._hooks:
                gouts[i] = _run_hooks(t, gouts[i])
            if t._retains_grad and cap is None:
                self.accumulate(t, gouts[i])
            if cap is not None and id(t) in cap:
                cap[id(t)] = gouts[i]
        if need is not None and node not in need:
            return
        ctx = node.ctx
        if ctx._freed:
            raise RuntimeError(_FREED)
        if node.prehooks:
            for hook in tuple(node.prehooks.values()):
                r = hook(tuple(gouts))
                if r is not None:
                    gouts = list(r)
        if ctx.materialize_grads:
            T = _tensor_cls()
            for i, g in enumerate(gouts):
                if g is None:
                    shape, dtype, device = node.out_meta[i]
                    gouts[i] = T._zeros(shape, dtype, device)
        if _anomaly["enabled"]:
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
        if len(grads) > len(node.edges) and any(g is not None for g in grads[len(node.edges):]):
            raise RuntimeError(f"function {node.name()} returned an incorrect number of "
                               f"gradients (expected {len(node.edges)}, got {len(grads)})")
        if node.hooks:
            for hook in tuple(node.hooks.values()):
                r = hook(tuple(grads), tuple(gouts))
                if r is not None:
                    grads = tuple(r)
        if _anomaly["enabled"]:
            _check_anomaly(node, grads)
        if not self.retain_graph:
            ctx._free()
        for i, (e, g) in enumerate(zip(node.edges, grads)):
            if e is None or g is None:
                continue
            shape, dtype = node.in_meta[i]
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
                slots = pending.setdefault(target, [None] * len(target.outputs))
                slots[idx] = g if slots[idx] is None else slots[idx] + g
            else:
                prev = self.leaves.get(id(target))
                self.leaves[id(target)] = [target, g if prev is None else prev[1] + g]

    def _captures(self, node, idx):
        t = node.outputs[idx]()
        return t is not None and id(t) in self.capture


def _run_hooks(t, g):
    for hook in tuple(t._hooks.values()):
        r = hook(g)
        if r is None:
            continue
        if r.shape != g.shape:
            raise RuntimeError(f"hook '{getattr(hook, '__name__', 'hook')}' has changed the size "
                               "of value")
        g = r
    return g


def _make_grads(outputs, grad_outputs):
    T = _tensor_cls()
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
            g = T._full(t.shape, 1, t.dtype, t.device)
        elif not isinstance(g, T):
            g = T._full(t.shape, g, t.dtype, t.device)
        elif g.shape != t.shape:
            if g.numel() == t.numel() and g.numel() == 1:
                g = g.reshape(t.shape)
            else:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{g.shape!r} and output[{i}] has a shape of {t.shape!r}.")
        grads.append(g)
    return grads


def _as_list(x):
    T = _tensor_cls()
    return [x] if isinstance(x, T) else list(x)


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
    T = _tensor_cls()
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
            if not isinstance(t, T) or not t.requires_grad:
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
    T = _tensor_cls()
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
        if not isinstance(t, T) or not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    grads = _make_grads(outputs, grad_outputs)
    cap = {id(t): None for t in inputs}
    _Walk(retain_graph, create_graph, cap).run(outputs, grads)
    result = []
    for t in inputs:
        g = cap[id(t)]
        if g is None:
            if materialize_grads:
                g = T._zeros(t.shape, t.dtype, t.device)
            elif not allow_unused:
                raise RuntimeError(
                    "One of the differentiated Tensors appears to not have been used in the "
                    "graph. Set allow_unused=True if this is the desired behavior.")
        elif not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)


# ---- numerical gradient checks ---------------------------------------------------------------
class GradcheckError(RuntimeError):
    """Analytical and numerical gradients disagree."""


def _flat_inputs(inputs):
    T = _tensor_cls()
    inputs = (inputs,) if isinstance(inputs, T) else tuple(inputs)
    return inputs, [t for t in inputs if isinstance(t, T) and t.requires_grad]


def _outputs(func, inputs):
    T = _tensor_cls()
    out = func(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, T) and o.dtype.is_floating]


def _host64(t):
    import numpy as np
    return t.detach().numpy(force=True).astype(np.float64)


def _fail(msg, raise_exception):
    if raise_exception:
        raise GradcheckError(msg)
    return False


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              nondet_tol=0.0, fast_mode=None, check_undefined_grad=True, **_):
    """Compare autograd's gradients of `func` at `inputs` with central differences.

    Inputs that require grad should be float64 (as in PyTorch). The numerical Jacobian takes
    two forwards per input element. Small outputs compare the full analytical Jacobian (one
    backward per output element); large ones (or `fast_mode=True`) compare random projections
    u^T J. Returns True, or raises GradcheckError (returns False if not raise_exception)."""
    import numpy as np
    T = _tensor_cls()
    inputs, wrt = _flat_inputs(inputs)
    if not wrt:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of the them have requires_grad=True.")
    for t in wrt:
        if t.dtype.name != "float64":
            warnings.warn(f"Input #{inputs.index(t)} requires gradient and is not a double "
                          "precision floating point. This check will likely fail if all the "
                          "inputs are not of double precision floating point.")
    with enable_grad():
        outs = _outputs(func, inputs)
    sizes = [o.numel() for o in outs]
    n_out = sum(sizes)
    if fast_mode is None:
        fast_mode = n_out > 16

    def forward_flat():
        # grad mode stays on: gradgradcheck's func differentiates inside
        with enable_grad():
            res = _outputs(func, inputs)
            return np.concatenate([_host64(o).reshape(-1) for o in res] or [np.zeros(0)])

    def analytic(vecs):
        """u^T J for one output-space vector per output: one row per input (zeros if unused)."""
        with enable_grad():
            outs_ = _outputs(func, inputs)
            used = [(o, v) for o, v in zip(outs_, vecs) if o.requires_grad]
            gs = grad([o for o, _ in used], wrt,
                      [T._from_numpy(v.reshape(o.shape), o.dtype, o.device) for o, v in used],
                      allow_unused=True) if used else [None] * len(wrt)
        return [np.zeros(t.numel()) if g is None else _host64(g).reshape(-1)
                for t, g in zip(wrt, gs)]

    # numerical Jacobian, one (n_out x numel) block per input
    numeric = []
    for t in wrt:
        host = _host64(t)
        flat = host.reshape(-1)
        J = np.zeros((n_out, flat.size))
        target = t.detach()
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            target.copy_(T._from_numpy(host, t.dtype, t.device))
            plus = forward_flat()
            flat[i] = orig - eps
            target.copy_(T._from_numpy(host, t.dtype, t.device))
            minus = forward_flat()
            flat[i] = orig
            J[:, i] = (plus - minus) / (2 * eps)
        target.copy_(T._from_numpy(host, t.dtype, t.device))
        numeric.append(J)

    bounds = np.cumsum([0] + sizes)

    def split(u):
        return [u[bounds[k]:bounds[k + 1]] for k in range(len(outs))]

    if fast_mode:
        rng = np.random.default_rng(0)
        for _trial in range(2):
            u = rng.standard_normal(n_out)
            rows = analytic(split(u))
            for j, (t, row) in enumerate(zip(wrt, rows)):
                num = u @ numeric[j]
                if not np.allclose(row, num, atol=atol, rtol=rtol):
                    return _fail(
                        f"Jacobian mismatch for output 0 with respect to input {j} (fast mode: "
                        f"projection on a random vector),\nnumerical:{num}\nanalytical:{row}\n",
                        raise_exception)
        return True

    analytical = [np.zeros((n_out, t.numel())) for t in wrt]
    for r in range(n_out):
        u = np.zeros(n_out)
        u[r] = 1.0
        for j, row in enumerate(analytic(split(u))):
            analytical[j][r] = row
    if nondet_tol >= 0 and n_out:
        # the backward must give the same answer twice (no state leaking between calls)
        u = np.ones(n_out)
        again = analytic(split(u))
        for j, row in enumerate(again):
            if not np.allclose(row, analytical[j].sum(0), atol=max(nondet_tol, 1e-12) + atol,
                               rtol=rtol):
                return _fail("Backward is not reentrant, i.e., running backward with same input "
                             "and grad_output multiple times gives different values, although "
                             "analytical gradient matches numerical gradient.", raise_exception)
    for j, t in enumerate(wrt):
        for k in range(len(outs)):
            a = analytical[j][bounds[k]:bounds[k + 1]]
            n = numeric[j][bounds[k]:bounds[k + 1]]
            if not np.allclose(a, n, atol=atol, rtol=rtol):
                return _fail(f"Jacobian mismatch for output {k} with respect to input {j},\n"
                             f"numerical:{n.T}\nanalytical:{a.T}\n", raise_exception)
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, gen_non_contig_grad_outputs=False, **kw):
    """gradcheck of the gradient itself (built with create_graph=True): second derivatives."""
    import numpy as np
    T = _tensor_cls()
    inputs, wrt = _flat_inputs(inputs)
    with enable_grad():
        outs = _outputs(func, inputs)
    rng = np.random.default_rng(1)
    if grad_outputs is None:
        grad_outputs = [T._from_numpy(rng.standard_normal(o.shape), o.dtype, o.device)
                        for o in outs]
    else:
        grad_outputs = _as_list(grad_outputs)

    def first(*args):
        outs_ = _outputs(func, args)
        wrt_ = [a for a in args if isinstance(a, T) and a.requires_grad]
        used = [(o, g) for o, g in zip(outs_, grad_outputs) if o.requires_grad]
        gs = grad([o for o, _ in used], wrt_, [g for _, g in used], create_graph=True,
                  allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first, inputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, **kw)


from . import _autograd_functional as functional  # noqa: E402  (needs grad() defined above)
