"""Numerical gradient checks: gradcheck and gradgradcheck (central differences, float64)."""
from __future__ import annotations

import warnings

import numpy as np

from .engine import _as_list, grad
from .grad_mode import enable_grad
from ..array import Array

class GradcheckError(RuntimeError):
    """Analytical and numerical gradients disagree."""


def _flat_inputs(inputs):
    inputs = (inputs,) if isinstance(inputs, Array) else tuple(inputs)
    return inputs, [t for t in inputs if isinstance(t, Array) and t.requires_grad]


def _outputs(func, inputs):
    out = func(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Array) and o.dtype.is_floating]


def _host64(t):
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
            seeds = [o._plain._from_numpy(v.reshape(o.shape), o.dtype, o.device) for o, v in used]
            gs = grad([o for o, _ in used], wrt, seeds,
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
            target.copy_(t._plain._from_numpy(host, t.dtype, t.device))
            plus = forward_flat()
            flat[i] = orig - eps
            target.copy_(t._plain._from_numpy(host, t.dtype, t.device))
            minus = forward_flat()
            flat[i] = orig
            J[:, i] = (plus - minus) / (2 * eps)
        target.copy_(t._plain._from_numpy(host, t.dtype, t.device))
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
    inputs, wrt = _flat_inputs(inputs)
    with enable_grad():
        outs = _outputs(func, inputs)
    rng = np.random.default_rng(1)
    if grad_outputs is None:
        grad_outputs = [o._plain._from_numpy(rng.standard_normal(o.shape), o.dtype, o.device)
                        for o in outs]
    else:
        grad_outputs = _as_list(grad_outputs)

    def first(*args):
        outs_ = _outputs(func, args)
        wrt_ = [a for a in args if isinstance(a, Array) and a.requires_grad]
        used = [(o, g) for o, g in zip(outs_, grad_outputs) if o.requires_grad]
        gs = grad([o for o, _ in used], wrt_, [g for _, g in used], create_graph=True,
                  allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first, inputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, **kw)
