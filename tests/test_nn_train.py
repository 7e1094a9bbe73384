"""End to end: models written as in PyTorch (only the import changed) fit a tiny batch."""
import numpy as np

import clgrad as torch
import clgrad.nn as nn
import clgrad.nn.functional as F


class MLP(nn.Module):
    def __init__(self, in_features=8, hidden=32, classes=4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(0.0),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x):
        return self.net(x)


def _sgd(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad


def test_mlp_overfits_tiny_batch(device):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((16, 8)), dtype=torch.float32, device=device)
    y = torch.tensor(rng.integers(0, 4, 16), device=device)
    model = MLP().to(device)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for step in range(60):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        _sgd(model.parameters(), 0.2)
        if first is None:
            first = loss.item()
    model.eval()
    logits = model(x)
    acc = (logits.argmax(1) == y).float().mean().item()
    assert loss.item() < 0.1 * first and acc == 1.0


def test_embedding_regressor_fits(device):
    torch.manual_seed(1)
    idx = torch.tensor([[0, 3], [1, 2], [4, 4], [2, 0]], device=device)
    target = torch.tensor([[1.0], [-1.0], [0.5], [2.0]], device=device)
    emb = nn.Embedding(5, 6).to(device)
    head = nn.Linear(6, 1).to(device)
    params = list(emb.parameters()) + list(head.parameters())
    for _ in range(80):
        for p in params:
            p.grad = None
        out = head(F.silu(emb(idx).mean(1)))
        loss = F.mse_loss(out, target)
        loss.backward()
        _sgd(params, 0.1)
    assert loss.item() < 1e-2
