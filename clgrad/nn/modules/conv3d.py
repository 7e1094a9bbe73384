"""Conv3d and ConvTranspose3d (torch.nn's API), over F.conv3d and F.conv_transpose3d."""
from __future__ import annotations

from ...tensor.shape import pad
from ..functional.conv3d import conv3d, conv_transpose3d
from .conv import _ConvNd, _ConvTransposeNd

__all__ = ["Conv3d", "ConvTranspose3d"]


class Conv3d(_ConvNd):
    """3-D convolution over (N, C_in, D, H, W) or (C_in, D, H, W) input (F.conv3d: one 2-D
    convolution per depth tap).

    Args: in_channels, out_channels, kernel_size, stride=1, padding=0 (int, triple, 'same' or
    'valid'), dilation=1, groups=1, bias=True, padding_mode='zeros' ('reflect', 'replicate',
    'circular').

    Shape: weight (C_out, C_in/groups, KD, KH, KW).

    Example: ``Conv3d(2, 4, 3, padding=1)(clgrad.randn(1, 2, 5, 6, 6))``"""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         False, 0, groups, bias, padding_mode, 3, device, dtype)

    def forward(self, input):
        if self.padding_mode != "zeros":
            return conv3d(pad(input, self._pad_rev, self.padding_mode), self.weight,
                             self.bias, self.stride, 0, self.dilation, self.groups)
        return conv3d(input, self.weight, self.bias, self.stride, self.padding,
                         self.dilation, self.groups)


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution (the gradient of Conv3d for its input).

    Shape: weight (C_in, C_out/groups, KD, KH, KW); each output side is
    (n - 1)s - 2p + d(k - 1) + output_padding + 1.

    Example: ``ConvTranspose3d(4, 2, 3, stride=2, padding=1)(clgrad.randn(1, 4, 3, 5, 5))``"""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                         groups, bias, dilation, padding_mode, 3, device, dtype)

    def forward(self, input, output_size=None):
        op = self._output_padding(input, output_size, 3)
        return conv_transpose3d(input, self.weight, self.bias, self.stride, self.padding, op,
                                self.groups, self.dilation)
