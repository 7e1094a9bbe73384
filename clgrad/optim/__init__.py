"""Optimizers over flat device arenas (one fused launch per group per step) and LR schedulers."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW, Adamax, NAdam, RAdam
from .rmsprop import Adadelta, Adagrad, RMSprop
from .lbfgs import LBFGS
from .rprop import ASGD, Rprop
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop",
           "Adagrad", "Adadelta", "LBFGS", "Rprop", "ASGD",
           "lr_scheduler"]
