"""The one comparison helper: check_op runs an op on clgrad and numpy, then gradcheck."""
from __future__ import annotations

import numpy as np

import clgrad
from clgrad.autograd import gradcheck

LAYOUTS = ("contiguous", "permuted", "sliced")


def make(arr: np.ndarray, dtype, device, layout="contiguous", requires_grad=False):
    """A clgrad tensor equal to `arr`, laid out contiguously, as a permuted view, or as a strided
    slice of a larger buffer (the last two are non-contiguous for ndim >= 1 / size > 1)."""
    arr = np.asarray(arr)
    dt = clgrad.dtypes.to_dtype(dtype)
    if layout == "permuted" and arr.ndim >= 2:
        base = clgrad.tensor(np.ascontiguousarray(arr.transpose()), dtype=dt, device=device)
        t = base.permute(tuple(reversed(range(arr.ndim))))
    elif layout == "sliced" and arr.ndim >= 1:
        wide = np.zeros(arr.shape[:-1] + (arr.shape[-1] * 2 + 1,), dtype=arr.dtype)
        wide[..., 1::2] = arr
        t = clgrad.tensor(wide, dtype=dt, device=device)[..., 1::2]
    else:
        t = clgrad.tensor(arr, dtype=dt, device=device)
    assert t.shape == arr.shape
    return t.requires_grad_(requires_grad) if requires_grad else t


def inputs_for(shapes, *, low=-2.0, high=2.0, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        if dtype == np.bool_:
            out.append(rng.random(s) < 0.5)
        elif np.issubdtype(dtype, np.integer):
            out.append(rng.integers(int(low), int(high) + 1, size=s).astype(dtype))
        else:
            out.append(rng.uniform(low, high, size=s).astype(dtype))
    return out


def _np_result(np_fn, arrs):
    r = np_fn(*arrs)
    return tuple(np.asarray(x) for x in r) if isinstance(r, tuple) else (np.asarray(r),)


def check_op(shapes, cl_fn, np_fn, *, device, low=-2.0, high=2.0, atol=1e-6, rtol=1e-3,
             grad=True, grad_atol=1e-4, dtype="float32", layouts=LAYOUTS, seed=0, inputs=None,
             expect_dtype=None):
    """Compare `cl_fn(*tensors)` with `np_fn(*arrays)` (float64 reference) on seeded random
    inputs in each layout: shape, then dtype, then values; then gradcheck in float64.

    `inputs` overrides the random arrays (e.g. integer index arrays as non-differentiable
    extras: pass them as numpy arrays of an integer dtype)."""
    np_dtype = np.dtype(clgrad.dtypes.to_dtype(dtype).np)
    arrs = inputs if inputs is not None else inputs_for(
        shapes, low=low, high=high, seed=seed,
        dtype=np.float64 if np_dtype.kind == "f" else np_dtype)
    ref = _np_result(np_fn, [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrs])
    for layout in layouts:
        ts = [make(a, dtype if a.dtype.kind == "f" else a.dtype, device, layout) for a in arrs]
        out = cl_fn(*ts)
        outs = out if isinstance(out, tuple) else (out,)
        assert len(outs) == len(ref), f"{len(outs)} outputs, numpy gave {len(ref)}"
        for o, r in zip(outs, ref):
            assert tuple(o.shape) == r.shape, f"[{layout}] shape {tuple(o.shape)} != {r.shape}"
            if expect_dtype is not None:
                assert o.dtype is clgrad.dtypes.to_dtype(expect_dtype), \
                    f"[{layout}] dtype {o.dtype} != {expect_dtype}"
            got = o.detach().numpy()
            if r.dtype == np.bool_ or got.dtype == np.bool_:
                np.testing.assert_array_equal(got, r, err_msg=f"[{layout}]")
            else:
                np.testing.assert_allclose(got.astype(np.float64), r.astype(np.float64),
                                           atol=atol, rtol=rtol, err_msg=f"[{layout}]",
                                           equal_nan=True)
    if grad and device.has_fp64 and any(a.dtype.kind == "f" for a in arrs):
        ts = [make(a, "float64", device, "contiguous", requires_grad=a.dtype.kind == "f")
              if a.dtype.kind == "f" else make(a, a.dtype, device) for a in arrs]
        assert gradcheck(cl_fn, ts, atol=grad_atol, rtol=1e-3)
        if "permuted" in layouts and any(a.ndim >= 2 for a in arrs):
            ts = [make(a, "float64", device, "permuted", requires_grad=a.dtype.kind == "f")
                  if a.dtype.kind == "f" else make(a, a.dtype, device) for a in arrs]
            assert gradcheck(cl_fn, ts, atol=grad_atol, rtol=1e-3)
