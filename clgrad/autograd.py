"""The autograd tape: grad modes, Context and saved tensors, graph nodes, the backward walk."""
from __future__ import annotations

import functools
import threading
import traceback
import weakref

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def _set_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class _GradMode:
    """Base of the grad-mode context managers; each also works as a decorator."""

    def __new__(cls, *args):
        # `@no_grad` without parentheses hands the decorated function in directly
        if len(args) == 1 and callable(args[0]) and cls._bare_ok:
            return cls()(args[0])
        return super().__new__(cls)

    _bare_ok = True

    def __init__(self, *args):
        self._args = args

    def _target(self) -> bool:
        raise NotImplementedError

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set_enabled(self._target())
        return self

    def __exit__(self, *exc):
        _set_enabled(self._prev)
        return False

    def __call__(self, fn):
        cls, args = self.__class__, self._args

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with cls(*args):
                return fn(*a, **k)
        return wrapper


class no_grad(_GradMode):
    """Disable gradient recording inside the block (or the decorated function)."""

    def _target(self):
        return False


class enable_grad(_GradMode):
    """Enable gradient recording inside the block, even within no_grad."""

    def _target(self):
        return True


class inference_mode(_GradMode):
    """Like no_grad (clgrad keeps no separate inference tensors); inference_mode(False) is a
    no-op."""

    def __init__(self, mode: bool = True):
        self._args = (mode,)
        self.mode = bool(mode)

    def _target(self):
        return False if self.mode else is_grad_enabled()


class set_grad_enabled(_GradMode):
    """Turn gradient recording on or off: immediately, and back to the previous mode on exit."""

    _bare_ok = False

    def __init__(self, mode: bool):
        self._args = (mode,)
        self.mode = bool(mode)
        self._prev = is_grad_enabled()
        _set_enabled(self.mode)

    def _target(self):
        return self.mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        _set_enabled(self._prev)
        return super().__call__(fn)


# ---- anomaly detection --------------------------------------------------------------------------
_anomaly = {"enabled": False, "check_nan": True}


def set_detect_anomaly(mode: bool, check_nan: bool = True) -> None:
    _anomaly["enabled"] = bool(mode)
    _anomaly["check_nan"] = bool(check_nan)


def is_anomaly_enabled() -> bool:
    return _anomaly["enabled"]


class detect_anomaly:
    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = dict(_anomaly)
        set_detect_anomaly(True, self.check_nan)

    def __exit__(self, *exc):
        _anomaly.update(self._prev)
        return False


# ---- saved tensors and the context --------------------------------------------------------------
def _tensor_cls():
    from .tensor import Tensor
    return Tensor


class _Saved:
    """A tensor saved for backward with the version of its storage at save time.

    A forward's own outputs are held weakly and rebuilt from their buffer on unpacking, so that
    output -> node -> context -> output forms no reference cycle."""

    __slots__ = ("tensor", "ref", "buf", "view", "dtype", "requires_grad", "version", "out_idx",
                 "shape")

    def __init__(self, t):
        self.tensor = t
        self.ref = None
        self.version = t._buf.version
        self.shape = t.shape

    def weaken(self, out_idx: int):
        t = self.tensor
        self.ref = weakref.ref(t)
        self.buf, self.view, self.dtype = t._buf, t._view, t.dtype
        self.requires_grad = t.requires_grad
        self.out_idx = out_idx
        self.tensor = None

    def unpack(self, node, name):
        t = self.tensor
        if t is None:
            t = self.ref()
            if t is None or t._buf is not self.buf:
                t = _tensor_cls()._make(self.buf, self.view, self.dtype)
                t.requires_grad = self.requires_grad
                t._ctx, t._out_idx = node, self.out_idx
        if t._buf.version != self.version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{t.dtype.name} tensor of shape {list(self.shape)}], which "
                f"is output 0 of {name}, is at version {t._buf.version}; expected version "
                f"{self.version} instead. Hint: the backtrace further above can show the "
                "operation that failed to compute its gradient.")
        return t


class Context:
    """What a forward leaves for its backward (PyTorch's `ctx`)."""

    def __init__(self, needs_input_grad=()):
        self.needs_input_grad = tuple(needs_input_grad)
        self._saved = ()
        self._freed = False
        self._node = None
        self.materialize_grads = True
        self.non_differentiable = ()

    def save_for_backward(self, *tensors):
        self._saved = tuple(None if t is None else _Saved(t) for t in tensors)

    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or "
                "if you need to access saved tensors after calling backward.")
        name = self._node.name() if self._node is not None else "a forward"
        return tuple(None if s is None else s.unpack(self._node, name) for s in self._saved)

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable = tuple(id(t) for t in tensors)

    def mark_dirty(self, *tensors):
        pass

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = bool(value)

    def _free(self):
        self._saved = ()
        self._freed = True


