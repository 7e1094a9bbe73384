"""`out=` on the functional forms (PyTorch's resize, dtype and autograd rules) and whole-object
checkpoints: clgrad.save(module) / clgrad.load(weights_only=...) with the safe-globals
allowlist."""
import pickle
import warnings

import numpy as np
import pytest

import clgrad
from clgrad import nn
from clgrad.serialization import CheckpointError


def _t(a, device, **kw):
    return clgrad.tensor(np.asarray(a, dtype=np.float32), device=device, **kw)


CASES = [
    (lambda o, a, b: clgrad.add(a, b, alpha=2, out=o), lambda a, b: a + 2 * b),
    (lambda o, a, b: clgrad.mul(a, b, out=o), lambda a, b: a * b),
    (lambda o, a, b: clgrad.div(a, b, out=o), lambda a, b: a / b),
    (lambda o, a, b: clgrad.maximum(a, b, out=o), np.maximum),
    (lambda o, a, b: clgrad.exp(a, out=o), lambda a, b: np.exp(a)),
    (lambda o, a, b: clgrad.matmul(a, b.T, out=o), lambda a, b: a @ b.T),
    (lambda o, a, b: clgrad.sum(a, 1, out=o), lambda a, b: a.sum(1)),
    (lambda o, a, b: clgrad.mean(a, 0, keepdim=True, out=o), lambda a, b: a.mean(0, keepdims=True)),
    (lambda o, a, b: clgrad.cat([a, b], 0, out=o), lambda a, b: np.concatenate([a, b], 0)),
    (lambda o, a, b: clgrad.stack([a, b], 1, out=o), lambda a, b: np.stack([a, b], 1)),
    (lambda o, a, b: clgrad.where(a > b, a, b, out=o), lambda a, b: np.where(a > b, a, b)),
    (lambda o, a, b: clgrad.cumsum(a, 1, out=o), lambda a, b: np.cumsum(a, 1)),
    (lambda o, a, b: clgrad.clamp(a, -0.5, 0.5, out=o), lambda a, b: np.clip(a, -0.5, 0.5)),
]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_out_writes_in_place_and_resizes(device, i):
    fn, ref = CASES[i]
    rng = np.random.default_rng(i)
    a, b = rng.uniform(0.5, 2, (3, 4)), rng.uniform(0.5, 2, (3, 4))
    want = ref(a, b)
    # the right shape: written into out's own storage
    out = clgrad.empty(want.shape, device=device)
    buf = out._buf
    res = fn(out, _t(a, device), _t(b, device))
    assert res is out and out._buf is buf
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)
    # an empty out is resized silently, a non-empty one with PyTorch's warning
    out = clgrad.empty(0, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(out, _t(a, device), _t(b, device))
    assert out.shape == want.shape
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)
    out = clgrad.empty(2, device=device)
    with pytest.warns(UserWarning, match="was resized"):
        fn(out, _t(a, device), _t(b, device))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)


def test_out_dtype_autograd_and_tuples(device):
    a = _t([1.5, -2.0, 3.0], device)
    wide = clgrad.empty(3, dtype=clgrad.float64, device=device)
    clgrad.add(a, 1, out=wide)                       # float32 result into float64: allowed
    assert wide.dtype is clgrad.float64 and wide.tolist() == [2.5, -1.0, 4.0]
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
        clgrad.add(a, 1, out=clgrad.empty(3, dtype=clgrad.int64, device=device))
    with pytest.raises(RuntimeError, match="don't support automatic differentiation"):
        clgrad.mul(_t([1.0], device, requires_grad=True), 2, out=clgrad.empty(1, device=device))
    with clgrad.no_grad():
        clgrad.mul(_t([1.0], device, requires_grad=True), 2, out=clgrad.empty(1, device=device))
    v = clgrad.empty(0, device=device)
    i = clgrad.empty(0, dtype=clgrad.int64, device=device)
    r = clgrad.sort(_t([3.0, 1.0, 2.0], device), out=(v, i))
    assert r.values is v and v.tolist() == [1.0, 2.0, 3.0] and i.tolist() == [1, 2, 0]
    with pytest.raises(TypeError, match="tuple of 2"):
        clgrad.sort(_t([3.0], device), out=v)
    # a sliced out is written through its view
    base = clgrad.zeros(2, 3, device=device)
    clgrad.add(_t([1.0, 2.0], device), 1, out=base[:, 1])
    assert base.tolist() == [[0.0, 2.0, 0.0], [0.0, 3.0, 0.0]]
    assert clgrad.empty_like(a, memory_format=clgrad.preserve_format).shape == (3,)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.rnn = nn.GRU(2, 2)
        self.register_buffer("scale", clgrad.tensor([2.0]))
        self.note = {"epochs": 3}

    def forward(self, x):
        return self.rnn(self.fc(x))[0] * self.scale


def test_save_whole_module(tmp_path, device):
    m = _Net().to(device)
    path = tmp_path / "model.pt"
    clgrad.save(m, path)
    x = clgrad.randn(4, 1, 3, device=device)
    with pytest.raises(pickle.UnpicklingError, match="(?s)Weights only load failed.*weights_only.*False.*_Net"):
        clgrad.load(path)
    m2 = clgrad.load(path, weights_only=False, map_location=device)
    assert isinstance(m2, _Net) and m2.note == {"epochs": 3}
    assert isinstance(m2.fc.weight, nn.Parameter) and m2.fc.weight.requires_grad
    with clgrad.no_grad():
        np.testing.assert_array_equal(m2(x).numpy(), m(x).numpy())
    assert list(m2.state_dict()) == list(m.state_dict())
    # the allowlist lets a weights_only load through
    with clgrad.serialization.safe_globals([_Net, nn.Linear, nn.GRU]):
        m3 = clgrad.load(path)
    assert isinstance(m3, _Net)
    with pytest.raises(pickle.UnpicklingError, match="add_safe_globals"):
        clgrad.load(path)
    clgrad.serialization.add_safe_globals([_Net, nn.Linear, nn.GRU])
    try:
        assert _Net in clgrad.serialization.get_safe_globals()
        assert isinstance(clgrad.load(path), _Net)
    finally:
        clgrad.serialization.clear_safe_globals()
    # plain containers of tensors stay pickle-free: loading them needs no allowlist
    clgrad.save({"model": m.state_dict(), "opt": [1, 2.5]}, path)
    assert "pickled" not in path.read_bytes().decode("latin-1")
    assert clgrad.load(path)["opt"] == [1, 2.5]


def test_pickled_entry_is_checked(tmp_path):
    from test_serialization import _forge
    path = tmp_path / "bad.pt"
    path.write_bytes(_forge({"t": "pickled", "v": 5, "refs": []}, b""))
    with pytest.raises(CheckpointError, match="bad pickled entry"):
        clgrad.load(path, weights_only=False)
    # a pickle that calls os.system is refused by the default load before anything runs
    import base64
    evil = base64.b64encode(b"cos\nsystem\n(S'echo hi'\ntR.").decode()
    path.write_bytes(_forge({"t": "pickled", "v": evil, "refs": []}, b""))
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        clgrad.load(path)
