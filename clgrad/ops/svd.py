"""Singular value decomposition on the device (kernels_cl/svd.cl: one-sided Jacobi, one
work-item per matrix) and its gradient, PyTorch's LinalgSvdBackward0 formula in Tensor ops."""
from __future__ import annotations

import numpy as np

from ..runtime import codegen
from ..runtime.program import kernel, memoize, render
from .base import _need, cast

_I = np.int32
# sweeps a matrix gets at most; Jacobi converges quadratically, so well-conditioned inputs
# stop after a handful and this only bounds pathological ones
MAX_SWEEPS = 40
_EPS = {"float": float(np.finfo(np.float32).eps), "double": float(np.finfo(np.float64).eps)}


@memoize
def _svd_kernel(device, ctype: str):
    sfx = {"float": "f32", "double": "f64"}[ctype]
    src = render("svd", extensions=codegen._extensions(ctype), t=ctype, sfx=sfx)
    real = np.float32 if ctype == "float" else np.float64
    return kernel(device, src, f"svd_jacobi_{sfx}", [None, None, None, None, _I, _I, _I, _I, _I,
                                                      real, _I])


def _check(x, what):
    if x.ndim < 2:
        raise RuntimeError(f"linalg.{what}: The input tensor A must have at least 2 dimensions.")
    if x.dtype.ctype not in ("float", "double"):
        raise NotImplementedError(f"linalg.{what}: only float32 and float64 tensors are "
                                  f"supported, got {x.dtype.name}")
    m, n = x.shape[-2:]
    if m * n >= codegen.INT32_LIMIT or x.numel() >= codegen.INT32_LIMIT:
        raise RuntimeError(f"linalg.{what}: matrices of 2**31 or more elements are not "
                           "supported")


def svd_tall(a, compute_uv: bool, full: bool):
    """(U, S, V) of the (..., m, n) matrices a, m >= n, k = n, by Jacobi on the device: U
    (..., m, n) or (..., m, m) with `full`, S (..., n) descending, V (..., n, n) with the right
    singular vectors as columns; U and V are None without compute_uv. No autograd."""
    T = a._plain
    lead = tuple(a.shape[:-2])
    m, n = a.shape[-2:]
    B = int(np.prod(lead, dtype=np.int64)) if lead else 1
    dt, dev = a.dtype, a.device
    work = cast(a, dt, out=T._empty(lead + (m, n), dt, dev))       # a dense copy, overwritten
    s = T._empty(lead + (n,), dt, dev)
    uc = m if full else n
    if compute_uv:
        u = T._empty(lead + (m, uc), dt, dev)
        v = T._empty(lead + (n, n), dt, dev)
    else:
        u = v = T._empty((1,), dt, dev)                              # not touched
    if B and m:
        tol = _EPS[dt.ctype] * max(m, 2)
        # one work-item per work-group: a matrix is long serial work, and groups of one spread
        # the batch over every compute unit (a larger group would run on one)
        _svd_kernel(dev, dt.ctype)((B,), (1,), work._buf.raw, s._buf.raw, u._buf.raw,
                                   v._buf.raw, m, n, uc, int(compute_uv), MAX_SWEEPS, tol, B)
        for t in (work, s, u, v):
            t._buf.version += 1
    return (u, s, v) if compute_uv else (None, s, None)


def svd_forward(ctx, A, full_matrices: bool):
    """torch.linalg.svd's forward for Tensor._apply: (U, S, Vh) with k = min(m, n); a wide
    matrix is decomposed through its transpose."""
    m, n = A.shape[-2:]
    if m >= n:
        u, s, v = svd_tall(A, True, full_matrices)
        U, Vh = u, v.mT
    else:
        u, s, v = svd_tall(A.mT, True, full_matrices)
        U, Vh = v, u.mT
    if ctx is not None:
        ctx.materialize_grads = False
        ctx.save_for_backward(U, s, Vh)
        ctx.full = full_matrices
    return (U, s, Vh), "LinalgSvdBackward0", _svd_backward


def svdvals_forward(ctx, A):
    """torch.linalg.svdvals's forward: the singular values, descending. The gradient needs the
    vectors, so they are computed only when a gradient will be taken."""
    tall = A if A.shape[-2] >= A.shape[-1] else A.mT
    if ctx is None:
        return svd_tall(tall, False, False)[1], "LinalgSvdBackward0", None
    u, s, v = svd_tall(tall, True, False)
    U, Vh = (u, v.mT) if A.shape[-2] >= A.shape[-1] else (v, u.mT)
    ctx.save_for_backward(U, s, Vh)
    return s, "LinalgSvdBackward0", lambda c, gS: (
        (U * gS.unsqueeze(-2)) @ Vh if _need(c, 0) else None,)


def _svd_backward(ctx, gU, gS, gVh):
    """PyTorch's svd_backward for real inputs: gA from the gradients of U, S, Vh (any may be
    None). Repeated singular values divide by zero here, as in PyTorch (the vectors are not
    unique there)."""
    if not _need(ctx, 0):
        return (None,)
    U, S, Vh = ctx.saved_tensors
    k = S.shape[-1]
    if ctx.full:                      # PyTorch differentiates the first k columns / rows only
        U, Vh = U[..., :k], Vh[..., :k, :]
        gU = None if gU is None else gU[..., :k]
        gVh = None if gVh is None else gVh[..., :k, :]
    m, n = U.shape[-2], Vh.shape[-1]
    if gU is None and gVh is None:
        gS_ = gS if gS is not None else S * 0
        return ((U * gS_.unsqueeze(-2)) @ Vh,)
    Sr, Sc = S.unsqueeze(-2), S.unsqueeze(-1)             # S along rows / along columns
    S2 = S * S
    E = S2.unsqueeze(-2) - S2.unsqueeze(-1)
    eye = (E * 0 + 1).tril().triu()                       # the identity, E's shape and dtype
    E = E + eye
    gA = None
    if gU is not None:
        UhgU = U.mT @ gU
        gA = (UhgU - UhgU.mT) * Sr / E
    V = Vh.mT
    gV = None if gVh is None else gVh.mT
    if gV is not None:
        VhgV = Vh @ gV
        t = Sc * (VhgV - VhgV.mT) / E
        gA = t if gA is None else gA + t
    if gS is not None:
        gA = gA + eye * gS.unsqueeze(-2)
    if m > n and gU is not None:
        gA = U @ gA
        gUSinv = gU / Sr
        gA = (gA + gUSinv - U @ (U.mT @ gUSinv)) @ Vh
    elif m < n and gV is not None:
        gA = gA @ Vh
        gVSinv = gV / Sr
        gA = U @ (gA + gVSinv.mT - (gVSinv.mT @ V) @ Vh)
    else:
        gA = U @ (gA @ Vh)
    return (gA,)
