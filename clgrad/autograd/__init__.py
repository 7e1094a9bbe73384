"""Floor 4, autograd: grad modes, the tape (Context, Node, record), the backward walk,
user-defined Functions, gradcheck and the functional transforms (jacobian, hessian, ...)."""
from .grad_mode import (detect_anomaly, enable_grad, inference_mode, is_anomaly_check_nan_enabled,
                        is_anomaly_enabled, is_grad_enabled, is_inference_mode_enabled, no_grad,
                        set_detect_anomaly, set_grad_enabled)
from .graph import AccumulateGrad, Context, Node, _Handle, needs_grad, nodes_since, record
from .function import Function, FunctionCtx, once_differentiable
from .engine import backward, grad
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from . import functional

__all__ = ["AccumulateGrad", "Context", "Function", "FunctionCtx", "GradcheckError", "Node",
           "backward", "detect_anomaly", "enable_grad", "functional", "grad", "gradcheck",
           "gradgradcheck", "inference_mode", "is_anomaly_check_nan_enabled",
           "is_anomaly_enabled", "is_grad_enabled", "is_inference_mode_enabled", "needs_grad",
           "no_grad", "nodes_since", "once_differentiable", "record", "set_detect_anomaly",
           "set_grad_enabled"]
