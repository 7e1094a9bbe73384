"""Matrix products of Tensor: matmul with PyTorch's broadcasting rules and its named cases."""
from __future__ import annotations

import math

from .. import ops
from ..dtypes import bool_
from ..view import View, broadcast_shapes
from . import decomp
from .apply import apply, autocast_policy


class LinalgMixin:
    """Matrix products; the kernel is ops.matmul2 (runtime/gemm.py picks it per device)."""

    def matmul(self, other):
        """Matrix product with torch.matmul's rules: 1-D operands gain and then lose a dim,
        batch dims broadcast."""
        a, b = self, other
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError("both arguments to matmul need to be at least 1D, but they are "
                               f"{a.ndim}D and {b.ndim}D")
        if a.ndim == 1 and b.ndim == 1:
            if a.shape[0] != b.shape[0]:
                raise RuntimeError("inconsistent tensor size, expected tensor [{}] and src [{}] "
                                   "to have the same number of elements, but got {} and {} "
                                   "elements respectively".format(a.shape[0], b.shape[0],
                                                                  a.shape[0], b.shape[0]))
            return apply(ops.matmul_nd, a.unsqueeze(0), b.unsqueeze(1)).reshape(())
        if a.ndim == 1:
            return apply(ops.matmul_nd, a.unsqueeze(0), b).squeeze(-2)
        if b.ndim == 1:
            return apply(ops.matmul_nd, a, b.unsqueeze(1)).squeeze(-1)
        return apply(ops.matmul_nd, a, b)

    def __matmul__(self, other):
        return self.matmul(other)

    def __rmatmul__(self, other):
        return other.matmul(self)

    def mm(self, mat2):
        if self.ndim != 2 or mat2.ndim != 2:
            raise RuntimeError(f"self must be a matrix" if self.ndim != 2 else
                               "mat2 must be a matrix")
        return apply(ops.matmul_nd, self, mat2)

    def bmm(self, mat2):
        if self.ndim != 3 or mat2.ndim != 3:
            raise RuntimeError("batch1 must be a 3D tensor" if self.ndim != 3 else
                               "batch2 must be a 3D tensor")
        if self.shape[0] != mat2.shape[0]:
            raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                               f"[{self.shape[0]}, {self.shape[2]}] but got: "
                               f"[{mat2.shape[0]}, {mat2.shape[1]}].")
        return apply(ops.matmul_nd, self, mat2)

    def mv(self, vec):
        if self.ndim != 2 or vec.ndim != 1:
            raise RuntimeError(f"vector + matrix @ vector expected, got {self.ndim}, "
                               f"{vec.ndim}")
        return self.matmul(vec)

    def dot(self, other):
        if self.ndim != 1 or other.ndim != 1:
            raise RuntimeError(f"1D tensors expected, but got {self.ndim}D and {other.ndim}D "
                               "tensors")
        return self.matmul(other)

    def inner(self, other):
        return self.dot(other) if self.ndim == 1 and other.ndim == 1 else \
            self.matmul(other.transpose(-1, -2) if other.ndim > 1 else other)

    def outer(self, vec2):
        if self.ndim != 1 or vec2.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D arguments, but got {self.ndim}-D and "
                               f"{vec2.ndim}-D")
        return self.unsqueeze(1) * vec2.unsqueeze(0)

    ger = outer

    def svd(self, some=True, compute_uv=True):
        """torch.svd: (U, S, V) with self = U diag(S) V^T (reduced factors when `some`);
        clgrad.linalg.svd is the newer interface."""
        return decomp.svd_old(self, some, compute_uv)

    @autocast_policy("low")
    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        if mat1.ndim != 2 or mat2.ndim != 2:
            raise RuntimeError("mat1 must be a matrix, got {}-D tensor".format(mat1.ndim)
                               if mat1.ndim != 2 else
                               "mat2 must be a matrix, got {}-D tensor".format(mat2.ndim))
        return _scaled_add(self, mat1.mm(mat2), beta, alpha)

    @autocast_policy("low")
    def addmv(self, mat, vec, *, beta=1, alpha=1):
        return _scaled_add(self, mat.mv(vec), beta, alpha)

    @autocast_policy("low")
    def addr(self, vec1, vec2, *, beta=1, alpha=1):
        return _scaled_add(self, vec1.outer(vec2), beta, alpha)

    @autocast_policy("low")
    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return _scaled_add(self, batch1.bmm(batch2), beta, alpha)

    @autocast_policy("low")
    def addbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return _scaled_add(self, batch1.bmm(batch2).sum(0), beta, alpha)


