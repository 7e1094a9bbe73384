"""clgrad.vision: datasets from local files, transforms, models and image utilities, with
torchvision's names (no network access)."""
from . import datasets, models, transforms, utils

__all__ = ["datasets", "models", "transforms", "utils"]
