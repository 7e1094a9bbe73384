"""3-D convolution, F.conv3d and its helpers: a sum over the kernel's depth taps of 2-D
convolutions, each batched over (N, output depth), so every tap is one im2col GEMM of the 2-D
path and the gradients are theirs."""
from __future__ import annotations

from ...tensor.shape import pad
from .conv import _check_float, _tuple, conv2d


def _same_pads(kernel, dilation, stride):
    if any(s != 1 for s in stride):
        raise ValueError("padding='same' is not supported for strided convolutions")
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return pads


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution: (N, C_in, D, H, W) * (C_out, C_in/groups, KD, KH, KW) -> (N, C_out, OD,
    OH, OW); (C_in, D, H, W) input gives an unbatched result. padding: int, triple, 'same' or
    'valid'.
    Example: ``F.conv3d(clgrad.randn(1, 2, 5, 6, 6), clgrad.randn(4, 2, 3, 3, 3), padding=1)``"""
    _check_float(input, "conv3d")
    if input.ndim not in (4, 5):
        raise RuntimeError(f"Expected 4D (unbatched) or 5D (batched) input to conv3d, but got "
                           f"input of size: {list(input.shape)}")
    if weight.ndim != 5:
        raise RuntimeError(f"Expected 5-dimensional weight for 5-dimensional input "
                           f"{list(input.shape)}, but got weight of size {list(weight.shape)}")
    x = input if input.ndim == 5 else input.unsqueeze(0)
    k = tuple(weight.shape[2:])
    s = _tuple(stride, 3, "stride")
    d = _tuple(dilation, 3, "dilation")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string '{padding}', should be one of "
                             "['valid', 'same']")
        if padding == "same":
            pads = _same_pads(k, d, s)
            x = pad(x, [v for lo_hi in reversed(pads) for v in lo_hi])
        p = (0, 0, 0)
    else:
        p = _tuple(padding, 3, "padding")
    N, C = x.shape[0], x.shape[1]
    O = weight.shape[0]
    if C != weight.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{list(x.shape)} to have {weight.shape[1] * groups} "
                           f"channels, but got {C} channels instead")
    if p[0]:
        x = pad(x, [0, 0, 0, 0, p[0], p[0]])                         # depth padding, zeros
    D, H, W = x.shape[2:]
    OD = (D - d[0] * (k[0] - 1) - 1) // s[0] + 1
    if OD < 1:
        raise RuntimeError(f"Calculated padded input size per channel: ({D} x {H} x {W}). "
                           f"Kernel size: ({k[0]} x {k[1]} x {k[2]}). Kernel size can't be "
                           "greater than actual input size")
    out = None
    for i in range(k[0]):
        start = i * d[0]
        taps = x[:, :, start:start + s[0] * (OD - 1) + 1:s[0]]         # (N, C, OD, H, W)
        planes = taps.transpose(1, 2).reshape(N * OD, C, H, W)
        y = conv2d(planes, weight[:, :, i], None, s[1:], p[1:], d[1:], groups)
        out = y if out is None else out + y                          # (N*OD, O, OH, OW)
    OH, OW = out.shape[2], out.shape[3]
    out = out.reshape(N, OD, O, OH, OW).transpose(1, 2)
    if bias is not None:
        out = out + bias.reshape(1, O, 1, 1, 1)
    out = out.contiguous()
    return out if input.ndim == 5 else out.squeeze(0)
