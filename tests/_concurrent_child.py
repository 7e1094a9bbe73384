"""A fresh process's first ops (run several at once by tests/test_concurrent_processes.py):
prints a digest of the results, which every copy must print identically."""
import hashlib
import sys

import numpy as np

import clgrad
import clgrad.nn.functional as F

dev = sys.argv[1] if len(sys.argv) > 1 else None
clgrad.manual_seed(0)
a = clgrad.randn(2, 3, device=dev) @ clgrad.randn(3, 5, device=dev)
x = clgrad.randn(4, 3, 8, 8, device=dev, requires_grad=True)
w = clgrad.randn(6, 3, 3, 3, device=dev, requires_grad=True)
y = F.conv2d(x, w, padding=1).relu().max_pool2d(2) if hasattr(clgrad.Tensor, "max_pool2d") \
    else F.max_pool2d(F.conv2d(x, w, padding=1).relu(), 2)
loss = F.cross_entropy(y.reshape(4, -1)[:, :10], clgrad.tensor([1, 2, 3, 4], device=dev))
loss.backward()
parts = [a.numpy(), np.array([loss.item()]), w.grad.numpy(), y.detach().softmax(-1).numpy()]
h = hashlib.sha256()
for p in parts:
    h.update(np.ascontiguousarray(p).tobytes())
print("DIGEST", h.hexdigest())
