"""Packed variable-length batches for the recurrent layers: PackedSequence and PyTorch's
pack/pad helpers. Packing and padding are one device gather or scatter each; only the lengths
(sizes, which PyTorch also keeps on the host) are read back."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ...tensor import Tensor, creation
from ...tensor.shape import pad, stack


class PackedSequence(namedtuple("PackedSequence",
                                ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """A batch of sequences of different lengths, stored time step by time step: `data`
    (sum of lengths, *) holds step 0 of every sequence (longest first), then step 1 of those
    at least 2 long, ...; `batch_sizes[t]` is how many sequences have a step t.
    `sorted_indices` maps that longest-first order to the original batch (None when the batch
    was already sorted). Accepted by nn.RNN, nn.LSTM and nn.GRU."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = sorted_indices.argsort()
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        move = (lambda t: None if t is None else t.to(data.device))
        return type(self)(data, move(self.batch_sizes), move(self.sorted_indices),
                          move(self.unsorted_indices))

    def detach(self):
        return type(self)(self.data.detach(), *self[1:])

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False

    def _lengths(self):
        """Host lengths in the original batch order."""
        sizes = [int(b) for b in self.batch_sizes.tolist()]
        B = sizes[0] if sizes else 0
        by_rank = [sum(1 for s in sizes if s > j) for j in range(B)]
        if self.sorted_indices is None:
            return by_rank
        order = [int(i) for i in self.sorted_indices.tolist()]
        out = [0] * B
        for rank, b in enumerate(order):
            out[b] = by_rank[rank]
        return out


def _host_lengths(lengths):
    if isinstance(lengths, Tensor):
        lengths = lengths.tolist()
    return [int(n) for n in np.asarray(lengths).reshape(-1)]


def _order(lengths, enforce_sorted):
    """(longest-first order of the batch, or None when it is already sorted and enforced)."""
    if enforce_sorted:
        if any(a < b for a, b in zip(lengths, lengths[1:])):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when "
                               "`enforce_sorted` is True. You can pass `enforce_sorted=False` "
                               "to pack_padded_sequence and/or pack_sequence to sidestep this "
                               "requirement if you do not need ONNX exportability.")
        return None
    # a stable sort: equal lengths keep their batch order (as torch.sort does on the CPU)
    return sorted(range(len(lengths)), key=lambda b: -lengths[b])


def _rows(lengths, order, B):
    """Rows of the (T*B, *) flattening of a time-major padded batch, in packed order."""
    ranked = order if order is not None else list(range(B))
    T = max(lengths) if lengths else 0
    rows, sizes = [], []
    for t in range(T):
        alive = [b for b in ranked if lengths[b] > t]
        rows += [t * B + b for b in alive]
        sizes.append(len(alive))
    return np.asarray(rows, np.int64), np.asarray(sizes, np.int64)


def _pack(x, lengths, order):
    """Pack the time-major padded batch x (T, B, *) given host lengths and order."""
    T, B = x.shape[0], x.shape[1]
    rows, sizes = _rows(lengths, order, B)
    idx = creation.tensor(rows, dtype="int64", device=x.device)
    data = x.reshape((T * B,) + tuple(x.shape[2:])).index_select(0, idx)
    batch_sizes = creation.tensor(sizes, dtype="int64", device=x.device)
    sorted_idx = None if order is None else creation.tensor(np.asarray(order, np.int64),
                                                            dtype="int64", device=x.device)
    return PackedSequence(data, batch_sizes, sorted_idx)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) ((B, T, *) when batch_first) of sequences with the given
    lengths into a PackedSequence (one device gather).

    Example: ``pack_padded_sequence(x, [3, 2, 1])``"""
    lengths = _host_lengths(lengths)
    x = input.transpose(0, 1) if batch_first else input
    if len(lengths) != x.shape[1]:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                           f"{len(lengths)} (batch_size={x.shape[1]})")
    if any(n <= 0 for n in lengths):
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    if max(lengths) > x.shape[0]:
        raise RuntimeError(f"a length ({max(lengths)}) is longer than the padded sequence "
                           f"({x.shape[0]} steps)")
    return _pack(x, lengths, _order(lengths, enforce_sorted))


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The inverse of pack_padded_sequence: (padded batch in the original order, lengths as an
    int64 tensor). `total_length` pads to at least that many steps."""
    lengths = sequence._lengths()
    B = len(lengths)
    T = max(lengths) if lengths else 0
    if total_length is not None:
        if total_length < T:
            raise ValueError("Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {T}")
        T = total_length
    order = None if sequence.sorted_indices is None else \
        [int(i) for i in sequence.sorted_indices.tolist()]
    rows, _ = _rows(lengths, order, B)
    data = sequence.data
    feat = tuple(data.shape[1:])
    base = creation.full((T * B,) + feat, padding_value, dtype=data.dtype, device=data.device)
    idx = creation.tensor(rows, dtype="int64", device=data.device)
    out = base.index_copy(0, idx, data).reshape((T, B) + feat)
    if batch_first:
        out = out.transpose(0, 1)
    return out, creation.tensor(np.asarray(lengths, np.int64), dtype="int64")


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors (L_i, *) into one padded batch (T, B, *) ((B, T, *) when batch_first)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got "
                         f"{padding_side}.")
    seqs = list(sequences)
    if not seqs:
        raise RuntimeError("received an empty list of sequences")
    T = max(s.shape[0] for s in seqs)
    padded = []
    for s in seqs:
        extra = T - s.shape[0]
        spec = [0, 0] * (s.ndim - 1) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(pad(s, spec, value=padding_value) if extra else s)
    return stack(padded, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of tensors (L_i, *) (longest first unless enforce_sorted=False)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of sequences of a padded batch, each cut to its length."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[b].narrow(0, 0, n) for b, n in enumerate(_host_lengths(lengths))]


def unpack_sequence(packed_sequences):
    """The list of sequences of a PackedSequence, in the original batch order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
