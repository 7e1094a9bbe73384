"""Matrix products of Tensor: matmul with PyTorch's broadcasting rules and its named cases."""
from __future__ import annotations

from . import ops


class LinalgMixin:
    """Matrix products; the kernel is ops.matmul2 (tiled local memory)."""

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
            return ops.matmul_nd(a.unsqueeze(0), b.unsqueeze(1)).reshape(())
        if a.ndim == 1:
            return ops.matmul_nd(a.unsqueeze(0), b).squeeze(-2)
        if b.ndim == 1:
            return ops.matmul_nd(a, b.unsqueeze(1)).squeeze(-1)
        return ops.matmul_nd(a, b)

    def __matmul__(self, other):
        return self.matmul(other)

    def __rmatmul__(self, other):
        return other.matmul(self)

    def mm(self, mat2):
        if self.ndim != 2 or mat2.ndim != 2:
            raise RuntimeError(f"self must be a matrix" if self.ndim != 2 else
                               "mat2 must be a matrix")
        return ops.matmul_nd(self, mat2)

    def bmm(self, mat2):
        if self.ndim != 3 or mat2.ndim != 3:
            raise RuntimeError("batch1 must be a 3D tensor" if self.ndim != 3 else
                               "batch2 must be a 3D tensor")
        if self.shape[0] != mat2.shape[0]:
            raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                               f"[{self.shape[0]}, {self.shape[2]}] but got: "
                               f"[{mat2.shape[0]}, {mat2.shape[1]}].")
        return ops.matmul_nd(self, mat2)

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
