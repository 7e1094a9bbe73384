"""`DistributedSampler`: each rank's share of a dataset's indices for one epoch, PyTorch's
semantics (padding by repeating indices so every rank gets as many, or dropping the tail)."""
from __future__ import annotations

import math

from ... import distributed as dist
from .sampler import Sampler, _host_rng

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler):
    """Split a dataset's indices among `num_replicas` ranks.

    Args:
        dataset: anything with a length.
        num_replicas, rank: default: the process group's world size and rank.
        shuffle: a new permutation each epoch, the same on every rank (seeded by seed + epoch;
            call `set_epoch(e)` at the start of each epoch). clgrad's permutation stream is its
            own, so the shuffled order differs from PyTorch's; the unshuffled one is identical.
        seed: shared by all ranks.
        drop_last: drop the tail that does not divide evenly instead of padding it with
            indices from the start.

    Each rank gets `num_samples` indices: `ceil(len / num_replicas)` (padded), or
    `floor(len / num_replicas)` with drop_last; rank r takes positions r, r + R, r + 2R, ...

    Example:
        >>> sampler = DistributedSampler(train_set)
        >>> loader = DataLoader(train_set, batch_size=32, sampler=sampler)
        >>> for epoch in range(3):
        ...     sampler.set_epoch(epoch)
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        if num_replicas is None:
            num_replicas = dist.get_world_size()
        if rank is None:
            rank = dist.get_rank()
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be at least 1, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = _host_rng(self.seed + self.epoch).permutation(n).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad <= len(indices):
                indices += indices[:pad]
            else:
                indices += (indices * math.ceil(pad / len(indices)))[:pad]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch seeds the shuffle: call it before each epoch, with the same value on every
        rank."""
        self.epoch = epoch
