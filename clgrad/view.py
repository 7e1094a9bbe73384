"""View(shape, strides, offset): how a tensor's elements sit in its buffer; pure Python, no device."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod


def contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


def normalize_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def broadcast_shapes(*shapes) -> tuple:
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, ndim - len(s)):
            if d != 1:
                if out[i] != 1 and out[i] != d:
                    raise RuntimeError(
                        "shapes " + ", ".join(str(list(x)) for x in shapes) +
                        f" cannot be broadcast together: size {out[i]} vs {d} at dimension {i}")
                out[i] = d
    return tuple(out)


@dataclass(frozen=True)
class View:
    shape: tuple
    strides: tuple
    offset: int = 0

    @staticmethod
    def contiguous(shape, offset: int = 0) -> "View":
        shape = tuple(int(s) for s in shape)
        return View(shape, contiguous_strides(shape), offset)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return prod(self.shape)

    def is_contiguous(self) -> bool:
        expect = 1
        for s, st in zip(reversed(self.shape), reversed(self.strides)):
            if s == 1:
                continue
            if st != expect:
                return False
            expect *= s
        return True

    def extent(self) -> tuple:
        """(lowest, highest) element index touched, relative to the buffer start."""
        if self.numel == 0:
            return self.offset, self.offset
        lo = hi = self.offset
        for s, st in zip(self.shape, self.strides):
            if st > 0:
                hi += (s - 1) * st
            else:
                lo += (s - 1) * st
        return lo, hi

    # ---- movement: each returns a new View and never touches data ---------------------------
    def permute(self, order) -> "View":
        return View(tuple(self.shape[i] for i in order), tuple(self.strides[i] for i in order),
                    self.offset)

    def expand(self, shape) -> "View":
        shape = tuple(shape)
        lead = len(shape) - self.ndim
        strides = []
        for i, s in enumerate(shape):
            j = i - lead
            if j < 0:
                strides.append(0)
            elif self.shape[j] == s:
                strides.append(self.strides[j] if s != 1 else 0)
            elif self.shape[j] == 1:
                strides.append(0)
            else:
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) must match the existing size "
                    f"({self.shape[j]}) at non-singleton dimension {i}.  Target sizes: "
                    f"{list(shape)}.  Tensor sizes: {list(self.shape)}")
        return View(shape, tuple(strides), self.offset)

    def slice(self, dim: int, start: int, stop: int, step: int = 1) -> "View":
        n = max(0, (stop - start + step - 1) // step)
        shape = self.shape[:dim] + (n,) + self.shape[dim + 1:]
        strides = self.strides[:dim] + (self.strides[dim] * step,) + self.strides[dim + 1:]
        return View(shape, strides, self.offset + start * self.strides[dim] if n else self.offset)

    def select(self, dim: int, index: int) -> "View":
        return View(self.shape[:dim] + self.shape[dim + 1:],
                    self.strides[:dim] + self.strides[dim + 1:],
                    self.offset + index * self.strides[dim])

    def unsqueeze(self, dim: int) -> "View":
        st = self.strides[dim] * self.shape[dim] if dim < self.ndim else 1
        return View(self.shape[:dim] + (1,) + self.shape[dim:],
                    self.strides[:dim] + (st,) + self.strides[dim:], self.offset)

    def squeeze(self, dims) -> "View":
        keep = [i for i in range(self.ndim) if not (i in dims and self.shape[i] == 1)]
        return View(tuple(self.shape[i] for i in keep), tuple(self.strides[i] for i in keep),
                    self.offset)

    def reshape(self, shape) -> "View | None":
        """The view with `shape` over the same elements, or None when that needs a copy."""
        shape = tuple(shape)
        if prod(shape) != self.numel:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {self.numel}")
        if self.is_contiguous():
            return View.contiguous(shape, self.offset)
        if self.numel == 0 or self.ndim == 0:
            return View.contiguous(shape, self.offset)
        # Walk old dims from the innermost, closing a chunk wherever the old dims stop being
        # contiguous with each other; the new dims must split each chunk exactly (torch's rule).
        new_strides = [1] * len(shape)
        nd = len(shape) - 1
        base = self.strides[-1]
        old_n = new_n = 1
        for od in range(self.ndim - 1, -1, -1):
            old_n *= self.shape[od]
            chunk_ends = od == 0 or (self.shape[od - 1] != 1 and
                                     self.strides[od - 1] != old_n * base)
            if not chunk_ends:
                continue
            while nd >= 0 and (new_n < old_n or shape[nd] == 1):
                new_strides[nd] = new_n * base
                new_n *= shape[nd]
                nd -= 1
            if new_n != old_n:
                return None
            if od > 0:
                base = self.strides[od - 1]
                old_n = new_n = 1
        if nd != -1:
            return None
        return View(shape, tuple(new_strides), self.offset)


def coalesce(shape, *strides_list):
    """Merge adjacent dims that every operand walks contiguously; drop size-1 dims.

    Returns (shape, [strides...]) of minimal rank for a strided loop (rank >= 1)."""
    dims = [i for i, s in enumerate(shape) if s != 1]
    if not dims:
        return (1,), [(0,) for _ in strides_list]
    out_shape = [shape[dims[0]]]
    out_strides = [[st[dims[0]]] for st in strides_list]
    for i in dims[1:]:
        s = shape[i]
        if all(os[-1] == st[i] * s for os, st in zip(out_strides, strides_list)):
            out_shape[-1] *= s
            for os, st in zip(out_strides, strides_list):
                os[-1] = st[i]
        else:
            out_shape.append(s)
            for os, st in zip(out_strides, strides_list):
                os.append(st[i])
    return tuple(out_shape), [tuple(s) for s in out_strides]
