"""Learning-rate schedulers with PyTorch's names, recursive update forms and state dicts.

Schedulers only rewrite `param_group['lr']` (and momentum/betas for the cyclic ones) on the host;
the fused optimizer kernels take the learning rate as a scalar argument, so a changing rate never
rebuilds a kernel or syncs the device."""
from .schedulers import (ConstantLR, CosineAnnealingLR, CosineAnnealingWarmRestarts, ExponentialLR,
                         LambdaLR, LinearLR, LRScheduler, MultiplicativeLR, MultiStepLR,
                         PolynomialLR, StepLR, _LRScheduler)
from .cyclic import CyclicLR, OneCycleLR
from .composite import ChainedScheduler, ReduceLROnPlateau, SequentialLR

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR",
           "LinearLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
           "OneCycleLR", "CyclicLR", "PolynomialLR", "SequentialLR", "ChainedScheduler",
           "ReduceLROnPlateau"]
