"""The op table (clgrad.ops.TABLE): every record against its numpy reference and, where it has a
gradient, clgrad.autograd.gradcheck, on its own sample inputs, on every device. Adding an op is
adding a record with `ref` and `sample`.

NO_REFERENCE_YET lists the records that carry no reference yet; like KNOWN_VIOLATIONS in
test_imports.py it must stay exact, so it only shrinks."""
import importlib.util
import pathlib

import numpy as np
import pytest

import clgrad
from clgrad import ops
from clgrad.autograd import gradcheck

NO_REFERENCE_YET = set()
# shapes of the tensor arguments, in order: they broadcast against each other
SHAPES = [(3, 4), (4,), (3, 1), (1, 4)]
CHECKED = sorted(name for name, rec in ops.TABLE.items() if rec.ref is not None)


def _render_kernel():
    path = pathlib.Path(__file__).resolve().parent.parent / "tools" / "render_kernel.py"
    spec = importlib.util.spec_from_file_location("render_kernel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(rec, device, dtype, requires_grad=False):
    """(clgrad args, numpy args) from the record's sample: seeded values in each range, floating
    (`dtype`) for a (low, high) pair, int64 for (low, high, "int") and bool for (0, 2, "bool").
    Without gradients the first tensor is a transposed view, so strided loads are checked too."""
    rng = np.random.default_rng(sum(map(ord, rec.name)))
    cl, host, k = [], [], 0
    for item in rec.sample:
        if not isinstance(item, tuple):
            cl.append(item)
            host.append(item)
            continue
        lo, hi, kind = item if len(item) == 3 else (*item, "float")
        if kind == "float":
            a, d = rng.uniform(lo, hi, size=SHAPES[k]), dtype
        else:
            a = rng.integers(lo, hi, size=SHAPES[k])
            a, d = (a.astype(bool), clgrad.bool) if kind == "bool" else (a, clgrad.int64)
        grad = requires_grad and d.is_floating
        if k == 0 and not requires_grad:
            t = clgrad.tensor(np.ascontiguousarray(a.T), dtype=d, device=device).T
        else:
            t = clgrad.tensor(a, dtype=d, device=device, requires_grad=grad)
        k += 1
        cl.append(t)
        # the values the device holds
        host.append(a.astype(dtype.np).astype(np.float64) if d.is_floating else a)
    return cl, host


def test_one_record_per_name():
    records = ops.elementwise.RECORDS + ops.nn_fused.RECORDS + ops.compat.RECORDS
    assert len({r.name for r in records}) == len(records) == len(ops.TABLE)


def test_no_reference_list_is_exact():
    missing = {name for name, rec in ops.TABLE.items() if rec.ref is None}
    assert missing == NO_REFERENCE_YET


def test_samples_match_arity():
    render = _render_kernel()
    for name in CHECKED:
        rec = ops.TABLE[name]
        assert len(rec.sample) == render._arity(rec), name


@pytest.mark.parametrize("name", CHECKED)
def test_forward_matches_numpy(device, name):
    rec = ops.TABLE[name]
    args, host = _args(rec, device, clgrad.float32)
    out = ops.ew(rec, *args)
    want = np.asarray(rec.ref(*host))
    assert tuple(out.shape) == want.shape
    if rec.dtype == "bool":
        assert out.dtype is clgrad.bool
        np.testing.assert_array_equal(out.numpy(), want)
    elif not any(isinstance(a, clgrad.Tensor) and a.dtype.is_floating for a in args):
        assert out.dtype is clgrad.int64       # integer ops compute exactly
        np.testing.assert_array_equal(out.numpy(), want)
    else:
        assert out.dtype is clgrad.float32
        # float32 kernels against a float64 reference
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in CHECKED if ops.TABLE[n].backward is not None])
def test_gradient(fp64, name):
    rec = ops.TABLE[name]
    args, _ = _args(rec, fp64, clgrad.float64, requires_grad=True)
    tensors = [a for a in args if isinstance(a, clgrad.Tensor) and a.requires_grad]

    def fn(*ts):
        it = iter(ts)
        return clgrad.Tensor._apply(rec, *[next(it) if isinstance(a, clgrad.Tensor) and
                                           a.requires_grad else a for a in args])
    assert gradcheck(fn, tensors)


@pytest.mark.parametrize("name", sorted(ops.TABLE))
def test_render_kernel_finds_each_record(name):
    rec = _render_kernel().ops.TABLE.get(name)
    assert rec is ops.TABLE[name]