class Node:
    """One recorded operation: how to map output gradients to input gradients."""

    __slots__ = ("backward_fn", "ctx", "inputs", "_name", "outputs", "out_meta", "trace",
                 "__weakref__")

    def __init__(self, name, backward_fn, ctx, inputs, outputs):
        self._name = name
        self.backward_fn = backward_fn
        self.ctx = ctx
        self.inputs = inputs                     # Tensor or None per forward argument
        self.outputs = [weakref.ref(t) for t in outputs]
        self.out_meta = [(t.shape, t.dtype, t.device) for t in outputs]
        self.trace = traceback.format_stack()[:-3] if _anomaly["enabled"] else None
        ctx._node = self

    def name(self) -> str:
        return self._name

    @property
    def next_functions(self):
        return tuple((None if t is None or not t.requires_grad else t._ctx, 0)
                     for t in self.inputs)

    def __repr__(self):
        return f"<{self._name} object>"

    def register_hook(self, fn):
        raise NotImplementedError("hooks on grad_fn nodes are not supported; use "
                                  "Tensor.register_hook")


def record(name, backward_fn, ctx, args, outputs):
    """Attach a node to `outputs` if any tensor argument requires grad and grad mode is on."""
    T = _tensor_cls()
    inputs = tuple(a if isinstance(a, T) else None for a in args)
    if not ctx.needs_input_grad:
        ctx.needs_input_grad = tuple(t is not None and t.requires_grad for t in inputs)
    node = Node(name, backward_fn, ctx, inputs, outputs)
    for i, t in enumerate(outputs):
        if id(t) in ctx.non_differentiable or not (t.dtype.is_floating):
            continue
        t._ctx, t._out_idx = node, i
        t.requires_grad = True
    ids = {id(t): i for i, t in enumerate(outputs)}
    for s in ctx._saved:
        if s is not None and s.tensor is not None and id(s.tensor) in ids:
            s.weaken(ids[id(s.tensor)])
    return node


def needs_grad(*args) -> bool:
    if not is_grad_enabled():
        return False
    T = _tensor_cls()
    return any(isinstance(a, T) and a.requires_grad for a in args)


