"""clgrad.autograd.functional: Jacobians, Hessians and vector products of whole functions, built
on autograd.grad (reverse mode; forward products by the double-backward trick)."""
from __future__ import annotations

from ..array import Array
from .engine import grad
from .grad_mode import enable_grad


def _tuple(x, what):
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(items):
        if not isinstance(t, Array):
            raise TypeError(f"The {what} given to the function must be either a Tensor or a "
                            f"tuple of Tensors but the value at index {i} has type "
                            f"{type(t).__name__}.")
    return is_tuple, items


def _prepare(inputs, create_graph):
    # fresh leaves (or graph-connected aliases with create_graph) that require grad
    out = []
    for t in inputs:
        if create_graph and t.requires_grad:
            out.append(t.view_as(t))
        else:
            out.append(t.detach().requires_grad_(t.dtype.is_floating))
    return tuple(out)


def _grads(outputs, inputs, grad_outputs, create_graph, strict):
    gs = grad(outputs, inputs, grad_outputs, retain_graph=True, create_graph=create_graph,
              allow_unused=True)
    res = []
    for i, (g, t) in enumerate(zip(gs, inputs)):
        if g is None:
            if strict:
                raise RuntimeError(f"The output of the user-provided function is independent of "
                                   f"input {i}. This is not allowed in strict mode.")
            g = t._plain._zeros(t.shape, t.dtype, t.device)
        res.append(g)
    return tuple(res)


def _finish(t, create_graph):
    return t if create_graph else t.detach()


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the vector-Jacobian product at `inputs`."""
    is_tuple, inputs = _tuple(inputs, "inputs")
    with enable_grad():
        inputs = _prepare(inputs, create_graph)
        out_tuple, outs = _tuple(func(*inputs), "outputs of the user-provided function")
        if v is None:
            if len(outs) != 1 or outs[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the user-provided function "
                                   "returns a single Tensor with a single element.")
            vs = (None,)
        else:
            vs = _tuple(v, "v")[1]
        gs = _grads(list(outs), list(inputs), list(vs), create_graph, strict)
    outs = tuple(_finish(o, create_graph) for o in outs)
    gs = tuple(_finish(g, create_graph) for g in gs)
    return (outs if out_tuple else outs[0]), (gs if is_tuple else gs[0])


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the Jacobian-vector product, as the vjp of a vjp (J^T u is linear in
    u, so differentiating it in u gives J)."""
    is_tuple, inputs = _tuple(inputs, "inputs")
    if v is None:
        if len(inputs) != 1 or inputs[0].numel() != 1:
            raise RuntimeError("The vector v can only be None if the input to the user-provided "
                               "function is a single Tensor with a single element.")
        vs = (inputs[0]._plain._full(inputs[0].shape, 1, inputs[0].dtype, inputs[0].device),)
    else:
        vs = _tuple(v, "v")[1]
    with enable_grad():
        inputs = _prepare(inputs, create_graph)
        out_tuple, outs = _tuple(func(*inputs), "outputs of the user-provided function")
        us = [o._plain._zeros(o.shape, o.dtype, o.device).requires_grad_() for o in outs]
        gs = _grads(list(outs), list(inputs), us, True, strict)
        used = [(g, w) for g, w in zip(gs, vs) if g.requires_grad]
        if used:
            jv = grad([g for g, _ in used], us, [w for _, w in used],
                      create_graph=create_graph, allow_unused=True)
        else:
            jv = [None] * len(us)
        jv = [o._plain._zeros(o.shape, o.dtype, o.device) if j is None else j
              for j, o in zip(jv, outs)]
    outs = tuple(_finish(o, create_graph) for o in outs)
    jv = tuple(_finish(j, create_graph) for j in jv)
    return (outs if out_tuple else outs[0]), (jv if out_tuple else jv[0])


