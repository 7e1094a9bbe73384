"""Train a small CNN on MNIST digits, written as in PyTorch but for the import.

    python examples/mnist_cnn.py                      # the default run: >= 97% held-out accuracy
    python examples/mnist_cnn.py --device cl:1 --epochs 2
    python examples/mnist_cnn.py --checkpoint ck.ckpt --resume   # continue a killed run
    python examples/mnist_cnn.py --dry-run            # three tiny steps, for tests and CI

Uses the 5,000-digit subset bundled in examples/data/ (4,500 to train, 500 held out, split with
--seed), or the full MNIST IDX files with --data DIR. Prints the held-out accuracy after each
epoch; writes runs/mnist_cnn/metrics.csv, loss.png, confusion.csv and confusion.png (--out).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # _common, _mnist from any cwd

import clgrad as torch                      # the only line that differs from PyTorch  # noqa: E402
import clgrad.nn as nn  # noqa: E402
import clgrad.nn.functional as F  # noqa: E402
from clgrad.utils.data import DataLoader, Dataset  # noqa: E402
from clgrad.vision import transforms  # noqa: E402

import _common as common  # noqa: E402
from _mnist import load  # noqa: E402


class Digits(Dataset):
    """(1, 28, 28) images and labels from host arrays, each image through `transform`."""

    def __init__(self, images, labels, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images[i]                        # (28, 28) float32 in [0, 1]
        if self.transform is not None:
            img = self.transform(img)
        return img[None], self.labels[i]            # (1, 28, 28), ()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, padding=2)
        self.conv2 = nn.Conv2d(8, 16, 5, padding=2)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 7 * 7, 128)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):                           # (B, 1, 28, 28)
        x = self.pool(F.relu(self.conv1(x)))        # (B, 8, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))        # (B, 16, 7, 7)
        x = torch.flatten(x, 1)                     # (B, 784)
        x = self.drop(F.relu(self.fc1(x)))          # (B, 128)
        return self.fc2(x)                          # (B, 10)


def predict(model, images, batch=500):
    """Predicted labels of `images` (N, 1, 28, 28), in eval mode, without autograd."""
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            preds.append(model(images[i:i + batch]).argmax(dim=1))
    model.train()
    return torch.cat(preds)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=10, batch_size=64, lr=0.08)
    p.add_argument("--data", default=None, help="folder with MNIST IDX files")
    p.add_argument("--train-size", type=int, default=None, help="train on the first N digits")
    p.add_argument("--no-augment", action="store_true", help="no random shifts of the digits")
    args = p.parse_args()
    run = common.Run("mnist_cnn", args)
    dev = run.device

    xtr, ytr, xte, yte = load(args.data, seed=args.seed)
    if args.train_size:
        xtr, ytr = xtr[:args.train_size], ytr[:args.train_size]
    if args.dry_run:
        xtr, ytr, xte, yte = xtr[:256], ytr[:256], xte[:100], yte[:100]
    # augmentation: shift each digit by up to 2 pixels; its coin flips come from clgrad's
    # generator (saved in the checkpoint), drawn only for the batches actually loaded
    shift = None if args.no_augment else transforms.RandomCrop(28, padding=2)
    train_set = Digits(xtr, ytr, shift)
    test_x = torch.tensor(xte, device=dev).unsqueeze(1)
    test_y = torch.tensor(yte, device=dev)
    sampler = common.EpochSampler(len(train_set), args.batch_size, seed=args.seed)
    loader = DataLoader(train_set, batch_sampler=sampler, device=dev)
    epochs, total_steps = run.plan(sampler.batches_per_epoch)
    print(f"{len(xtr)} train / {len(xte)} held-out digits; {epochs} epochs, {total_steps} steps "
          f"of {args.batch_size}", flush=True)

    model = Net().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total_steps,
                                                pct_start=0.15)

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
            bar.update(samples=len(y), loss=loss, lr=sched.get_last_lr()[0])
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

    pred = predict(model, test_x)
    cm = common.confusion_matrix(pred, test_y, 10)
    common.save_confusion_matrix(cm, run.out)
    torch.save(model.state_dict(), str(run.out / "model.ckpt"))
    print(f"final held-out accuracy {cm.trace() / cm.sum():.4f} after {step} steps "
          f"in {run.elapsed():.1f} s", flush=True)
    run.finish(smooth=20)


if __name__ == "__main__":
    main()