def _scaled_add(inp, prod, beta, alpha):
    """beta * inp + alpha * prod, as addmm and friends define it (beta=0 ignores inp, NaN too)."""
    try:
        ok = broadcast_shapes(inp.shape, prod.shape) == prod.shape
    except (RuntimeError, ValueError):
        ok = False
    if not ok:
        raise RuntimeError(f"The expanded size of the tensor ({list(prod.shape)}) must match "
                           f"the existing size ({list(inp.shape)}) of input")
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        if not inp.requires_grad:
            return prod
        # keep inp in the graph with a zero gradient without letting its NaN/inf through
        never = inp._zeros(inp.shape, bool_, inp.device)
        return prod + inp.where(never, 0)
    return prod + (inp if beta == 1 else inp * beta)


def tensordot(a, b, dims=2):
    """Sum over the last `dims` dims of a and the first of b, or over the listed pairs."""
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = dims
        da = [da] if isinstance(da, int) else list(da)
        db = [db] if isinstance(db, int) else list(db)
        if len(da) != len(db):
            raise RuntimeError("both dimension lists should have same length")
    da = [d % a.ndim for d in da] if a.ndim else da
    db = [d % b.ndim for d in db] if b.ndim else db
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size "
                               f"{a.shape[i]} in dim {i} and second has size {b.shape[j]} in "
                               f"dim {j}")
    fa = [d for d in range(a.ndim) if d not in da]
    fb = [d for d in range(b.ndim) if d not in db]
    K = math.prod(a.shape[d] for d in da)
    am = a.permute(fa + da).reshape(math.prod(a.shape[d] for d in fa), K)
    bm = b.permute(db + fb).reshape(K, math.prod(b.shape[d] for d in fb))
    return am.mm(bm).reshape(tuple(a.shape[d] for d in fa) + tuple(b.shape[d] for d in fb))


