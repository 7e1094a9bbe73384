"""3-D pooling and the sliding-window pair unfold/fold, with torch.nn.functional's signatures.

Pooling over a (D, H, W) box is separable: the window kernels pool each depth slice's (H, W)
plane, then pool the depth axis of the result as planes of shape (D, OH*OW) with a (kd, 1)
window. Max of maxima is the maximum, and the first maximum in (d, h, w) order is found, so
gradients go where PyTorch's do; averages multiply their per-axis divisors, which is exactly the
3-D divisor (with or without padding counted). unfold/fold are the im2col/col2im pair."""
from __future__ import annotations

import math

from ...tensor import nn_ops
from .conv import _check_float, _tuple
from .pooling import _check_pool_dtype, _pool_out


def _batched5(x, name):
    _check_pool_dtype(x, name, "avg" if "avg" in name else "max")
    if x.ndim not in (4, 5):
        raise RuntimeError(f"{name}: Expected 4D or 5D (batch mode) tensor for input, but got: "
                           f"{list(x.shape)}")
    lead = tuple(x.shape[:-3])
    return x.reshape((math.prod(lead),) + tuple(x.shape[-3:])), lead


def _args3(kernel_size, stride, padding, dilation, name):
    k = _tuple(kernel_size, 3, "kernel_size")
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else _tuple(stride, 3, "stride")
    p = _tuple(padding, 3, "padding")
    d = _tuple(dilation, 3, "dilation")
    for what, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
        if any(e <= 0 for e in v):
            raise RuntimeError(f"{name}: {what} must be greater than zero, but got {list(v)}")
    for kk, pp, dd in zip(k, p, d):
        if pp > (dd * (kk - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={pp}, kernel_size={kk} and dilation={dd}")
    return k, s, p, d


def _two_passes(x, name, out_size, k, s, p, d, adaptive, run):
    """run(planes, geom) -> pooled planes, applied to each (H, W) plane and then along D."""
    x5, lead = _batched5(x, name)
    B, D, H, W = x5.shape[0], x5.shape[1], x5.shape[2], x5.shape[3]
    OD, OH, OW = out_size
    if min(OD, OH, OW) < 1:
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, x.shape[-4:]))}). "
                           f"Calculated output size: ({x.shape[-4]}x{OD}x{OH}x{OW}). Output "
                           "size is too small")
    g_hw = nn_ops.pool_geometry(H, W, OH, OW, k[1:], s[1:], p[1:], d[1:], adaptive)
    y = run(x5.reshape(B * D, H, W), g_hw)                         # (B*D, OH, OW)
    g_d = nn_ops.pool_geometry(D, OH * OW, OD, OH * OW, (k[0], 1), (s[0], 1), (p[0], 0),
                               (d[0], 1), adaptive)
    return y.reshape(B, D, OH * OW), g_d, lead, (OD, OH, OW), (D, H, W)


def _max3(x, name, out_size, k, s, p, d, adaptive, return_indices):
    first = {}

    def run(planes, geom):
        y, idx = nn_ops.max_pool_planes(planes, geom)
        first["idx"] = idx
        return y
    planes, g_d, lead, (OD, OH, OW), (D, H, W) = _two_passes(x, name, out_size, k, s, p, d,
                                                             adaptive, run)
    y, idx_d = nn_ops.max_pool_planes(planes, g_d)                  # (B, OD, OH*OW)
    out = y.reshape(lead + (OD, OH, OW))
    if not return_indices:
        return out
    # flat (d, h, w) index: the depth the second pass chose, then the first pass's (h, w) there
    B = planes.shape[0]
    depth = idx_d.div(OH * OW, rounding_mode="floor")               # (B, OD, OH*OW)
    hw = first["idx"].reshape(B, D, OH * OW).gather(1, depth)
    return out, (depth * (H * W) + hw).reshape(lead + (OD, OH, OW))


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """3-D max pooling over (N, C, D, H, W) or (C, D, H, W); padding counts as -inf.

    return_indices adds int64 indices into each flattened D*H*W volume."""
    name = "max_pool3d"
    k, s, p, d = _args3(kernel_size, stride, padding, dilation, name)
    dims = tuple(input.shape[-3:]) if input.ndim >= 3 else ()
    out = tuple(_pool_out(n, kk, ss, pp, dd, ceil_mode) for n, kk, ss, pp, dd in
                zip(dims, k, s, p, d)) if len(dims) == 3 else (0, 0, 0)
    return _max3(input, name, out, k, s, p, d, False, return_indices)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """3-D average pooling over (N, C, D, H, W) or (C, D, H, W); count_include_pad counts zero
    padding in the divisor, divisor_override replaces it."""
    name = "avg_pool3d"
    k, s, p, d = _args3(kernel_size, stride, padding, 1, name)
    if divisor_override is not None and int(divisor_override) == 0:
        raise RuntimeError("divisor must be not zero")
    dims = tuple(input.shape[-3:]) if input.ndim >= 3 else ()
    out = tuple(_pool_out(n, kk, ss, pp, 1, ceil_mode) for n, kk, ss, pp in
                zip(dims, k, s, p)) if len(dims) == 3 else (0, 0, 0)
    # with an override each pass sums (divisor 1) and the total is divided once
    div = None if divisor_override is None else 1

    def run(planes, geom):
        return nn_ops.avg_pool_planes(planes, geom, count_include_pad, div)
    planes, g_d, lead, size, _ = _two_passes(input, name, out, k, s, p, d, False, run)
    y = nn_ops.avg_pool_planes(planes, g_d, count_include_pad, div).reshape(lead + size)
    return y if divisor_override is None else y / float(divisor_override)


