"""Utilities with PyTorch's layout: `clgrad.utils.data` (datasets, samplers, DataLoader)."""
from . import data

__all__ = ["data"]
