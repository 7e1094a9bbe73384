"""Train a LeNet-style CNN on MNIST digits, written exactly as in PyTorch but for the import.

    python examples/mnist_cnn.py --steps 200
    python examples/mnist_cnn.py --device cpu --dry-run      # two steps, for CI

Uses the 5,000-digit subset bundled in examples/data/ (or full IDX files with --data DIR).
"""
import argparse
import time

import clgrad as torch                      # the only line that differs from PyTorch
import clgrad.nn as nn
import clgrad.nn.functional as F
from clgrad.utils.data import DataLoader, TensorDataset

from _mnist import load


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):                           # (B, 1, 28, 28)
        x = self.pool(F.relu(self.conv1(x)))        # (B, 6, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))        # (B, 16, 5, 5)
        x = torch.flatten(x, 1)                     # (B, 400)
        x = F.relu(self.fc1(x))                     # (B, 120)
        x = F.relu(self.fc2(x))                     # (B, 84)
        return self.fc3(x)                          # (B, 10)


def evaluate(model, images, labels, device, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            x = torch.tensor(images[i:i + batch], device=device).unsqueeze(1)
            y = torch.tensor(labels[i:i + batch], device=device)
            correct += (model(x).argmax(dim=1) == y).sum().item()
    model.train()
    return correct / len(labels)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="clgrad device spec (cl:N, gpu, cpu, name)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--data", default=None, help="folder with MNIST IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="two steps, then exit")
    args = p.parse_args()
    steps = 2 if args.dry_run else args.steps

    torch.manual_seed(args.seed)
    device = torch.device(args.device) if args.device else torch.get_default_device()
    xtr, ytr, xte, yte = load(args.data, seed=args.seed)
    if args.dry_run:
        xte, yte = xte[:100], yte[:100]
    loader = DataLoader(TensorDataset(torch.tensor(xtr).unsqueeze(1), torch.tensor(ytr)),
                        batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))

    model = LeNet().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    print(f"device {device} ({device.name}); {len(xtr)} train / {len(xte)} test digits")

    step, t0 = 0, time.perf_counter()
    while step < steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0 or step == steps:
                print(f"step {step:4d}  loss {loss.item():.4f}  lr {sched.get_last_lr()[0]:.4f}  "
                      f"{(time.perf_counter() - t0) / step * 1e3:.1f} ms/step")
            if step == steps:
                break
    print(f"test accuracy {evaluate(model, xte, yte, device):.3f}")


if __name__ == "__main__":
    main()
