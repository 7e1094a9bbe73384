"""The layer classes of clgrad.nn."""
from .module import Module
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .linear import Bilinear, Identity, Linear

# convolution, pooling and upsampling come from the conv helper's files
try:
    from .conv import *  # noqa: F401,F403
except ImportError:
    pass
try:
    from .pooling import *  # noqa: F401,F403
except ImportError:
    pass
try:
    from .upsampling import *  # noqa: F401,F403
except ImportError:
    pass
