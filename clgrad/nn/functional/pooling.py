"""Pooling, unpooling, resizing and pixel shuffles with torch.nn.functional's signatures: window
kernels on (B, H, W) planes, each recorded with its adjoint so double backward works."""
from __future__ import annotations

import math

from ...dtypes import torch_name
from ...tensor import nn_ops
from .conv import _check_float, _tuple, in_float32


def _pool_out(n, k, s, p, d, ceil_mode):
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _check_pool_dtype(x, name, kind):
    """Float tensors pool; integer ones too where PyTorch's kernels take them: max pooling for
    every integer dtype (not bool), average pooling for int64 only (1-D and 2-D, the average
    truncated toward zero like C's integer division)."""
    dt = x.dtype
    if dt.is_floating:
        return
    if dt.name == "bool" or (kind == "avg" and (dt.name != "int64" or name.endswith("3d")
                                                or name.startswith("adaptive"))):
        raise NotImplementedError(f'"{name}" not implemented for \'{torch_name(dt)}\'')


def _pool_args(x, kernel_size, stride, padding, dilation, nd, name, kind="max"):
    _check_pool_dtype(x, name, kind)
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}: Expected {nd + 1}D or {nd + 2}D (batch mode) tensor for "
                           f"input, but got: {list(x.shape)}")
    k = _tuple(kernel_size, nd, "kernel_size")
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else _tuple(stride, nd, "stride")
    p = _tuple(padding, nd, "padding")
    d = _tuple(dilation, nd, "dilation")
    if any(v <= 0 for v in k):
        raise RuntimeError(f"{name}: kernel_size must be greater than zero, but got "
                           f"{list(k)}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"{name}: stride must be greater than zero, but got {list(s)}")
    if any(v <= 0 for v in d):
        raise RuntimeError(f"{name}: dilation must be greater than zero, but got {list(d)}")
    if nd == 1:
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    return k, s, p, d


def _planes(x, nd):
    """(..., [H,] W) -> (B, H, W) planes and the leading shape."""
    lead = tuple(x.shape[:x.ndim - nd])
    H, W = (1, x.shape[-1]) if nd == 1 else tuple(x.shape[-2:])
    return x.reshape(math.prod(lead), H, W), lead, H, W


def _unplanes(y, lead, nd):
    return y.reshape(lead + tuple(y.shape[3 - nd:]))


@in_float32
def _max_poolnd(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd):
    name = f"max_pool{nd}d"
    k, s, p, d = _pool_args(x, kernel_size, stride, padding, dilation, nd, name)
    for kk, pp, dd in zip(k, p, d):
        if pp > (dd * (kk - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={pp}, kernel_size={kk} and dilation={dd}")
    planes, lead, H, W = _planes(x, nd)
    OH, OW = (_pool_out(n, kk, ss, pp, dd, ceil_mode) for n, kk, ss, pp, dd in
              zip((H, W), k, s, p, d))
    if OH < 1 or OW < 1:
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, x.shape[-nd - 1:]))}). "
                           f"Calculated output size: ({x.shape[-nd - 1]}x"
                           f"{'x'.join(map(str, (OH, OW)[2 - nd:]))}). Output size is too small")
    geom = nn_ops.pool_geometry(H, W, OH, OW, k, s, p, d, False)
    y, idx = nn_ops.max_pool_planes(planes, geom)
    y, idx = _unplanes(y, lead, nd), _unplanes(idx, lead, nd)
    return (y, idx) if return_indices else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling over (N, C, L) or (C, L); indices (return_indices) index the length."""
    return _max_poolnd(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                       1)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling over (N, C, H, W) or (C, H, W); padding counts as -inf.

    return_indices adds int64 indices into each flattened H*W plane (for max_unpool2d)."""
    return _max_poolnd(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                       2)


