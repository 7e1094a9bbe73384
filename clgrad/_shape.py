"""Shape and joining Tensor methods that copy data (cat, stack, ...)."""
from __future__ import annotations


class ShapeMixin:
    """Shape ops of Tensor that need kernels; views live in tensor.py."""