def _assemble(rows, out_shape, in_shape):
    """Stack gradient rows (one per output element) into a tensor of out_shape + in_shape, with
    differentiable placement so create_graph works."""
    n = len(rows)
    lead = (1,) + tuple(in_shape)
    total = None
    for k, r in enumerate(rows):
        onehot = r.new_zeros((n,) + (1,) * len(in_shape))        # (n, 1, ..., 1)
        onehot.select(0, k).fill_(1)
        placed = r.reshape(lead) * onehot                        # (n, *in_shape), row k = r
        total = placed if total is None else total + placed
    return total.reshape(tuple(out_shape) + tuple(in_shape))


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """d func(inputs) / d inputs: for a tensor in and out, a tensor of shape
    out.shape + in.shape; tuples give tuples (per output, then per input)."""
    if strategy != "reverse-mode":
        raise NotImplementedError("clgrad's jacobian supports strategy='reverse-mode' only")
    is_tuple, inputs = _tuple(inputs, "inputs")
    with enable_grad():
        inputs = _prepare(inputs, create_graph)
        out_tuple, outs = _tuple(func(*inputs), "outputs of the user-provided function")
        result = []
        for o in outs:
            flat = o.reshape(-1)
            rows = [[] for _ in inputs]
            for k in range(flat.numel()):
                if o.requires_grad:
                    gs = _grads([flat[k]], list(inputs), [None], create_graph, strict)
                else:
                    if strict:
                        raise RuntimeError("Output 0 of the user-provided function does not "
                                           "require gradients. The outputs must be computed in "
                                           "a differentiable manner from the input when running "
                                           "in strict mode.")
                    gs = tuple(t._plain._zeros(t.shape, t.dtype, t.device) for t in inputs)
                for j, g in enumerate(gs):
                    rows[j].append(g)
            per_in = []
            for j, t in enumerate(inputs):
                if not rows[j]:
                    per_in.append(t._plain._zeros(tuple(o.shape) + tuple(t.shape), t.dtype,
                                                  t.device))
                else:
                    per_in.append(_finish(_assemble(rows[j], o.shape, t.shape), create_graph))
            result.append(tuple(per_in) if is_tuple else per_in[0])
    return tuple(result) if out_tuple else result[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """Second derivatives of a scalar function: in.shape + in.shape per pair of inputs."""
    is_tuple, inputs_t = _tuple(inputs, "inputs")

    def gradient(*xs):
        out = func(*xs)
        if not isinstance(out, Array) or out.numel() != 1:
            raise RuntimeError("The function given to hessian should return a single Tensor "
                               "with a single element.")
        gs = _grads([out.reshape(())], list(xs), [None], True, strict)
        return gs if is_tuple else gs[0]

    return jacobian(gradient, inputs_t if is_tuple else inputs_t[0], create_graph=create_graph,
                    strict=strict)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for a scalar function."""
    is_tuple, inputs = _tuple(inputs, "inputs")
    vs = _tuple(v, "v")[1] if v is not None else None
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        if out.numel() != 1:
            raise RuntimeError("The function given to hvp should return a single Tensor with a "
                               "single element.")
        gs = _grads([out.reshape(())], list(xs), [None], True, strict)
        if vs is None:
            if len(xs) != 1 or xs[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the input to the "
                                   "user-provided function is a single Tensor with a single "
                                   "element.")
            vs = (None,)
        used = [(g, w, i) for i, (g, w) in enumerate(zip(gs, vs)) if g.requires_grad]
        hv = _grads([g for g, _, _ in used], list(xs), [w for _, w, _ in used], create_graph,
                    strict) if used else tuple(t._plain._zeros(t.shape, t.dtype, t.device)
                                               for t in xs)
    out = _finish(out, create_graph)
    hv = tuple(_finish(h, create_graph) for h in hv)
    return out, (hv if is_tuple else hv[0])


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar function (equal to v^T H: the Hessian is symmetric)."""
    return vhp(func, inputs, v, create_graph, strict)
