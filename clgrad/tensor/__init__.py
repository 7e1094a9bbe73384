"""Floor 5, the Tensor: `Tensor` (tensor.py) assembled from mixins (pointwise, reduce, shape,
linalg, conversion, movement), indexing and advanced indexing, printing (format), creation
functions and the random generator."""
from .tensor import Size, Tensor
from . import creation, random

__all__ = ["Size", "Tensor", "creation", "random"]
