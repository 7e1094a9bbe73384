"""clgrad.utils.data: datasets, samplers, DataLoader ordering/shuffling/collation."""
from collections import namedtuple

import numpy as np
import pytest

import clgrad
from clgrad.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset,
                               IterableDataset, RandomSampler, SequentialSampler, Subset,
                               SubsetRandomSampler, TensorDataset, WeightedRandomSampler,
                               default_collate, random_split)

Point = namedtuple("Point", ["x", "y"])


def _ids(loader):
    return [b[1].numpy().tolist() for b in loader]


def _xy(n=10):
    return np.arange(2 * n, dtype=np.float32).reshape(n, 2), np.arange(n)


def test_sequential_order_drop_last_and_len():
    x, y = _xy()
    dl = DataLoader(TensorDataset(x, y), batch_size=4)
    assert len(dl) == 3
    batches = list(dl)
    assert [b[1].numpy().tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    np.testing.assert_array_equal(batches[1][0].numpy(), x[4:8])
    assert batches[0][0].dtype == clgrad.float32 and batches[0][1].dtype == clgrad.int64
    dl = DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True)
    assert len(dl) == 2 and _ids(dl) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_one_host_to_device_copy_per_field():
    x, y = _xy()
    dl = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, generator=1)
    it = iter(dl)
    clgrad.runtime.reset_stats()
    next(it)
    assert clgrad.runtime.stats()["h2d"] == 2
    samples = [{"a": np.ones(3), "b": [1, 2.0], "c": Point(np.zeros(2), 3)} for _ in range(4)]
    clgrad.runtime.reset_stats()
    out = default_collate(samples)
    assert clgrad.runtime.stats()["h2d"] == 5     # a, b[0], b[1], c.x, c.y


def test_shuffle_reproducible():
    x, y = _xy(50)
    ds = TensorDataset(x, y)
    a = _ids(DataLoader(ds, batch_size=8, shuffle=True, generator=123))
    b = _ids(DataLoader(ds, batch_size=8, shuffle=True, generator=123))
    c = _ids(DataLoader(ds, batch_size=8, shuffle=True, generator=124))
    assert a == b and a != c
    assert sorted(sum(a, [])) == list(range(50))
    # one loader reshuffles every epoch; the default generator follows clgrad.manual_seed
    dl = DataLoader(ds, batch_size=8, shuffle=True, generator=clgrad.Generator().manual_seed(5))
    assert _ids(dl) != _ids(dl)
    clgrad.manual_seed(7)
    first = _ids(DataLoader(ds, batch_size=8, shuffle=True))
    clgrad.manual_seed(7)
    assert _ids(DataLoader(ds, batch_size=8, shuffle=True)) == first


def test_device_tensor_dataset():
    x, y = _xy(12)
    ds = TensorDataset(clgrad.tensor(x), clgrad.tensor(y))
    for shuffle in (False, True):
        for xb, yb in DataLoader(ds, batch_size=5, shuffle=shuffle, generator=0):
            np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])
    # samples that are device tensors are stacked on the device: no host copy
    xs = clgrad.tensor(x)
    clgrad.runtime.reset_stats()
    out = default_collate([xs[3], xs[1], xs[7]])
    assert clgrad.runtime.stats()["h2d"] == 0
    np.testing.assert_array_equal(out.numpy(), x[[3, 1, 7]])


def test_collate_nested_structures():
    samples = [{"img": np.full((2, 2), i, np.float32), "label": i, "w": float(i) / 2,
                "flag": i % 2 == 0, "name": f"s{i}", "pair": (np.int32(i), [i, i + 1]),
                "pt": Point(i, np.array([i, -i]))} for i in range(3)]
    b = default_collate(samples)
    assert b["img"].shape == (3, 2, 2) and b["img"].dtype == clgrad.float32
    assert b["label"].dtype == clgrad.int64 and b["label"].numpy().tolist() == [0, 1, 2]
    assert b["w"].dtype == clgrad.float64 and b["w"].numpy().tolist() == [0, 0.5, 1.0]
    assert b["flag"].dtype == clgrad.bool and b["flag"].numpy().tolist() == [True, False, True]
    assert b["name"] == ["s0", "s1", "s2"]
    assert isinstance(b["pair"], list) and b["pair"][0].dtype == clgrad.int32
    assert [t.numpy().tolist() for t in b["pair"][1]] == [[0, 1, 2], [1, 2, 3]]
    assert isinstance(b["pt"], Point) and b["pt"].y.numpy().tolist() == [[0, 0], [1, -1], [2, -2]]


def test_collate_errors_name_the_problem():
    with pytest.raises(RuntimeError, match=r"element 0 is numpy.ndarray of shape \[3\] but "
                                           r"element 2 is numpy.ndarray of shape \[4\]"):
        default_collate([np.zeros(3), np.zeros(3), np.zeros(4)])
    with pytest.raises(RuntimeError, match=r"shape \[2\].*shape \[3\]"):
        t = clgrad.zeros(3)
        default_collate([t[:2], t])
    with pytest.raises(RuntimeError, match="element 1 of type str"):
        default_collate([1, "a"])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([(1, 2), (1, 2, 3)])
    with pytest.raises(TypeError, match="found <class 'object'>"):
        default_collate([object(), object()])


