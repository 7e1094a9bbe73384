"""Matrix decompositions as Tensor-level calls (floor 5): the singular value decomposition of
clgrad/ops/svd.py through Tensor._apply, so it is recorded with PyTorch's grad_fn name, and
Tensor.svd / clgrad.svd (PyTorch's older interface: V instead of Vh, `some`)."""
from __future__ import annotations

from collections import namedtuple

from ..ops import svd as _ops

SVD = namedtuple("SVD", ["U", "S", "Vh"])
_OldSVD = namedtuple("svd", ["U", "S", "V"])


def check(A, what):
    _ops._check(A, what)


def _empty(A, full_matrices, compute_uv=True):
    """The SVD of matrices with a zero side: no singular values; a full U/Vh is the identity."""
    m, n = A.shape[-2:]
    lead = tuple(A.shape[:-2])
    S = A.new_zeros(lead + (0,))
    if not compute_uv:
        return S

    def square(k):
        return A.new_ones(lead + (k,)).diag_embed()
    U = square(m) if full_matrices else A.new_zeros(lead + (m, 0))
    Vh = square(n) if full_matrices else A.new_zeros(lead + (0, n))
    return SVD(U, S, Vh)


def svd(A, full_matrices=True):
    """(U, S, Vh) of each (..., m, n) matrix: see clgrad.linalg.svd."""
    check(A, "svd")
    if 0 in A.shape[-2:]:
        return _empty(A, full_matrices)
    return SVD(*A._apply(_ops.svd_forward, A, bool(full_matrices)))


def svdvals(A):
    """The singular values of each (..., m, n) matrix, descending."""
    check(A, "svdvals")
    if 0 in A.shape[-2:]:
        return _empty(A, False, False)
    return A._apply(_ops.svdvals_forward, A)


def singular_norm(x, ord, dims, keepdim=False):
    """The matrix norm of x over the two dims `dims` from its singular values: 'nuc' (their
    sum), 2 (the largest) or -2 (the smallest)."""
    d0, d1 = (d % x.ndim for d in dims)
    sv = svdvals(x.movedim((d0, d1), (-2, -1)))
    out = sv.sum(-1) if ord == "nuc" else (sv.amax(-1) if ord == 2 else sv.amin(-1))
    if keepdim:
        out = out.unsqueeze(min(d0, d1)).unsqueeze(max(d0, d1))
    return out


def svd_old(A, some=True, compute_uv=True):
    """torch.svd: (U, S, V) with V = Vh^T; some=True gives the reduced factors. Without
    compute_uv, U and V are zeros (of the full shapes), as in PyTorch."""
    if not compute_uv:
        S = svdvals(A)
        m, n = A.shape[-2:]
        lead = tuple(A.shape[:-2])
        return _OldSVD(A.new_zeros(lead + (m, m)), S, A.new_zeros(lead + (n, n)))
    U, S, Vh = svd(A, full_matrices=not some)
    return _OldSVD(U, S, Vh.mT)
