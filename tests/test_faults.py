"""Device-side error flags (runtime/faults.py): an out-of-range index or an integer division by
zero met by a kernel raises at the next sync (a host read, synchronize()), with PyTorch's message
and the op's name; no op reads anything back itself; the first sync raises, the next ones do not,
and the process keeps working. Also under clgrad.jit replays."""
import numpy as np
import pytest

import clgrad
import clgrad.nn as nn
import clgrad.nn.functional as F
from clgrad import runtime
from clgrad.runtime.errors import DeviceIndexError, DeviceZeroDivisionError


def _t(values, device, dtype=None):
    return clgrad.tensor(values, device=device, dtype=dtype)


def _cases(device):
    """(name, call making the fault, exception types, message pattern)."""
    x = clgrad.arange(12, dtype=clgrad.float32, device=device).reshape(3, 4)
    w = clgrad.randn(5, 3, device=device)
    logits = clgrad.randn(4, 3, device=device)
    a = _t([7, -7, 9, 4], device)
    emb = nn.Embedding(5, 3).to(device)
    return [
        ("embedding", lambda: F.embedding(_t([0, 5], device), w), (IndexError,),
         r"index out of range in self \(index 5, num_embeddings 5\).*embedding"),
        ("embedding negative", lambda: emb(_t([[1, -1]], device)),
         (IndexError,), r"index out of range in self \(index -1.*embedding"),
        ("cross_entropy", lambda: F.cross_entropy(logits, _t([0, 1, 3, 2], device)),
         (IndexError,), r"Target 3 is out of bounds\..*cross_entropy"),
        ("cross_entropy negative", lambda: F.cross_entropy(logits, _t([0, -2, 1, 2], device)),
         (IndexError,), r"Target -2 is out of bounds\."),
        ("nll_loss", lambda: F.nll_loss(logits.log_softmax(1), _t([0, 7, 1, 2], device)),
         (IndexError,), r"Target 7 is out of bounds\..*nll_loss"),
        ("gather", lambda: x.gather(1, _t([[0, 4]], device)), (IndexError, RuntimeError),
         r"index 4 is out of bounds for dimension 1 with size 4.*gather"),
        ("scatter", lambda: x.clone().scatter_(0, _t([[3, 0, 0, 0]], device), 1.0),
         (IndexError, RuntimeError), r"index 3 is out of bounds for dimension 0 with size 3"),
        ("scatter_add", lambda: x.scatter_add(1, _t([[0, -5]], device), x[:1, :2]),
         (RuntimeError,), r"index -5 is out of bounds for dimension 1 with size 4"),
        ("index_select", lambda: x.index_select(0, _t([0, 3], device)), (IndexError,),
         r"index out of range in self \(index 3 for dimension 0 with size 3\).*index_select"),
        ("index_add", lambda: x.index_add(1, _t([9], device), x[:, :1]), (IndexError,),
         r"index out of range in self \(index 9"),
        ("index_select negative", lambda: x.index_select(1, _t([-1], device)), (IndexError,),
         r"index out of range in self \(index -1"),
        ("tensor index", lambda: x[_t([1, 3], device)], (IndexError,),
         r"index 3 is out of bounds for dimension 0 with size 3.*index"),
        ("take", lambda: x.take(_t([12], device)), (IndexError,),
         r"tried to access index 12 on a tensor of 12 elements"),
        ("floor_divide", lambda: a // _t([1, 2, 0, 3], device), (ZeroDivisionError, RuntimeError),
         r"ZeroDivisionError.*division"),
        ("remainder", lambda: a % _t([[1], [0]], device), (ZeroDivisionError,),
         r"ZeroDivisionError.*remainder"),
        ("fmod", lambda: a.fmod(_t([0, 1, 1, 1], device)), (ZeroDivisionError,),
         r"ZeroDivisionError.*fmod"),
        ("div trunc", lambda: a.div(_t(0, device), rounding_mode="trunc"), (ZeroDivisionError,),
         r"ZeroDivisionError"),
        ("int8 floor_divide", lambda: a.to(clgrad.int8) // _t([1, 0, 1, 1], device, clgrad.int8),
         (ZeroDivisionError,), r"ZeroDivisionError"),
    ]


