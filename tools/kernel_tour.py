"""One small forward and backward through every kernel family beyond the selftest's (conv, pool,
upsample, nearest (float and integer), integer max pooling, svd, sort, scatter, scan, compaction, norms, cross-entropy, embedding, RNN cells, attention,
optimizer update, dropout), for running under a checking OpenCL implementation:

    CLGRAD_NO_CACHE=1 oclgrind --data-races python tools/kernel_tour.py

Oclgrind prints any data race or out-of-bounds access it sees; a clean run prints only the values
and "families ok". It checks nothing against numpy: the test suite does that.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import clgrad as cg  # noqa: E402
import clgrad.nn as nn  # noqa: E402
import clgrad.nn.functional as F  # noqa: E402

cg.manual_seed(0)
x = cg.randn(2, 3, 9, 8, requires_grad=True)
conv = nn.Conv2d(3, 4, 3, padding=1, stride=2)
y = F.max_pool2d(conv(x), 2) + 0
y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
F.avg_pool2d(y, 2).sum().backward()
v = cg.randn(37, requires_grad=True)
s, i = v.sort(descending=True)
(s * cg.arange(37.0)).sum().backward()
z = cg.zeros(5).scatter_add(0, cg.tensor([0, 1, 1, 4, 4, 4]), cg.ones(6))
print(z, v.cumsum(0).sum().item(), (v > 0).nonzero().shape)
ln = nn.LayerNorm(8); ce = F.cross_entropy(ln(cg.randn(6, 8, requires_grad=True)), cg.tensor([0, 1, 2, 3, 4, 5]), label_smoothing=0.1)
ce.backward()
emb = nn.Embedding(10, 4); emb(cg.tensor([[1, 2, 1], [3, 1, 9]])).sum().backward()
lstm = nn.LSTM(4, 5, batch_first=True, bidirectional=True); out, _ = lstm(cg.randn(2, 3, 4)); out.sum().backward()
gru = nn.GRU(4, 5); o2, _ = gru(cg.randn(3, 2, 4)); o2.sum().backward()
q = cg.randn(2, 2, 5, 8, requires_grad=True)
F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
opt = cg.optim.AdamW(list(conv.parameters()) + list(ln.parameters()), lr=1e-3); opt.step()
bn = nn.BatchNorm2d(3); bn(x).sum().backward()
xi = (x.detach() * 10).to(cg.int32)
print(F.max_pool2d(xi, 3, 2, 1).sum().item(), F.interpolate(xi, scale_factor=1.5).shape)
F.interpolate(x, scale_factor=0.7, mode="nearest-exact").sum().backward()
a = cg.randn(2, 4, 3, dtype=cg.float64, requires_grad=True)
U, S, Vh = cg.linalg.svd(a, full_matrices=True)
((U[..., :3] ** 2).sum() + S.sum() + cg.linalg.svdvals(a.mT).sum()).backward()
print(x.softmax(1).sum().item(), F.dropout(x, 0.5).shape, x.var(dim=(0, 2)).shape, x.argmax(1).shape)
print("families ok")
