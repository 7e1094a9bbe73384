"""Advanced indexing (integer and boolean tensor indices) for reading and assignment."""
from __future__ import annotations


def advanced_getitem(x, idx):
    raise NotImplementedError("indexing with tensors or lists arrives with the autograd issue")


def advanced_setitem(x, idx, value):
    raise NotImplementedError("assignment with tensor or list indices arrives with the autograd "
                              "issue")
