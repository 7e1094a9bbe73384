"""Train a two-layer MLP on MNIST digits, written exactly as in PyTorch but for the import.

    python examples/mnist_mlp.py --steps 300
    python examples/mnist_mlp.py --device cpu --dry-run      # two steps, for CI

Uses the 5,000-digit subset bundled in examples/data/ (or full IDX files with --data DIR).
"""
import argparse
import time

import clgrad as torch                      # the only line that differs from PyTorch
import clgrad.nn as nn
import clgrad.nn.functional as F
from clgrad.utils.data import DataLoader, TensorDataset

from _mnist import load


class MLP(nn.Module):
    def __init__(self, hidden=128):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):                   # (B, 28, 28)
        x = x.flatten(1)                    # (B, 784)
        x = F.relu(self.fc1(x))             # (B, hidden)
        return self.fc2(x)                  # (B, 10)


def evaluate(model, images, labels, device):
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(images, device=device))
        correct = (logits.argmax(dim=1) == torch.tensor(labels, device=device)).sum().item()
    model.train()
    return correct / len(labels)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="clgrad device spec (cl:N, gpu, cpu, name)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data", default=None, help="folder with MNIST IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="two steps, then exit")
    args = p.parse_args()
    steps = 2 if args.dry_run else args.steps

    torch.manual_seed(args.seed)
    device = torch.device(args.device) if args.device else torch.get_default_device()
    xtr, ytr, xte, yte = load(args.data, seed=args.seed)
    loader = DataLoader(TensorDataset(torch.tensor(xtr), torch.tensor(ytr)),
                        batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))

    model = MLP().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    print(f"device {device} ({device.name}); {len(xtr)} train / {len(xte)} test digits")

    step, t0 = 0, time.perf_counter()
    while step < steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0 or step == steps:
                print(f"step {step:4d}  loss {loss.item():.4f}  "
                      f"{(time.perf_counter() - t0) / step * 1e3:.1f} ms/step")
            if step == steps:
                break
    print(f"test accuracy {evaluate(model, xte, yte, device):.3f}")


if __name__ == "__main__":
    main()
