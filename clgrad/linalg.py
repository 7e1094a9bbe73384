"""clgrad.linalg: PyTorch's torch.linalg namespace (norms and products built from Tensor ops;
the SVD and the norms built on it run as device kernels, clgrad/ops/svd.py)."""
from __future__ import annotations

import math

from .dtypes import to_dtype
from .tensor import decomp as _decomp

SVD = _decomp.SVD


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The vector ord-norm of x over dim (all elements when None).

    Args: ord: any real p, inf, -inf or 0. dim: int, tuple or None. dtype: compute and return
    in this dtype. The gradient where the norm is 0 is 0, as in PyTorch.

    Example: ``vector_norm(clgrad.tensor([3., 4.]))`` is ``tensor(5.)``."""
    return x._vector_norm(ord, dim, keepdim, dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """Matrix norm over the two dims `dim`: 'fro', 'nuc' (the sum of the singular values), the
    induced 1, -1, inf, -inf norms, or 2 / -2 (the largest / smallest singular value)."""
    if A.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 "
                           "dimensions.")
    x = A.to(to_dtype(dtype)) if dtype is not None else A
    d0, d1 = (d % A.ndim for d in dim)
    if d0 == d1:
        raise RuntimeError("linalg.matrix_norm: dims must be different")
    if ord == "fro":
        return x._vector_norm(2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        return _decomp.singular_norm(x, ord, (d0, d1), keepdim)
    if ord not in (1, -1, math.inf, -math.inf):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    # inf: the largest row sum of |A| (sum over columns); 1: the largest column sum
    sum_dim, pick_dim = (d1, d0) if abs(ord) == math.inf else (d0, d1)
    s = x.abs().sum(sum_dim, keepdim=True)
    out = s.amax(pick_dim, keepdim=True) if ord > 0 else s.amin(pick_dim, keepdim=True)
    return out if keepdim else out.squeeze((d0, d1))


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """torch.linalg.norm: a vector norm over one dim (or all, flattened, when ord and dim are
    None), a matrix norm over two."""
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None and len(dim) == 1:
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if dim is not None and len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    if dim is not None:
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. "
                           f"Got {list(dim)}")
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    raise RuntimeError("linalg.norm: If dim is not specified but ord is, the input must be 1D "
                       f"or 2D. Got {A.ndim}D.")


def svd(A, full_matrices=True, *, driver=None, out=None):
    """A = U diag(S) Vh for each (..., m, n) matrix (float32/float64), computed on the device by
    one-sided Jacobi rotations: S (..., k), k = min(m, n), descending; U (..., m, m) and Vh
    (..., n, n) with full_matrices, else (..., m, k) and (..., k, n). Signs (LAPACK fixes
    none): the largest entry of each column of U is positive (of each row of Vh when m < n).

    Gradients follow PyTorch's: defined where the singular values are distinct (and non-zero
    for the vectors of a non-square matrix); with full_matrices the extra columns get none.
    Example: ``U, S, Vh = clgrad.linalg.svd(A, full_matrices=False)``"""
    if driver is not None:
        raise NotImplementedError("linalg.svd: driver= is a CUDA option; clgrad has one "
                                  "algorithm (one-sided Jacobi)")
    res = _decomp.svd(A, full_matrices)
    if out is not None:
        for o, r in zip(out, res):
            o.copy_(r)
        return SVD(*out)
    return res


def svdvals(A, *, driver=None, out=None):
    """The singular values of each (..., m, n) matrix, descending: (..., min(m, n)). The
    gradient is U diag(gS) Vh.
    Example: ``clgrad.linalg.svdvals(clgrad.eye(3) * 2)`` is ``tensor([2., 2., 2.])``"""
    if driver is not None:
        raise NotImplementedError("linalg.svdvals: driver= is a CUDA option")
    res = _decomp.svdvals(A)
    if out is not None:
        out.copy_(res)
        return out
    return res


def cond(A, p=None):
    """The condition number of each (..., m, n) matrix in the norm p: None or 2 (the ratio of
    the largest to the smallest singular value), -2 (its inverse), 'fro', 'nuc', 1, -1, inf,
    -inf (norm(A) * norm(inv(A)), square matrices; clgrad has no inverse yet, so these raise)."""
    if p is None or p in (2, -2):
        sv = svdvals(A)
        big, small = sv.amax(-1), sv.amin(-1)
        return big / small if p in (None, 2) else small / big
    raise NotImplementedError(f"linalg.cond(p={p!r}) needs a matrix inverse, which clgrad does "
                              "not have; p=None, 2 and -2 are supported")