class Function:
    """Base class for user-defined differentiable operations (PyTorch's autograd.Function).

    Subclasses define static `forward(ctx, *args)` and `backward(ctx, *grad_outputs)`; call
    them through `apply`. `backward` returns one gradient (or None) per forward argument.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        T = _tensor_cls()
        ctx = Context([isinstance(a, T) and a.requires_grad for a in args])
        with no_grad():
            out = cls.forward(ctx, *args)
        if not needs_grad(*args):
            return out
        outs = out if isinstance(out, tuple) else (out,)
        fixed = []
        for o in outs:
            if isinstance(o, T) and any(o is a for a in args):
                o = o._alias()           # returning an input: give the output its own identity
            fixed.append(o)
        tensors = [o for o in fixed if isinstance(o, T)]

        def backward(ctx_, *grads):
            full, it = [], iter(grads)
            for o in fixed:
                full.append(next(it) if isinstance(o, T) else None)
            res = cls.backward(ctx_, *full)
            res = res if isinstance(res, tuple) else (res,)
            if len(res) < len(args):
                raise RuntimeError(f"function {cls.__name__}Backward returned an incorrect "
                                   f"number of gradients (expected {len(args)}, got {len(res)})")
            return res[:len(args)]

        record(cls.__name__ + "Backward", backward, ctx, args, tensors)
        return tuple(fixed) if isinstance(out, tuple) else fixed[0]


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
        for t in node.inputs:
            if t is not None and t._ctx is not None and t._ctx not in visited:
                stack.append((t._ctx, False))
    order.reverse()
    return order


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


def _check_anomaly(node, grads):
    if not (_anomaly["enabled"] and _anomaly["check_nan"]):
        return
    for i, g in enumerate(grads):
        if g is not None and g.dtype.is_floating and not bool(g.isfinite().all().item()):
            where = "".join(node.trace or [])
            raise RuntimeError(
                f"Function '{node.name()}' returned nan values in its {i}th output.\n"
                f"Traceback of the forward call that created it:\n{where}")


def _run(roots, root_grads, retain_graph, create_graph, capture=None):
    """Propagate gradients from roots. Leaves accumulate into .grad unless `capture` (a dict
    id(tensor) -> None for autograd.grad) asks for the gradients to be returned instead."""
    owned = set()

    def fresh(g):
        # a gradient handed out twice must not alias: later in-place accumulation would leak
        if id(g._buf) in owned:
            g = g.clone()
        owned.add(id(g._buf))
        return g

    def give_leaf(t, g):
        for hook in t._hooks.values():
            r = hook(g)
            if r is not None:
                g = r
        if capture is not None:
            if id(t) in capture:
                prev = capture[id(t)]
                capture[id(t)] = g if prev is None else prev + g
            return
        if not create_graph:
            g = g.detach()
        slot = t._grad_slot
        if t.grad is None and slot is not None and not create_graph:
            # the optimizer keeps this parameter's gradient at a fixed place in a flat arena
            from .ops import copy_into
            t.grad = copy_into(slot, g)
        elif t.grad is None:
            t.grad = fresh(g if g.is_contiguous() else g.contiguous())
        elif create_graph:
            t.grad = t.grad + g
        else:
            with no_grad():
                t.grad.add_(g)

    pending = {}
    root_nodes = []
    for t, g in zip(roots, root_grads):
        owned.add(id(g._buf))
        if t._ctx is None:
            give_leaf(t, g)
            continue
        slots = pending.setdefault(t._ctx, [None] * len(t._ctx.outputs))
        i = t._out_idx
        slots[i] = g if slots[i] is None else slots[i] + g
        root_nodes.append(t._ctx)

    with set_grad_enabled(create_graph):
        for node in _topo(root_nodes):
            gouts = pending.pop(node, None)
            if gouts is None:
                continue
            for i, ref in enumerate(node.outputs):
                t = ref()
                if t is None or gouts[i] is None or t._ctx is not node:
                    continue
                for hook in t._hooks.values():
                    r = hook(gouts[i])
                    if r is not None:
                        gouts[i] = r
                if t._retains_grad:
                    g = gouts[i] if create_graph else gouts[i].detach()
                    t.grad = g if t.grad is None else t.grad + g
                    owned.add(id(g._buf))
                if capture is not None and id(t) in capture:
                    capture[id(t)] = gouts[i]
            if node.ctx.materialize_grads:
                T = _tensor_cls()
                for i, g in enumerate(gouts):
                    if g is None:
                        shape, dtype, device = node.out_meta[i]
                        gouts[i] = T._zeros(shape, dtype, device)
            if node.ctx._freed:
                node.ctx.saved_tensors          # raises the "backward twice" error
            grads = node.backward_fn(node.ctx, *gouts)
            if not isinstance(grads, (tuple, list)):
                grads = (grads,)
            _check_anomaly(node, grads)
            if not retain_graph:
                node.ctx._free()
            for t, g in zip(node.inputs, grads):
                if t is None or g is None or not t.requires_grad:
                    continue
                if g.shape != t.shape:
                    g = _sum_to(g, t.shape)
                if g.dtype is not t.dtype:
                    g = g.to(t.dtype)
                if t._ctx is None:
                    give_leaf(t, g)
                else:
                    slots = pending.setdefault(t._ctx, [None] * len(t._ctx.outputs))
                    i = t._out_idx
                    slots[i] = g if slots[i] is None else slots[i] + g


def _make_grads(outputs, grad_outputs, create_graph):
    T = _tensor_cls()
    grads = []
    for i, (t, g) in enumerate(zip(outputs, grad_outputs)):
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               "a grad_fn")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = T._full(t.shape, 1, t.dtype, t.device)
        elif not isinstance(g, T):
            g = T._full(t.shape, g, t.dtype, t.device)
        elif g.shape != t.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                               f"{tuple(g.shape)} and output[{i}] has a shape of {tuple(t.shape)}.")
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaves) into the leaves' .grad (torch.autograd.backward)."""
    T = _tensor_cls()
    tensors = [tensors] if isinstance(tensors, T) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, T):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    if retain_graph is None:
        retain_graph = create_graph
    grads = _make_grads(tensors, list(grad_tensors), create_graph)
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, T) else list(inputs)
        cap = {id(t): None for t in inputs}
        _run(tensors, grads, retain_graph, create_graph, capture=cap)
        for t in inputs:
            g = cap[id(t)]
            if g is not None:
                g = g if create_graph else g.detach()
                t.grad = g if t.grad is None else t.grad + g
        return
    _run(tensors, grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Return d(outputs)/d(inputs) without touching any .grad (torch.autograd.grad)."""
    T = _tensor_cls()
    outputs = [outputs] if isinstance(outputs, T) else list(outputs)
    single = isinstance(inputs, T)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, T):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    if retain_graph is None:
        retain_graph = create_graph
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require "
                               "grad")
    grads = _make_grads(outputs, list(grad_outputs), create_graph)
    cap = {id(t): None for t in inputs}
    _run(outputs, grads, retain_graph, create_graph, capture=cap)
    result = []
    for i, t in enumerate(inputs):
        g = cap[id(t)]
        if g is None:
            if materialize_grads:
                g = T._zeros(t.shape, t.dtype, t.device)
            elif not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {i}) appears to not have been "
                    "used in the graph. Set allow_unused=True if this is the desired behavior.")
        elif not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)


# ---- numerical gradient checks ---------------------------------------------------------------
def _flat_inputs(inputs):
    T = _tensor_cls()
    inputs = (inputs,) if isinstance(inputs, T) else tuple(inputs)
    return inputs, [t for t in inputs if isinstance(t, T) and t.requires_grad]


def _outputs(func, inputs):
    T = _tensor_cls()
    out = func(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, T)]


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              nondet_tol=0.0, fast_mode=None, check_undefined_grad=True, **_):
    """Compare autograd's gradients of `func` at `inputs` with central differences.

    Inputs that require grad should be float64 (as in PyTorch). Small outputs compare the full
    Jacobian; large ones compare random projections u^T J, which needs one backward each."""
    import numpy as np
    T = _tensor_cls()
    inputs, wrt = _flat_inputs(inputs)
    if not wrt:
        raise ValueError("gradcheck expects at least one input tensor to require gradient")
    with enable_grad():
        outs = [o for o in _outputs(func, inputs) if o.dtype.is_floating]
    n_out = sum(o.numel() for o in outs)
    rng = np.random.default_rng(0)
    if fast_mode is None:
        fast_mode = n_out > 16
    if fast_mode:
        projections = [[rng.standard_normal(o.shape) for o in outs] for _ in range(2)]
    else:
        projections = []
        for k, o in enumerate(outs):
            for j in range(o.numel()):
                vec = [np.zeros(p.shape) for p in outs]
                vec[k].reshape(-1)[j] = 1.0
                projections.append(vec)

    def project(vec):
        with no_grad():
            outs_ = [o for o in _outputs(func, inputs) if o.dtype.is_floating]
            return sum(float((o.detach().numpy(force=True).astype(np.float64) * v).sum())
                       for o, v in zip(outs_, vec))

    for vec in projections:
        with enable_grad():
            outs_ = [o for o in _outputs(func, inputs) if o.dtype.is_floating]
            used = [(o, v) for o, v in zip(outs_, vec) if o.requires_grad]
            if used:
                ga = grad([o for o, _ in used],
                          wrt, [T._from_numpy(v, o.dtype, o.device) for o, v in used],
                          allow_unused=True)
            else:
                ga = [None] * len(wrt)
        for t, g in zip(wrt, ga):
            analytic = np.zeros(t.shape) if g is None else g.numpy(force=True).astype(np.float64)
            host = t.detach().numpy(force=True).astype(np.float64)
            numeric = np.zeros(t.shape)
            flat = host.reshape(-1)
            for i in range(flat.size):
                orig = flat[i]
                flat[i] = orig + eps
                t.detach().copy_(T._from_numpy(host, t.dtype, t.device))
                plus = project(vec)
                flat[i] = orig - eps
                t.detach().copy_(T._from_numpy(host, t.dtype, t.device))
                minus = project(vec)
                flat[i] = orig
                numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
            t.detach().copy_(T._from_numpy(host, t.dtype, t.device))
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                if not raise_exception:
                    return False
                worst = np.abs(analytic - numeric).max() if analytic.size else 0
                raise GradcheckError(
                    f"Jacobian mismatch for an input of shape {tuple(t.shape)} "
                    f"(max abs difference {worst:.3g}):\nnumerical: {numeric}\n"
                    f"analytical: {analytic}")
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, **kw):
    """gradcheck of the gradient itself (built with create_graph=True): second derivatives."""
    import numpy as np
    T = _tensor_cls()
    inputs, wrt = _flat_inputs(inputs)
    with enable_grad():
        outs = [o for o in _outputs(func, inputs) if o.dtype.is_floating]
    rng = np.random.default_rng(1)
    if grad_outputs is None:
        grad_outputs = [T._from_numpy(rng.standard_normal(o.shape), o.dtype, o.device)
                        for o in outs]

    def first(*args):
        outs_ = [o for o in _outputs(func, args) if o.dtype.is_floating]
        wrt_ = [a for a in args if isinstance(a, T) and a.requires_grad]
        gs = grad(outs_, wrt_, list(grad_outputs), create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first, inputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, **kw)


class GradcheckError(RuntimeError):
    """Analytical and numerical gradients disagree."""
