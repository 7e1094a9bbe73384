"""clgrad.nn: modules, parameters, functional API, initialisation and utilities (torch.nn)."""
from .parameter import Buffer, Parameter
from .modules import *  # noqa: F401,F403
from .modules import Module
from . import functional, init, parallel, utils
from .parallel import DataParallel, DistributedDataParallel