@in_float32
def _avg_poolnd(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                nd):
    name = f"avg_pool{nd}d"
    k, s, p, d = _pool_args(x, kernel_size, stride, padding, 1, nd, name, "avg")
    for kk, pp in zip(k, p):
        if pp > kk // 2:
            raise RuntimeError("pad should be at most half of effective kernel size, but got "
                               f"pad={pp}, kernel_size={kk} and dilation=1")
    if divisor_override is not None and int(divisor_override) == 0:
        raise RuntimeError("divisor must be not zero")
    planes, lead, H, W = _planes(x, nd)
    OH, OW = (_pool_out(n, kk, ss, pp, 1, ceil_mode) for n, kk, ss, pp in zip((H, W), k, s, p))
    if OH < 1 or OW < 1:
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, x.shape[-nd - 1:]))}). "
                           "Calculated output size is too small")
    geom = nn_ops.pool_geometry(H, W, OH, OW, k, s, p, d, False)
    y = nn_ops.avg_pool_planes(planes, geom, count_include_pad, divisor_override)
    return _unplanes(y, lead, nd)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """1-D average pooling over (N, C, L) or (C, L)."""
    return _avg_poolnd(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling over (N, C, H, W) or (C, H, W).

    count_include_pad counts zero padding in the divisor; divisor_override replaces it."""
    return _avg_poolnd(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override, 2)


def _adaptive_size(x, output_size, nd, name):
    _check_pool_dtype(x, name, "avg" if "avg" in name else "max")
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}: Expected {nd + 1}D or {nd + 2}D tensor, but got "
                           f"{list(x.shape)}")
    if nd == 1:
        size = _tuple(output_size, 1, "output_size")
        return (1,) + size
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != 2:
            raise ValueError(f"{name}: output_size must be 2, got {len(output_size)}")
        size = tuple(x.shape[-2 + i] if v is None else int(v) for i, v in enumerate(output_size))
    else:
        size = (int(output_size),) * 2
    if any(v < 0 for v in size):
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to 0 "
                           f"but received {list(size)}")
    if any(n == 0 for n in x.shape[-nd:]):
        raise RuntimeError(f"{name}: Expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {list(x.shape)} with dimension "
                           f"{x.ndim - 1} being empty")
    return size


@in_float32
def _adaptive_pool(x, output_size, nd, kind, return_indices=False):
    name = f"adaptive_{kind}_pool{nd}d"
    OH, OW = _adaptive_size(x, output_size, nd, name)
    planes, lead, H, W = _planes(x, nd)
    geom = nn_ops.pool_geometry(H, W, OH, OW, (1, 1), (1, 1), (0, 0), (1, 1), True)
    if kind == "avg":
        return _unplanes(nn_ops.avg_pool_planes(planes, geom, True, None), lead, nd)
    y, idx = nn_ops.max_pool_planes(planes, geom)
    y, idx = _unplanes(y, lead, nd), _unplanes(idx, lead, nd)
    return (y, idx) if return_indices else y


def adaptive_avg_pool1d(input, output_size):
    """Average over PyTorch's adaptive windows [floor(i*L/O), ceil((i+1)*L/O))."""
    return _adaptive_pool(input, output_size, 1, "avg")


def adaptive_avg_pool2d(input, output_size):
    """Adaptive 2-D average pooling; output_size an int or (h, w), None keeping that side."""
    return _adaptive_pool(input, output_size, 2, "avg")


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Maximum over PyTorch's adaptive windows; indices into the length."""
    return _adaptive_pool(input, output_size, 1, "max", return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive 2-D max pooling; indices (return_indices) into each flattened H*W plane."""
    return _adaptive_pool(input, output_size, 2, "max", return_indices)


@in_float32
def _max_unpoolnd(x, indices, kernel_size, stride, padding, output_size, nd):
    name = f"max_unpool{nd}d"
    _check_float(x, name)
    if tuple(indices.shape) != tuple(x.shape):
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor "
                           f"({list(x.shape)}) but got indices tensor with shape: "
                           f"{list(indices.shape)}")
    if indices.dtype.name != "int64":
        raise RuntimeError(f"elements in indices should be type int64 but got: "
                           f"{torch_name(indices.dtype)}")
    k = _tuple(kernel_size, nd, "kernel_size")
    s = k if stride is None else _tuple(stride, nd, "stride")
    p = _tuple(padding, nd, "padding")
    default = tuple((n - 1) * ss - 2 * pp + kk for n, ss, pp, kk in
                    zip(x.shape[-nd:], s, p, k))
    if output_size is None:
        size = default
    else:
        size = tuple(int(v) for v in output_size)[-nd:]
        if len(size) != nd:
            raise ValueError(f"output_size should be a sequence containing {nd} or {nd + 2} "
                             f"elements, but it has a length of '{len(output_size)}'")
    planes, lead, H, W = _planes(x, nd)
    idx_planes = indices.reshape(planes.shape)
    OH, OW = (1,) + size if nd == 1 else size
    y = nn_ops.unpool_planes(planes, idx_planes, OH, OW)
    return _unplanes(y, lead, nd)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of max_pool1d: zeros with each value put back at its index."""
    return _max_unpoolnd(input, indices, kernel_size, stride, padding, output_size, 1)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of max_pool2d: zeros with each value put back at its plane index."""
    return _max_unpoolnd(input, indices, kernel_size, stride, padding, output_size, 2)


# ---- resizing ------------------------------------------------------------------------------------
_INTERP_DIMS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "linear": (1,),
                "bilinear": (2,)}
_NEAREST = ("nearest", "nearest-exact")


@in_float32
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims: mode 'nearest' or 'nearest-exact' (3-D/4-D/5-D input, any
    dtype but bool), 'linear' (3-D) or 'bilinear' (4-D, floating), with
    torch.nn.functional.interpolate's source-index rules ('nearest' reads floor(o * scale),
    'nearest-exact' floor((o + 0.5) * scale), both clamped).

    Exactly one of size (int or tuple) and scale_factor (float or tuple) is given.
    Example: ``F.interpolate(x, scale_factor=0.6, mode='nearest-exact')``"""
    x = input
    if mode not in _INTERP_DIMS:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (nearest, "
                                  "nearest-exact, linear, bilinear)")
    if mode in _NEAREST:
        if x.dtype.name == "bool":
            raise NotImplementedError(f'"upsample_{mode.replace("-", "_")}" not implemented '
                                      "for 'Bool'")
    else:
        _check_float(x, "upsample")
    if antialias:
        raise NotImplementedError("interpolate: antialias is not supported")
    nd = x.ndim - 2
    if nd not in _INTERP_DIMS[mode]:
        raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs "
                                  f"{'/'.join(str(d + 2) for d in _INTERP_DIMS[mode])}D input")
    if mode in _NEAREST and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    align = bool(align_corners)
    in_sz = tuple(x.shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        out_sz = _tuple(size, nd, "size") if isinstance(size, (list, tuple)) else (int(size),) * nd
        scales = (None,) * nd
    else:
        sf = tuple(float(v) for v in scale_factor) if isinstance(scale_factor, (list, tuple)) \
            else (float(scale_factor),) * nd
        if len(sf) != nd:
            raise ValueError(f"Input and scale_factor must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{list(in_sz)} and scale_factor of shape {list(sf)}.")
        out_sz = tuple(int(math.floor(n * f)) for n, f in zip(in_sz, sf))
        scales = (None,) * nd if recompute_scale_factor else sf
    if any(o <= 0 for o in out_sz) or any(n <= 0 for n in in_sz):
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input "
                           f"({', '.join(map(str, in_sz))}) and output "
                           f"({', '.join(map(str, out_sz))})")

    def step(n, o, sc):
        if mode not in _NEAREST and align:
            return (n - 1) / (o - 1) if o > 1 else 0.0
        return 1.0 / sc if sc is not None and sc > 0 else n / o

    steps = tuple(step(n, o, sc) for n, o, sc in zip(in_sz, out_sz, scales))
    kind = mode if mode in _NEAREST else "bilinear"
    if nd == 3:
        # separable: resize each depth slice's (H, W) plane, then the depth axis of the result
        # as (D, OH*OW) planes whose second axis keeps its size (step 1 reads o itself)
        N, C, D, H, W = x.shape
        y = nn_ops.resize_planes(x.reshape(N * C * D, H, W), out_sz[1], out_sz[2], kind,
                                 steps[1:], align)
        y = nn_ops.resize_planes(y.reshape(N * C, D, out_sz[1] * out_sz[2]), out_sz[0],
                                 out_sz[1] * out_sz[2], kind, (steps[0], 1.0), align)
        return y.reshape((N, C) + out_sz)
    if nd == 1:
        out_sz, steps = (1,) + out_sz, (1.0,) + steps
    planes, lead, H, W = _planes(x, nd)
    y = nn_ops.resize_planes(planes, out_sz[0], out_sz[1], kind, steps, align)
    return _unplanes(y, lead, nd)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def pixel_shuffle(input, upscale_factor):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r)."""
    r = int(upscale_factor)
    x = input
    if x.ndim < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got "
                           f"input with {x.ndim} dimension(s)")
    *lead, C, H, W = x.shape
    if C % (r * r):
        raise RuntimeError("pixel_shuffle expects its input's 'channel' dimension to be "
                           f"divisible by the square of upscale_factor, but input.size(-3)={C} "
                           f"is not divisible by {r * r}")
    n = len(lead)
    y = x.reshape(*lead, C // (r * r), r, r, H, W)
    y = y.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)             # (*, C, H, r, W, r)
    return y.reshape(*lead, C // (r * r), H * r, W * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W)."""
    r = int(downscale_factor)
    x = input
    if x.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but "
                           f"got input with {x.ndim} dimension(s)")
    *lead, C, H, W = x.shape
    if H % r or W % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by "
                           f"downscale_factor, but input.size(-2)={H}, input.size(-1)={W} is "
                           f"not divisible by {r}")
    n = len(lead)
    y = x.reshape(*lead, C, H // r, r, W // r, r)
    y = y.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)             # (*, C, r, r, H, W)
    return y.reshape(*lead, C * r * r, H // r, W // r)
