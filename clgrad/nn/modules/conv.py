"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d (torch.nn's API)."""
from __future__ import annotations

import math

from ..functional import conv as C
from ...tensor import creation
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(v, n):
    if isinstance(v, (tuple, list)):
        return tuple(int(x) for x in v) if len(v) != 1 else (int(v[0]),) * n
    return (int(v),) * n


class _ConvNd(Module):
    """Shared state of the convolution layers: weight, bias, geometry, default init."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 transposed, output_padding, groups, bias, padding_mode, nd, device=None,
                 dtype=None):
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(_PADDING_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        kernel_size = _ntuple(kernel_size, nd)
        stride = _ntuple(stride, nd)
        dilation = _ntuple(dilation, nd)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string '{padding}', should be one of "
                                 "['valid', 'same']")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = _ntuple(padding, nd)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = transposed
        self.output_padding = _ntuple(output_padding, nd)
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad order (last dim first) of the explicit padding non-zero modes apply
        if isinstance(padding, str):
            if padding == "valid":
                self._pad_rev = (0,) * (2 * nd)
            else:
                pads = []
                for d, k in zip(reversed(dilation), reversed(kernel_size)):
                    total = d * (k - 1)
                    pads += [total // 2, total - total // 2]
                self._pad_rev = tuple(pads)
        else:
            self._pad_rev = tuple(p for v in reversed(padding) for p in (v, v))
        shape = ((in_channels, out_channels // groups) if transposed else
                 (out_channels, in_channels // groups)) + kernel_size
        self.weight = Parameter(creation.empty(*shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's default: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.padding):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)

    def _conv_forward(self, conv, input):
        if self.padding_mode != "zeros":
            return conv(C.pad_spatial(input, self._pad_rev, self.padding_mode), self.weight,
                        self.bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                    self.groups)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) or (C_in, L) input.

    Args: in_channels, out_channels, kernel_size, stride=1, padding=0 (int, 'same' or 'valid'),
    dilation=1, groups=1, bias=True, padding_mode='zeros' ('reflect', 'replicate', 'circular').

    Shape: weight (C_out, C_in/groups, K); L_out = (L + 2p - d(K - 1) - 1) // s + 1.

    Example: ``Conv1d(16, 33, 3, stride=2)(clgrad.randn(20, 16, 50))``"""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         False, 0, groups, bias, padding_mode, 1, device, dtype)

    def forward(self, input):
        return self._conv_forward(C.conv1d, input)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) or (C_in, H, W) input.

    Args: in_channels, out_channels, kernel_size, stride=1, padding=0 (int, pair, 'same' or
    'valid'), dilation=1, groups=1, bias=True, padding_mode='zeros' ('reflect', 'replicate',
    'circular').

    Shape: weight (C_out, C_in/groups, KH, KW); each output side is
    (n + 2p - d(k - 1) - 1) // s + 1.

    Example: ``Conv2d(3, 8, 3, padding=1)(clgrad.randn(2, 3, 32, 32))``"""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         False, 0, groups, bias, padding_mode, 2, device, dtype)

    def forward(self, input):
        return self._conv_forward(C.conv2d, input)


class _ConvTransposeNd(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding,
                 groups, bias, dilation, padding_mode, nd, device, dtype):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for '
                             f'{self.__class__.__name__}')
        if isinstance(padding, str):
            raise ValueError(f"{self.__class__.__name__} does not support string padding")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         True, output_padding, groups, bias, padding_mode, nd, device, dtype)

    def _output_padding(self, input, output_size, nd):
        if output_size is None:
            return self.output_padding
        size = tuple(int(s) for s in output_size)[-nd:]
        spatial = tuple(input.shape[-nd:])
        out = []
        for i in range(nd):
            base = ((spatial[i] - 1) * self.stride[i] - 2 * self.padding[i] +
                    self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = size[i] - base
            if extra < 0 or extra >= self.stride[i]:
                raise ValueError(f"requested an output size of {list(size)}, but valid sizes "
                                 f"range from {base} to "
                                 f"{base + self.stride[i] - 1} (for an "
                                 f"input of {list(spatial)})")
            out.append(extra)
        return tuple(out)


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution (the gradient of Conv1d for its input).

    Shape: weight (C_in, C_out/groups, K); L_out = (L - 1)s - 2p + d(K - 1) + output_padding + 1.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                         groups, bias, dilation, padding_mode, 1, device, dtype)

    def forward(self, input, output_size=None):
        op = self._output_padding(input, output_size, 1)
        return C.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding, op,
                                  self.groups, self.dilation)


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution (the gradient of Conv2d for its input).

    Shape: weight (C_in, C_out/groups, KH, KW); each output side is
    (n - 1)s - 2p + d(k - 1) + output_padding + 1.

    Example: ``ConvTranspose2d(8, 3, 4, stride=2, padding=1)(clgrad.randn(1, 8, 16, 16))``"""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                         groups, bias, dilation, padding_mode, 2, device, dtype)

    def forward(self, input, output_size=None):
        op = self._output_padding(input, output_size, 2)
        return C.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, op,
                                  self.groups, self.dilation)
