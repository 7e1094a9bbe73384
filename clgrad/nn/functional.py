"""clgrad.nn.functional: the stateless layer, activation, normalisation and loss functions."""
from __future__ import annotations

import math

from .. import autograd, ops
from ..tensor import Tensor


# ---- linear ------------------------------------------------------------------------------------
def linear(input, weight, bias=None):
    """y = input @ weight^T + bias.  Shape: (*, in), (out, in), (out,) -> (*, out)."""
    out = input.matmul(weight.t())
    return out + bias if bias is not None else out


def bilinear(input1, input2, weight, bias=None):
    """y_o = sum_ij x1_i A_oij x2_j + b_o.  Shape: (*, in1), (*, in2), (out, in1, in2) -> (*, out)."""
    lead = input1.shape[:-1]
    out_f, in1, in2 = weight.shape
    x1 = input1.reshape(-1, in1)
    x2 = input2.reshape(-1, in2)
    t = x1.matmul(weight.permute(1, 0, 2).reshape(in1, out_f * in2))   # (N, O*in2)
    y = (t.reshape(-1, out_f, in2) * x2.unsqueeze(1)).sum(-1)          # (N, O)
    if bias is not None:
        y = y + bias
    return y.reshape(tuple(lead) + (out_f,))