def test_samplers():
    ds = list(range(10))
    assert list(SequentialSampler(ds)) == ds
    r = list(RandomSampler(ds, generator=0))
    assert sorted(r) == ds and r != ds
    r = list(RandomSampler(ds, num_samples=25, generator=0))
    assert len(r) == 25 and sorted(r[:10]) == ds and sorted(r[10:20]) == ds
    r = list(RandomSampler(ds, replacement=True, num_samples=100, generator=0))
    assert len(r) == 100 and set(r) <= set(ds) and len(set(r)) < 100
    s = list(SubsetRandomSampler([3, 5, 7], generator=0))
    assert sorted(s) == [3, 5, 7]
    w = list(WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=0))
    assert 0 not in w and abs(w.count(2) / 4000 - 0.75) < 0.03
    w = list(WeightedRandomSampler([1.0, 0.0, 1.0, 1.0], 3, replacement=False, generator=0))
    assert sorted(w) == [0, 2, 3]
    bs = BatchSampler(SequentialSampler(ds), 4, drop_last=False)
    assert list(bs) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(bs) == 3
    assert len(BatchSampler(SequentialSampler(ds), 4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, "
                                         "but got batch_size=0"):
        BatchSampler(ds, 0, False)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        WeightedRandomSampler([1.0], 0)
    with pytest.raises(ValueError, match="weights should be a 1d sequence"):
        WeightedRandomSampler([[1.0]], 1)


def test_datasets_and_random_split():
    a, b = TensorDataset(np.arange(3)), TensorDataset(np.arange(3, 7))
    cat = a + b
    assert isinstance(cat, ConcatDataset) and len(cat) == 7
    assert [int(cat[i][0]) for i in range(7)] == list(range(7)) and int(cat[-1][0]) == 6
    sub = Subset(cat, [6, 0, 2])
    assert len(sub) == 3 and int(sub[0][0]) == 6
    parts = random_split(range(10), [3, 7], generator=42)
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(list(parts[0]) + list(parts[1])) == list(range(10))
    again = random_split(range(10), [3, 7], generator=42)
    assert list(again[0]) == list(parts[0])
    parts = random_split(range(11), [0.5, 0.3, 0.2], generator=clgrad.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [6, 3, 2]      # floor 5, 3, 2; the leftover goes first
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(range(10), [3, 3])


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(np.arange(self.n, dtype=np.float32).reshape(-1, 1))

    def __len__(self):
        return self.n


class Squares(Dataset):
    def __getitem__(self, i):
        return {"x": np.float32(i), "y": i * i}

    def __len__(self):
        return 9


def test_iterable_unbatched_workers_and_custom_collate():
    dl = DataLoader(Stream(7), batch_size=3)
    assert len(dl) == 3
    assert [b.shape for b in dl] == [(3, 1), (3, 1), (1, 1)]
    assert [b.shape for b in DataLoader(Stream(7), batch_size=3, num_workers=2)] == \
        [(3, 1), (3, 1), (1, 1)]
    ref = [b["y"].numpy().tolist() for b in DataLoader(Squares(), batch_size=2, shuffle=True,
                                                       generator=3)]
    got = [b["y"].numpy().tolist() for b in DataLoader(Squares(), batch_size=2, shuffle=True,
                                                       generator=3, num_workers=2)]
    assert got == ref and sorted(sum(got, [])) == [i * i for i in range(9)]
    single = list(DataLoader(Squares(), batch_size=None))
    assert len(single) == 9 and single[2]["y"] == 4 and single[2]["x"].shape == ()
    dl = DataLoader(Squares(), batch_size=4, collate_fn=lambda b: [s["y"] for s in b])
    assert list(dl) == [[0, 1, 4, 9], [16, 25, 36, 49], [64]]
    dl = DataLoader(Squares(), batch_sampler=[[8, 0], [1]])
    assert [b["y"].numpy().tolist() for b in dl] == [[64, 0], [1]] and len(dl) == 2


def test_loader_argument_errors():
    ds = Squares()
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=SequentialSampler(ds), shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_sampler=[[0]], batch_size=2)
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        DataLoader(Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="batch_size=None option disables auto-batching"):
        DataLoader(ds, batch_size=None, drop_last=True)


def test_workers_match_inline_for_device_tensors():
    x, y = _xy(20)
    ds = TensorDataset(clgrad.tensor(x), clgrad.tensor(y))
    inline = _ids(DataLoader(ds, batch_size=3, shuffle=True, generator=9))
    threaded = _ids(DataLoader(ds, batch_size=3, shuffle=True, generator=9, num_workers=2,
                               prefetch_factor=3))
    assert threaded == inline
    custom = list(DataLoader(Squares(), batch_size=4, num_workers=2,
                             collate_fn=lambda b: [s["y"] for s in b]))
    assert custom == [[0, 1, 4, 9], [16, 25, 36, 49], [64]]
