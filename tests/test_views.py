"""Views: movement ops give new (shape, strides, offset) over the same buffer, match numpy's
values, launch no kernel, and copy only where PyTorch would."""
import numpy as np
import pytest

import clgrad
from clgrad import runtime
from clgrad.view import View, broadcast_shapes, coalesce


def _base(device, shape=(2, 3, 4), dtype="float32"):
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) - 5
    return a.astype(dtype), clgrad.tensor(a.astype(dtype), device=device)


def _same(t, a):
    got = t.numpy()
    assert tuple(t.shape) == a.shape, (tuple(t.shape), a.shape)
    np.testing.assert_array_equal(got, a)


def _es(a):
    return tuple(s // a.itemsize for s in a.strides)


VIEWS = [
    ("view", lambda x: x.view(6, 4), lambda a: a.reshape(6, 4)),
    ("view -1", lambda x: x.view(-1, 2), lambda a: a.reshape(-1, 2)),
    ("reshape", lambda x: x.reshape(4, 6), lambda a: a.reshape(4, 6)),
    ("permute", lambda x: x.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    ("permute neg", lambda x: x.permute(-1, -3, -2), lambda a: a.transpose(2, 0, 1)),
    ("transpose", lambda x: x.transpose(0, 2), lambda a: a.swapaxes(0, 2)),
    ("T", lambda x: x.T, lambda a: a.transpose(2, 1, 0)),
    ("mT", lambda x: x.mT, lambda a: a.swapaxes(-1, -2)),
    ("expand", lambda x: x[:, :1].expand(2, 5, 4), lambda a: np.broadcast_to(a[:, :1], (2, 5, 4))),
    ("expand new dims", lambda x: x.expand(3, 2, 3, 4), lambda a: np.broadcast_to(a, (3, 2, 3, 4))),
    ("expand -1", lambda x: x[:1].expand(5, -1, -1), lambda a: np.broadcast_to(a[:1], (5, 3, 4))),
    ("unsqueeze 0", lambda x: x.unsqueeze(0), lambda a: a[None]),
    ("unsqueeze -1", lambda x: x.unsqueeze(-1), lambda a: a[..., None]),
    ("unsqueeze mid", lambda x: x.unsqueeze(2), lambda a: a[:, :, None]),
    ("squeeze", lambda x: x[:, :1, None].squeeze(), lambda a: a[:, :1, None].squeeze()),
    ("squeeze dim", lambda x: x[:, :1].squeeze(1), lambda a: a[:, 0]),
    ("squeeze dims", lambda x: x[:1, :1].squeeze((0, 1)), lambda a: a[0, 0]),
    ("squeeze non-1 dim", lambda x: x.squeeze(0), lambda a: a),
    ("flatten", lambda x: x.flatten(), lambda a: a.reshape(-1)),
    ("flatten 1", lambda x: x.flatten(1), lambda a: a.reshape(2, 12)),
    ("flatten 0,1", lambda x: x.flatten(0, 1), lambda a: a.reshape(6, 4)),
    ("unflatten", lambda x: x.unflatten(2, (2, 2)), lambda a: a.reshape(2, 3, 2, 2)),
    ("unflatten -1", lambda x: x.unflatten(-1, (-1, 2)), lambda a: a.reshape(2, 3, 2, 2)),
    ("narrow", lambda x: x.narrow(1, 1, 2), lambda a: a[:, 1:3]),
    ("narrow neg", lambda x: x.narrow(-1, -3, 2), lambda a: a[..., 1:3]),
    ("select", lambda x: x.select(1, 2), lambda a: a[:, 2]),
    ("select neg", lambda x: x.select(-1, -1), lambda a: a[..., -1]),
    ("int index", lambda x: x[1], lambda a: a[1]),
    ("neg int index", lambda x: x[-1, -2], lambda a: a[-1, -2]),
    ("slice step", lambda x: x[:, ::2, 1::2], lambda a: a[:, ::2, 1::2]),
    ("slice neg bounds", lambda x: x[..., -3:-1], lambda a: a[..., -3:-1]),
    ("slice past end", lambda x: x[:, 1:100], lambda a: a[:, 1:100]),
    ("empty slice", lambda x: x[:, 2:1], lambda a: a[:, 2:1]),
    ("None index", lambda x: x[None, :, None, 1], lambda a: a[None, :, None, 1]),
    ("ellipsis", lambda x: x[..., 1:, 0], lambda a: a[..., 1:, 0]),
    ("chained", lambda x: x.permute(2, 0, 1)[1:, :, ::2].transpose(0, 1),
     lambda a: a.transpose(2, 0, 1)[1:, :, ::2].swapaxes(0, 1)),
]


@pytest.mark.parametrize("name,fn,np_fn", VIEWS, ids=[v[0] for v in VIEWS])
def test_view_matches_numpy_without_kernels(device, name, fn, np_fn):
    a, x = _base(device)
    runtime.reset_stats()
    v = fn(x)
    s = runtime.stats()
    assert s["launches"] == 0 and s["h2d"] == 0 and s["d2h"] == 0 and s["allocs"] == 0, s
    assert v._buf is x._buf, "a view must share its base's buffer"
    want = np_fn(a)
    assert tuple(v.shape) == want.shape
    assert v.numel() == want.size
    if want.size > 1 and name not in ("squeeze non-1 dim",):
        # same element strides as numpy wherever a dim has more than one element
        for n, s1, s2 in zip(want.shape, v.stride(), _es(want)):
            if n > 1:
                assert s1 == s2, (v.stride(), _es(want))
    _same(v, want)


def test_views_share_storage(device):
    a, x = _base(device)
    v = x.permute(2, 0, 1)[1]          # (2, 3) view of x[:, :, 1]
    x.add_(100)
    _same(v, a.transpose(2, 0, 1)[1] + 100)
    v.mul_(0)
    a = a + 100
    a[:, :, 1] = 0
    _same(x, a)
    x[:, 1, ::2] = -1
    a[:, 1, ::2] = -1
    _same(x, a)


def test_reshape_copies_only_when_needed(device):
    a, x = _base(device)
    runtime.reset_stats()
    assert x.reshape(4, 6)._buf is x._buf
    t = x.transpose(1, 2)               # (2, 4, 3), not contiguous
    assert t.reshape(2, 4, 3, 1)._buf is x._buf      # size-1 dims: still a view
    assert t.reshape(2, 12)._buf is not x._buf       # merging across the transpose copies
    _same(t.reshape(2, 12), a.swapaxes(1, 2).reshape(2, 12))
    sl = x[:, :, :2]                    # (2, 3, 2) slice
    assert sl.reshape(2, 3, 2)._buf is x._buf
    assert sl.reshape(6, 2)._buf is x._buf           # dims 0 and 1 still merge by stride
    _same(sl.reshape(6, 2), a[:, :, :2].reshape(6, 2))
    assert sl.reshape(12)._buf is not x._buf
    _same(sl.reshape(12), a[:, :, :2].reshape(12))
    e = x[:, :1].expand(2, 5, 4)
    assert e.reshape(2, 5, 2, 2)._buf is x._buf      # splitting a broadcast dim is a view
    _same(e.reshape(10, 4), np.broadcast_to(a[:, :1], (2, 5, 4)).reshape(10, 4))


def test_view_refuses_incompatible_strides(device):
    _, x = _base(device)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        x.transpose(0, 1).view(-1)
    with pytest.raises(RuntimeError, match="invalid for input of size 24"):
        x.view(5, 5)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.view(-1, -1)


def test_contiguous_and_clone(device):
    a, x = _base(device)
    assert x.contiguous() is x
    t = x.permute(1, 2, 0)
    assert not t.is_contiguous()
    runtime.reset_stats()
    c = t.contiguous()
    assert runtime.stats()["launches"] == 1
    assert c.is_contiguous() and c._buf is not x._buf
    assert c.stride() == (8, 2, 1)
    _same(c, a.transpose(1, 2, 0))
    k = x.clone()
    k.add_(1)
    _same(x, a)


def test_zero_d_and_empty_views(device):
    s = clgrad.tensor(3.5, device=device)
    assert s.shape == () and s.ndim == 0 and s.stride() == ()
    _same(s.reshape(1, 1), np.array([[3.5]], np.float32))
    _same(s.unsqueeze(0), np.array([3.5], np.float32))
    _same(s.reshape(1).squeeze(), np.array(3.5, np.float32))
    _same(s.expand(3, 2), np.full((3, 2), 3.5, np.float32))
    assert s.flatten().shape == (1,)
    assert s.T.shape == () and s.t().shape == ()
    e = clgrad.zeros(0, 3, device=device)
    assert e.reshape(3, 0).shape == (3, 0) and e.T.shape == (3, 0)
    assert e[:, 1].shape == (0,) and e.unsqueeze(1).shape == (0, 1, 3)
    assert e.view(0).shape == (0,) and e.reshape(0, 5).shape == (0, 5)


def test_t_and_mt_rules(device):
    _, x = _base(device)
    with pytest.raises(RuntimeError, match="t\\(\\) expects a tensor with <= 2 dimensions"):
        x.t()
    v = clgrad.arange(3, device=device)
    assert v.t().shape == (3,)
    with pytest.raises(RuntimeError, match="mT is only supported"):
        v.mT


def test_view_errors(device):
    _, x = _base(device)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.permute(0, 1, 3)
    with pytest.raises(RuntimeError, match="duplicate dims"):
        x.permute(0, 0, 1)
    with pytest.raises(RuntimeError, match="expanded size"):
        x.expand(2, 3, 5)
    with pytest.raises(IndexError, match="out of bounds"):
        x.select(1, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        x[2]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0, 0]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]
    with pytest.raises(IndexError, match="exceeds dimension size"):
        x.narrow(2, 3, 2)
    with pytest.raises(RuntimeError, match="don't multiply up"):
        x.unflatten(2, (3, 2))


def test_view_dataclass():
    v = View.contiguous((2, 3, 4))
    assert v.strides == (12, 4, 1) and v.is_contiguous() and v.numel == 24
    assert v.permute((2, 0, 1)).strides == (1, 12, 4)
    assert v.reshape((6, 4)) == View((6, 4), (4, 1), 0)
    assert v.permute((1, 0, 2)).reshape((24,)) is None
    assert v.slice(2, 1, 4, 2) == View((2, 3, 2), (12, 4, 2), 1)
    assert v.select(1, 2) == View((2, 4), (12, 1), 8)
    assert v.slice(1, 0, 3, 1).expand((5, 2, 3, 4)).strides == (0, 12, 4, 1)
    assert v.extent() == (0, 23)
    assert View((3,), (-1,), 2).extent() == (0, 2)
    assert broadcast_shapes((3, 1), (1, 4), ()) == (3, 4)
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        broadcast_shapes((3,), (4,))
    assert coalesce((2, 3, 4), (12, 4, 1)) == ((24,), [(1,)])
    assert coalesce((2, 1, 4), (4, 4, 1), (0, 0, 1)) == ((2, 4), [(4, 1), (0, 1)])
    assert coalesce((1, 1), (5, 5)) == ((1,), [(0,)])