def _adaptive3(x, output_size, name):
    _check_pool_dtype(x, name, "avg" if "avg" in name else "max")
    if x.ndim not in (4, 5):
        raise RuntimeError(f"{name}: Expected 4D or 5D tensor, but got {list(x.shape)}")
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != 3:
            raise ValueError(f"{name}: output_size must be 3, got {len(output_size)}")
        size = tuple(x.shape[-3 + i] if v is None else int(v) for i, v in enumerate(output_size))
    else:
        size = (int(output_size),) * 3
    if any(n == 0 for n in x.shape[-3:]):
        raise RuntimeError(f"{name}: Expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {list(x.shape)}")
    return size


_UNIT = ((1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1))


def adaptive_avg_pool3d(input, output_size):
    """Average over PyTorch's adaptive windows on each of D, H, W; output_size an int or
    (d, h, w), None keeping that side."""
    size = _adaptive3(input, output_size, "adaptive_avg_pool3d")

    def run(planes, geom):
        return nn_ops.avg_pool_planes(planes, geom, True, None)
    planes, g_d, lead, size, _ = _two_passes(input, "adaptive_avg_pool3d", size, *_UNIT, True,
                                             run)
    return nn_ops.avg_pool_planes(planes, g_d, True, None).reshape(lead + size)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """Maximum over PyTorch's adaptive windows; indices into each flattened D*H*W volume."""
    size = _adaptive3(input, output_size, "adaptive_max_pool3d")
    return _max3(input, "adaptive_max_pool3d", size, *_UNIT, True, return_indices)


# ---- unfold / fold --------------------------------------------------------------------------
def _window2(kernel_size, dilation, padding, stride):
    return (_tuple(kernel_size, 2, "kernel_size"), _tuple(dilation, 2, "dilation"),
            _tuple(padding, 2, "padding"), _tuple(stride, 2, "stride"))


def _blocks(size, k, d, p, s):
    return tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, dd, pp, ss in
                 zip(size, k, d, p, s))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of a batched image (im2col): (N, C, H, W) -> (N, C*kh*kw, L), L the
    number of block positions; (C, H, W) -> (C*kh*kw, L).
    Example: ``F.unfold(x, 3, padding=1)`` holds every 3x3 neighbourhood as a column"""
    _check_float(input, "unfold")
    if input.ndim not in (3, 4):
        raise NotImplementedError(f"Input Error: Only 3D or 4D input Tensors are supported (got "
                                  f"{input.ndim}D)")
    k, d, p, s = _window2(kernel_size, dilation, padding, stride)
    x = input if input.ndim == 4 else input.unsqueeze(0)
    N, C, H, W = x.shape
    OH, OW = _blocks((H, W), k, d, p, s)
    if OH < 1 or OW < 1:
        raise RuntimeError(f"Given input with spatial size ({H}, {W}), kernel_size {k}, "
                           f"dilation {d}, padding {p}, calculated shape of the array of "
                           f"sliding blocks as ({OH}, {OW}), but its components must be at "
                           "least one.")
    geom = (C, H, W, k[0], k[1], OH, OW, s[0], s[1], p[0], p[1], d[0], d[1])
    cols = nn_ops.im2col(x, geom)
    return cols if input.ndim == 4 else cols.squeeze(0)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold (col2im): (N, C*kh*kw, L) -> (N, C, H, W), summing where blocks
    overlap; (C*kh*kw, L) -> (C, H, W)."""
    _check_float(input, "fold")
    if input.ndim not in (2, 3):
        raise NotImplementedError(f"Input Error: Only unbatched (2D) or batched (3D) input "
                                  f"Tensors are supported (got {input.ndim}D)")
    k, d, p, s = _window2(kernel_size, dilation, padding, stride)
    H, W = _tuple(output_size, 2, "output_size")
    cols = input if input.ndim == 3 else input.unsqueeze(0)
    N, CK, L = cols.shape
    if CK % (k[0] * k[1]):
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product "
                           f"of kernel_size, but got input.size(1)={CK} and kernel_size={k}")
    OH, OW = _blocks((H, W), k, d, p, s)
    if OH * OW != L:
        raise RuntimeError(f"Given output_size=({H}, {W}), kernel_size={k}, dilation={d}, "
                           f"padding={p}, stride={s}, expected size of input's dimension 2 to "
                           f"match the calculated number of sliding blocks {OH} * {OW} = "
                           f"{OH * OW}, but got input.size(2)={L}.")
    C = CK // (k[0] * k[1])
    geom = (C, H, W, k[0], k[1], OH, OW, s[0], s[1], p[0], p[1], d[0], d[1])
    out = nn_ops.col2im(cols, geom)
    return out if input.ndim == 3 else out.squeeze(0)
