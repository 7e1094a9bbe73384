"""clgrad.linalg: PyTorch's torch.linalg namespace (norms and products built from Tensor ops)."""
from __future__ import annotations

import math

from .dtypes import to_dtype


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The vector ord-norm of x over dim (all elements when None).

    Args: ord: any real p, inf, -inf or 0. dim: int, tuple or None. dtype: compute and return
    in this dtype. The gradient where the norm is 0 is 0, as in PyTorch.

    Example: ``vector_norm(clgrad.tensor([3., 4.]))`` is ``tensor(5.)``."""
    return x._vector_norm(ord, dim, keepdim, dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """Matrix norm over the two dims `dim`: 'fro', or the induced 1, -1, inf, -inf norms."""
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
        raise NotImplementedError(f"linalg.matrix_norm(ord={ord!r}) needs an SVD, which clgrad "
                                  "does not have")
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
