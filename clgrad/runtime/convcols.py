"""Convolution lowering on raw buffers: im2col (a convolution's input as the columns its GEMM
multiplies, kernels_cl/conv_cols.cl) and col2im, its adjoint (the input gradient)."""
from __future__ import annotations

import numpy as np

from ..dtypes import DType
from . import codegen
from .device import Device
from .program import kernel, memoize, render


@memoize
def _cols_kernel(device: Device, base: str, dt: DType):
    src = render("conv_cols", extensions=codegen._extensions(dt.ctype), t=dt.ctype, sfx=dt.short)
    name = f"{base}_{dt.short}"
    i32 = np.int32
    if base == "im2col3":
        return kernel(device, src, name, [None, i32, i32, None] + [i32] * 19)
    return kernel(device, src, name, [None, None] + [i32] * 13)


def im2col(device: Device, dt: DType, cols_raw, x_raw, x_off: int, x_strides, B: int, g,
           batch_inner: bool = False) -> None:
    """cols (B, C*KH*KW, OH*OW), or (C*KH*KW, B, OH*OW) when batch_inner, from x (B, C, H, W)
    with strides x_strides; g = (C, H, W, KH, KW, OH, OW, SH, SW, PH, PW, DH, DW)."""
    C, H, W, KH, KW, OH, OW = g[:7]
    L = OH * OW
    if B * C * KH * KW * L == 0:
        return
    sb, st = (L, B * L) if batch_inner else (C * KH * KW * L, L)
    k = _cols_kernel(device, "im2col3", dt)
    k(*k.fixed_group((OW, OH, C * KH * KW), (8, 8, 1)), cols_raw, sb, st, x_raw, x_off,
      *x_strides, B, *g)


def col2im(device: Device, dt: DType, x_raw, cols_raw, B: int, g) -> None:
    """x (B, C, H, W), contiguous, = the adjoint of im2col of contiguous cols."""
    C, H, W = g[:3]
    if B * C * H * W == 0:
        return
    k = _cols_kernel(device, "col2im3", dt)
    k(*k.fixed_group((W, H, B * C), (8, 8, 1)), x_raw, cols_raw, *g)
