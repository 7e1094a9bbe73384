"""Train a two-layer MLP on MNIST digits, written as in PyTorch but for the import.

    python examples/mnist_mlp.py                      # the default run: >= 94% held-out accuracy
    python examples/mnist_mlp.py --device cl:1 --epochs 5
    python examples/mnist_mlp.py --checkpoint ck.ckpt --resume   # continue a killed run
    python examples/mnist_mlp.py --dry-run            # three tiny steps, for tests and CI

Uses the 5,000-digit subset bundled in examples/data/ (4,500 to train, 500 held out, split with
--seed), or the full MNIST IDX files with --data DIR. Prints the held-out accuracy after each
epoch; writes runs/mnist_mlp/metrics.csv and loss.png (--out).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # _common, _mnist from any cwd

import clgrad as torch                      # the only line that differs from PyTorch  # noqa: E402
import clgrad.nn as nn  # noqa: E402
import clgrad.nn.functional as F  # noqa: E402
from clgrad.utils.data import DataLoader, TensorDataset  # noqa: E402

import _common as common  # noqa: E402
from _mnist import load  # noqa: E402


class MLP(nn.Module):
    def __init__(self, hidden=512):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):                   # (B, 28, 28)
        x = x.flatten(1)                    # (B, 784)
        x = self.drop(F.relu(self.fc1(x)))  # (B, hidden)
        return self.fc2(x)                  # (B, 10)


def predict(model, images):
    """Predicted labels of `images` (N, 28, 28), in eval mode, without autograd."""
    model.eval()
    with torch.no_grad():
        pred = model(images).argmax(dim=1)
    model.train()
    return pred


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=20, batch_size=64, lr=2e-3)
    p.add_argument("--data", default=None, help="folder with MNIST IDX files")
    p.add_argument("--train-size", type=int, default=None, help="train on the first N digits")
    args = p.parse_args()
    run = common.Run("mnist_mlp", args)
    dev = run.device

    xtr, ytr, xte, yte = load(args.data, seed=args.seed)
    if args.train_size:
        xtr, ytr = xtr[:args.train_size], ytr[:args.train_size]
    if args.dry_run:
        xtr, ytr, xte, yte = xtr[:256], ytr[:256], xte[:100], yte[:100]
    train_set = TensorDataset(torch.tensor(xtr, device=dev), torch.tensor(ytr, device=dev))
    test_x, test_y = torch.tensor(xte, device=dev), torch.tensor(yte, device=dev)
    sampler = common.EpochSampler(len(train_set), args.batch_size, seed=args.seed)
    loader = DataLoader(train_set, batch_sampler=sampler, device=dev)
    epochs, total_steps = run.plan(sampler.batches_per_epoch)
    print(f"{len(xtr)} train / {len(xte)} held-out digits; {epochs} epochs, {total_steps} steps "
          f"of {args.batch_size}", flush=True)

    model = MLP().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)

    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step_fn = run.jit(train_step)
    ckpt = run.checkpoint(model=model, optimizer=opt, scheduler=sched)
    state = ckpt.resume()
    step = state["step"]

    for epoch in range(state["epoch"], epochs):
        if step >= total_steps:
            break
        sampler.set_epoch(epoch, skip=state["batch"] if epoch == state["epoch"] else 0)
        bar = run.progress(sampler.batches_per_epoch, f"epoch {epoch + 1}/{epochs}",
                           initial=sampler.skip)
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        for batch, (x, y) in enumerate(loader, start=sampler.skip):
            loss = step_fn(x, y).item()     # read now: the next jit replay overwrites it
            sched.step()
            step += 1
            seen += len(y)
            loss_sum += loss * len(y)
            bar.update(samples=len(y), loss=loss)
            run.log.write(step=step, epoch=epoch + 1, loss=loss)
            ckpt.maybe_save(step, epoch=epoch, batch=batch + 1)
            if step >= total_steps:
                break
        bar.close()
        dt = time.perf_counter() - t0
        acc = (predict(model, test_x) == test_y).float().mean().item()
        rate = seen / dt if dt > 0 else 0.0
        run.log.write(step=step, epoch=epoch + 1, accuracy=acc, samples_per_s=rate,
                      time_s=run.elapsed())
        print(f"epoch {epoch + 1}/{epochs}  train loss {loss_sum / max(seen, 1):.4f}  "
              f"held-out accuracy {acc:.4f}  {rate:,.0f} samples/s  {run.elapsed():.1f} s",
              flush=True)
        ckpt.save(epoch=epoch + 1, batch=0, step=step)

    acc = (predict(model, test_x) == test_y).float().mean().item()
    torch.save(model.state_dict(), str(run.out / "model.ckpt"))
    print(f"final held-out accuracy {acc:.4f} after {step} steps in {run.elapsed():.1f} s",
          flush=True)
    run.finish(smooth=20)


if __name__ == "__main__":
    main()