@pytest.mark.parametrize("case", range(18))
def test_fault_raises_at_the_next_sync(device, case):
    name, make, types, pattern = _cases(device)[case]
    clgrad.synchronize(device)
    runtime.reset_stats()
    out = make()                                   # no host read, no raise: nothing waited
    s = runtime.stats()
    assert s["d2h"] == 0 and s["flag_reads"] == 0, name
    with pytest.raises(types, match=pattern):
        out.detach().numpy()                        # the first host read raises ...
    assert runtime.stats()["flag_reads"] == 1
    out.detach().numpy()                            # ... the next one does not
    clgrad.synchronize(device)
    y = clgrad.arange(6, device=device).reshape(2, 3)   # and the process keeps working
    np.testing.assert_array_equal((y // 2).numpy(), np.arange(6).reshape(2, 3) // 2)
    np.testing.assert_array_equal(y.gather(1, _t([[2], [0]], device)).numpy(), [[2], [3]])


def test_synchronize_and_item_raise(device):
    w = clgrad.randn(4, 2, device=device)
    F.embedding(_t([4], device), w)
    with pytest.raises(IndexError, match="num_embeddings 4"):
        clgrad.synchronize(device)
    clgrad.synchronize(device)
    F.embedding(_t([-5], device), w)
    with pytest.raises(IndexError, match="index -5"):
        clgrad.zeros(1, device=device).item()      # any read of the device, not just the output
    assert clgrad.zeros(1, device=device).item() == 0.0


def test_first_fault_wins(device):
    x = clgrad.zeros(3, device=device)
    x.gather(0, _t([7], device))
    x.index_select(0, _t([8], device))
    with pytest.raises(RuntimeError, match="index 7 is out of bounds.*gather"):
        clgrad.synchronize(device)
    clgrad.synchronize(device)


def test_good_inputs_unchanged(device):
    # in range (negative indices count from the end for x[i] and take, as in PyTorch),
    # ignore_index, padding_idx, a Python or float divisor: no fault, values as numpy
    x = clgrad.arange(12, dtype=clgrad.float32, device=device).reshape(3, 4)
    np.testing.assert_array_equal(x.gather(1, _t([[0, 3]], device)).numpy(), [[0, 3]])
    np.testing.assert_array_equal(x[_t([-1], device)].numpy(), [[8, 9, 10, 11]])
    np.testing.assert_array_equal(x.take(_t([-2], device)).numpy(), [10])
    np.testing.assert_array_equal(x.index_select(0, _t([2], device)).numpy(), [[8, 9, 10, 11]])
    logits = clgrad.randn(3, 4, device=device)
    loss = F.cross_entropy(logits, _t([1, -100, 3], device)).item()
    ref = -np.log(np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True))
    assert loss == pytest.approx((ref[0, 1] + ref[2, 3]) / 2, rel=1e-5)
    assert F.nll_loss(logits, _t([1, 2, 7], device), ignore_index=7).item() == \
        pytest.approx(-(logits.numpy()[0, 1] + logits.numpy()[1, 2]) / 2, rel=1e-5)
    e = nn.Embedding(4, 2, padding_idx=0).to(device)
    np.testing.assert_array_equal(e(_t([0, 3], device)).detach().numpy()[0], [0, 0])
    np.testing.assert_array_equal((_t([7, -7], device) // 2).numpy(), [3, -4])
    np.testing.assert_array_equal((_t([1.0, -1.0], device) // _t([0.0, 0.0], device)).numpy(),
                                  [np.inf, -np.inf])
    with pytest.raises(ZeroDivisionError):
        _t([1, 2], device) // 0                     # a Python 0 is known at once
    with pytest.raises(ZeroDivisionError):
        _t([1, 2], device) % 0


def _lm(device):
    clgrad.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 10)).to(device)
    return model, clgrad.optim.SGD(model.parameters(), lr=0.1)


def test_training_step_reads_nothing_extra(device):
    # an embedding + cross-entropy step: the flag is read once per sync (queued with the one
    # read of the loss), never once per op
    model, opt = _lm(device)
    tok = _t([1, 2, 3, 4, 5, 6], device)
    tgt = _t([2, 3, 4, 5, 6, 7], device)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(tok), tgt)
        loss.backward()
        opt.step()
        return loss
    step().item()
    runtime.reset_stats()
    for _ in range(3):
        step().item()
    s = runtime.stats()
    assert s["d2h"] == 3 and s["flag_reads"] == 3 and s["h2d"] == 0
    runtime.reset_stats()
    for _ in range(3):
        step()
    assert runtime.stats()["d2h"] == 0 and runtime.stats()["flag_reads"] == 0


def test_jit_replay_raises_then_recovers(device):
    model, opt = _lm(device)

    @clgrad.jit
    def step(tok, tgt):
        opt.zero_grad()
        loss = F.cross_entropy(model(tok), tgt)
        loss.backward()
        opt.step()
        return loss
    tok = _t([1, 2, 3, 4], device)
    good = _t([2, 3, 4, 5], device)
    for _ in range(3):
        step(tok, good).item()
    assert step.captured == 1
    runtime.reset_stats()
    loss = step(tok, _t([2, 3, 10, 5], device))          # replayed: a target out of range
    assert runtime.stats()["replays"] == 1
    with pytest.raises(IndexError, match="Target 10 is out of bounds"):
        loss.item()
    loss = step(_t([1, 12, 3, 4], device), good)          # a token out of range
    with pytest.raises(IndexError, match="index 12, num_embeddings 10"):
        loss.item()
    assert np.isfinite(step(tok, good).item())
    assert runtime.stats()["replays"] == 3
    # the rows that faulted were left out (zero embedding row, ignored target), so the steps
    # that met them put no NaN into the model
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.parameters())


def test_flag_is_per_device():
    devs = runtime.devices()
    if len(devs) < 2:
        pytest.skip("needs two OpenCL devices (Intel's runtime and PoCL)")
    a, b = devs[0], devs[1]
    clgrad.zeros(2, device=a).gather(0, _t([5], a))
    clgrad.synchronize(b)                                   # b has no fault
    assert clgrad.zeros(1, device=b).item() == 0.0
    with pytest.raises(RuntimeError, match=f"gather on {a.spec}"):
        clgrad.synchronize(a)


def test_error_classes():
    assert issubclass(DeviceIndexError, IndexError) and issubclass(DeviceIndexError, RuntimeError)
    assert issubclass(DeviceZeroDivisionError, ZeroDivisionError)
    assert issubclass(DeviceZeroDivisionError, RuntimeError)
