"""3-D convolution, F.conv3d and its helpers: a sum over the kernel's depth taps of 2-D
convolutions, each batched over (N, output depth), so every tap is one im2col GEMM of the 2-D
path and the gradients are theirs. F.conv_transpose3d is one 2-D transposed convolution with
every depth tap as extra output channels, its taps then placed along the output depth."""
from __future__ import annotations

from ...tensor.shape import pad
from ...tensor.shape import cat
from .conv import _check_float, _check_transposed_bias, _tuple, conv2d, conv_transpose2d


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


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """3-D transposed convolution (the gradient of conv3d for its input): (N, C_in, D, H, W) ->
    (N, C_out, OD, OH, OW); (C_in, D, H, W) input gives an unbatched result.

    Shape: weight (C_in, C_out/groups, KD, KH, KW); each output side is
    (n - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1.
    Example: ``F.conv_transpose3d(clgrad.randn(1, 4, 3, 5, 5), clgrad.randn(4, 2, 3, 3, 3),
    stride=2)``"""
    _check_float(input, "conv_transpose3d")
    if input.ndim not in (4, 5):
        raise RuntimeError(f"Expected 4D (unbatched) or 5D (batched) input to conv_transpose3d, "
                           f"but got input of size: {list(input.shape)}")
    if weight.ndim != 5:
        raise RuntimeError(f"weight should have 5 dimensions, got {weight.ndim}")
    x = input if input.ndim == 5 else input.unsqueeze(0)
    N, Cin, D, H, W = x.shape
    Cin_w, Cog, KD, KH, KW = weight.shape
    if Cin != Cin_w:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {Cin_w} channels, but got {Cin} "
                           "channels instead")
    if groups < 1 or Cin % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} "
                           "instead")
    s, p, op, d = (_tuple(v, 3, name) for v, name in ((stride, "stride"), (padding, "padding"),
                                                      (output_padding, "output_padding"),
                                                      (dilation, "dilation")))
    if any(v < 1 for v in s + d):
        raise RuntimeError("non-positive stride or dilation is not supported")
    if any(o >= ss and o >= dd for o, ss, dd in zip(op, s, d)):
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, but "
                           f"got output_padding: {op}, stride: {s}, dilation: {d}")
    OC = Cog * groups
    _check_transposed_bias(bias, weight, OC)
    full = (D - 1) * s[0] + d[0] * (KD - 1) + 1 + op[0]            # depth before cropping
    OD = full - 2 * p[0]
    if OD < 1:
        raise RuntimeError(f"Given input size per channel: ({D} x {H} x {W}). Calculated output "
                           f"size per channel: ({OD} x ...). Output size is too small")
    # all depth taps at once: output channels ordered (group, tap, channel of the group)
    w2 = weight.reshape(Cin, Cog, KD, KH, KW).permute(0, 2, 1, 3, 4).reshape(Cin, KD * Cog, KH,
                                                                             KW)
    planes = x.transpose(1, 2).reshape(N * D, Cin, H, W)
    y = conv_transpose2d(planes, w2, None, s[1:], p[1:], op[1:], groups, d[1:])
    OH, OW = y.shape[2], y.shape[3]
    y = y.reshape(N, D, groups, KD, Cog, OH, OW)
    span = (D - 1) * s[0] + 1                                       # input depths, strided
    out = None
    for i in range(KD):
        t = y[:, :, :, i].reshape(N, D, OC, OH, OW)
        if s[0] > 1:                                                # zeros between depths
            gap = t.new_zeros((N, D, s[0] - 1, OC, OH, OW))
            t = cat([t.unsqueeze(2), gap], 2).reshape(N, D * s[0], OC, OH, OW)[:, :span]
        lo = i * d[0]
        t = pad(t, [0, 0, 0, 0, 0, 0, lo, full - lo - span])        # (N, full, OC, OH, OW)
        out = t if out is None else out + t
    out = out[:, p[0]:p[0] + OD].transpose(1, 2)
    if bias is not None:
        out = out + bias.reshape(1, OC, 1, 1, 1)
    out = out.contiguous()
    return out if input.ndim == 5 else out.squeeze(0)