def einsum(equation, *operands):
    """Einstein summation: the operands' subscripts name their dims; dims named in the output
    stay, the others are summed. Supports '...', implicit output and repeated input subscripts
    (diagonals). Pairs of operands contract through batched matmul."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation"
                           if len(operands) > len(terms) else
                           "einsum(): fewer operands were provided than specified in the "
                           "equation")
    # labels per operand: letters, or ('...', k) for the k-th broadcast dim counted from the left
    n_ell = 0
    parsed = []
    for i, (term, x) in enumerate(zip(terms, operands)):
        letters = term.replace("...", "")
        for c in letters:
            if not c.isalpha():
                raise RuntimeError(f"einsum(): invalid subscript given at index {eq.index(c)} "
                                   "in the equation string, subscripts must be in [a-zA-Z]")
        if "..." in term:
            k = x.ndim - len(letters)
            if k < 0:
                raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                                   f"({len(letters)}) is more than the number of dimensions "
                                   f"({x.ndim}) for operand {i}")
            n_ell = max(n_ell, k)
            head, tail = term.split("...")
            parsed.append((list(head), k, list(tail)))
        else:
            if len(letters) != x.ndim:
                raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                                   f"({len(letters)}) does not match the number of dimensions "
                                   f"({x.ndim}) for operand {i} and no ellipsis was given")
            parsed.append((list(letters), -1, []))
    labels = []
    for head, k, tail in parsed:
        ell = [("...", n_ell - k + j) for j in range(k)] if k >= 0 else []
        labels.append(head + ell + tail)
    if arrow:
        if "..." in rhs:
            head, tail = rhs.split("...")
            out = list(head) + [("...", j) for j in range(n_ell)] + list(tail)
        else:
            out = list(rhs)
        seen = set()
        for lab in out:
            if lab in seen:
                raise RuntimeError(f"einsum(): output subscript {lab} appears more than once in "
                                   "the output")
            seen.add(lab)
            if not any(lab in ls for ls in labels) and not isinstance(lab, tuple):
                raise RuntimeError(f"einsum(): output subscript {lab} does not appear in the "
                                   "equation for any input operand")
    else:
        counts = {}
        for ls in labels:
            for lab in ls:
                if not isinstance(lab, tuple):
                    counts[lab] = counts.get(lab, 0) + 1
        out = [("...", j) for j in range(n_ell)] + sorted(c for c, n in counts.items() if n == 1)
    sizes = {}
    for ls, x in zip(labels, operands):
        for lab, s in zip(ls, x.shape):
            prev = sizes.get(lab, 1)
            if prev != 1 and s != 1 and prev != s:
                raise RuntimeError(f"einsum(): operands do not broadcast with remapped shapes "
                                   f"(original->remapped): subscript {lab} has sizes {prev} and "
                                   f"{s}")
            sizes[lab] = max(prev, s) if s != 1 else prev
    terms_ = [_einsum_diagonal(x, ls) for x, ls in zip(operands, labels)]
    # contract left to right; a label no later operand or the output needs is summed right away
    cur, cur_l = terms_[0]
    for j in range(1, len(terms_) + 1):
        later = set(out)
        for _, ls in terms_[j:]:
            later.update(ls)
        if j == len(terms_):
            cur, cur_l = _einsum_sum(cur, cur_l, later)
            break
        nxt, nxt_l = terms_[j]
        keep = later | set(nxt_l)
        cur, cur_l = _einsum_sum(cur, cur_l, keep)
        nxt, nxt_l = _einsum_sum(nxt, nxt_l, later | set(cur_l))
        cur, cur_l = _einsum_pair(cur, cur_l, nxt, nxt_l, later, sizes)
    if len(cur_l) != len(out) or set(cur_l) != set(out):
        raise RuntimeError(f"einsum(): internal label mismatch {cur_l} vs {out}")
    res = cur.permute([cur_l.index(lab) for lab in out]) if out else cur
    shape = tuple(sizes[lab] for lab in out)
    return res if res.shape == shape else res.expand(shape)


def _einsum_diagonal(x, ls):
    """Merge repeated labels of one operand into one dim (its diagonal) with a strided view."""
    if len(set(ls)) == len(ls):
        return x, list(ls)
    uniq = list(dict.fromkeys(ls))
    for lab in uniq:
        ss = {x.shape[i] for i, m in enumerate(ls) if m == lab}
        if len(ss) > 1:
            raise RuntimeError(f"einsum(): subscript {lab} is repeated for operand but the sizes "
                               f"don't match, {min(ss)} != {max(ss)}")

    def fn(v):
        shape = tuple(v.shape[ls.index(lab)] for lab in uniq)
        strides = tuple(sum(v.strides[i] for i, m in enumerate(ls) if m == lab) for lab in uniq)
        return View(shape, strides, v.offset)
    return x._view_fn(fn, "DiagonalBackward0"), uniq


def _einsum_sum(x, ls, keep):
    drop = [i for i, lab in enumerate(ls) if lab not in keep]
    if not drop:
        return x, ls
    return x.sum(tuple(drop)), [lab for lab in ls if lab in keep]


def _einsum_pair(a, la, b, lb, later, sizes):
    """Contract a and b over their shared labels that `later` does not need, via matmul."""
    batch = [lab for lab in la if lab in lb and lab in later]
    contract = [lab for lab in la if lab in lb and lab not in later]
    lonly = [lab for lab in la if lab not in lb]
    ronly = [lab for lab in lb if lab not in la]
    A = a.permute([la.index(lab) for lab in batch + lonly + contract])
    B = b.permute([lb.index(lab) for lab in batch + contract + ronly])
    nb = len(batch)
    C = math.prod(sizes[lab] for lab in contract)
    A = A.expand(A.shape[:nb + len(lonly)] + tuple(sizes[lab] for lab in contract))
    B = B.expand(B.shape[:nb] + tuple(sizes[lab] for lab in contract) + B.shape[nb +
                                                                               len(contract):])
    A_free = A.shape[nb:nb + len(lonly)]
    B_free = B.shape[nb + len(contract):]
    L, R = math.prod(A_free), math.prod(B_free)
    A = A.reshape(A.shape[:nb] + (L, C))
    B = B.reshape(B.shape[:nb] + (C, R))
    res = A.matmul(B)                                   # (batch..., L, R)
    res = res.reshape(res.shape[:nb] + A_free + B_free)
    return res, batch + lonly + ronly
