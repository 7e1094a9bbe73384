"""DataLoader: batches of a dataset as clgrad tensors, in sampler order.

Host/device overlap: collation is split into a host phase (fetch samples, stack numpy arrays and
numbers) and a device phase (one host-to-device copy per field, in the main thread). With
num_workers > 0 the host phase of the next `prefetch_factor * num_workers` batches runs in
worker *threads* while the caller computes on the current batch (numpy's stacking releases the
GIL, and kernels run on the OpenCL runtime's own threads); worker processes are not used, so
datasets may hold clgrad tensors and nothing is pickled. Workers never launch kernels: device
tensors are stacked/gathered, and a custom collate_fn runs, in the main thread (the dataset's
__getitem__ runs in the workers, so with num_workers > 0 it should not launch kernels either:
indexing a tensor is a view and launches nothing). With num_workers=0 everything runs
inline. `pin_memory` is accepted and has no effect (OpenCL has no pinned-host concept that helps
here: on CPU devices host memory already is device memory)."""
from __future__ import annotations

import collections
import math
import threading

import numpy as np
from concurrent.futures import ThreadPoolExecutor

from ... import autograd
from ...tensor.creation import tensor
from . import _collate
from .dataset import IterableDataset, TensorDataset
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, _as_generator,
                      _batched)

__all__ = ["DataLoader", "get_worker_info"]


def get_worker_info():
    """Worker threads share the main process; there is no per-worker dataset copy."""
    return None


class _Custom:
    """Samples for a user collate_fn, which runs in the main thread (it may launch kernels)."""

    __slots__ = ("samples",)

    def __init__(self, samples):
        self.samples = samples


class _InfiniteIterableSampler(Sampler):
    def __iter__(self):
        while True:
            yield None


def _take_rows(t, indices):
    """Rows `indices` of a clgrad tensor or numpy array (TensorDataset's batched fetch)."""
    if isinstance(t, np.ndarray):
        return _collate._Host(np.take(t, indices, axis=0))
    return _collate._Deferred(_gather_rows, t, indices)


def _gather_rows(t, indices):
    n = len(indices)
    with autograd.no_grad():
        if n and indices == list(range(indices[0], indices[0] + n)):
            return t[indices[0]:indices[0] + n].clone()       # one copy launch
        select = getattr(type(t), "index_select", None)
        if select is not None:
            return select(t, 0, tensor(indices, device=t.device))
        return _collate._stack_device([t[i] for i in indices])


class DataLoader:
    """Iterate over `dataset` in batches.

    Args:
        dataset: a map-style Dataset (``__getitem__``/``__len__``) or an IterableDataset.
        batch_size: samples per batch (default 1); None turns batching off.
        shuffle: reshuffle the indices every epoch (a RandomSampler seeded from `generator`).
        sampler, batch_sampler: custom index order / index batches.
        num_workers: worker threads preparing batches ahead (0: inline).
        collate_fn: merges a list of samples (default: `default_collate`).
        pin_memory: accepted for compatibility; no effect.
        drop_last: drop a last, incomplete batch.
        generator: a clgrad.Generator or an int seed for shuffling; without it shuffling draws
            from clgrad's default generator, so `clgrad.manual_seed` makes it reproducible.
        prefetch_factor: batches each worker prepares ahead (default 2 with workers).
        device: where batches go (default: the default device).

    Example:
        >>> loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=0)
        >>> for xb, yb in loader:
        ...     loss = loss_fn(model(xb), yb)
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True, device=None):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = 2 if num_workers > 0 and prefetch_factor is None \
            else prefetch_factor
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.device = device
        self.generator = _as_generator(generator)
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in (None, False):
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                                 f"option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler "
                                 f"option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        elif isinstance(shuffle, bool) or shuffle is None:
            pass
        else:
            raise TypeError(f"shuffle should be a boolean value, but got {shuffle!r}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            if self._iterable:
                sampler = _InfiniteIterableSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=self.generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._auto_collation = batch_sampler is not None
        self._default_collate = collate_fn is None
        if collate_fn is None:
            collate_fn = _collate.default_collate if self._auto_collation \
                else _collate.default_convert
        self.collate_fn = collate_fn

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
            return n
        return len(self._index_sampler)

    # ---- fetching: the host phase ------------------------------------------------------------
    def _fetch_host(self, indices):
        """Samples for one batch, collated as far as the host goes."""
        if self._default_collate and self._auto_collation and \
                isinstance(self.dataset, TensorDataset):
            return tuple(_take_rows(t, list(indices)) for t in self.dataset.tensors)
        if self._auto_collation:
            getitems = getattr(self.dataset, "__getitems__", None)
            data = getitems(list(indices)) if callable(getitems) else \
                [self.dataset[i] for i in indices]
            if self._default_collate:
                return _collate.host_collate(data)
            return _Custom(data)
        data = self.dataset[indices]
        return _collate._host_convert(data) if self._default_collate else _Custom(data)

    def _finish(self, host):
        if isinstance(host, _Custom):
            return self.collate_fn(host.samples)
        return _collate.to_device(host, self.device) if self._default_collate else host

    def _iterable_batches(self):
        it = iter(self.dataset)
        if not self._auto_collation:
            for sample in it:
                yield [sample]
            return
        yield from _batched(it, self.batch_size, self.drop_last)

    def _host_batches(self):
        if self._iterable:
            for samples in self._iterable_batches():
                if not self._auto_collation:
                    s = samples[0]
                    yield _collate._host_convert(s) if self._default_collate else _Custom(s)
                elif self._default_collate:
                    yield _collate.host_collate(samples)
                else:
                    yield _Custom(samples)
            return
        for indices in self._index_sampler:
            yield self._fetch_host(indices)

    def __iter__(self):
        if self.num_workers == 0:
            for host in self._host_batches():
                yield self._finish(host)
            return
        if self._iterable:
            # one stream: a single thread prepares batches ahead
            yield from self._threaded(lambda: iter(self._host_batches()), 1)
            return
        yield from self._threaded(None, self.num_workers)

    def _threaded(self, stream, workers):
        ahead = max(1, self.prefetch_factor * self.num_workers)
        with ThreadPoolExecutor(max_workers=workers, initializer=self._init_worker,
                                initargs=(workers,)) as pool:
            pending = collections.deque()
            try:
                if stream is not None:
                    source = stream()
                    while True:
                        while len(pending) < ahead:
                            pending.append(pool.submit(next, source))
                        try:
                            host = pending.popleft().result(timeout=self.timeout or None)
                        except StopIteration:
                            return
                        yield self._finish(host)
                indices = iter(self._index_sampler)
                for _ in range(ahead):
                    idx = next(indices, None)
                    if idx is None:
                        break
                    pending.append(pool.submit(self._fetch_host, idx))
                while pending:
                    host = pending.popleft().result(timeout=self.timeout or None)
                    idx = next(indices, None)
                    if idx is not None:
                        pending.append(pool.submit(self._fetch_host, idx))
                    yield self._finish(host)
            finally:
                # leaving early (break, an exception, Ctrl-C): drop the batches not started,
                # so closing the pool waits only for those already running
                for f in pending:
                    f.cancel()

    def _init_worker(self, workers):
        if self.worker_init_fn is not None:
            self.worker_init_fn(threading.get_ident() % workers)
