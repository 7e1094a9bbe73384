"""Training script for tests/test_kill_resume.py: a tiny MLP with dropout, AdamW and OneCycleLR
over a shuffled DataLoader, checkpointed atomically after every step. Started again after a
kill, it resumes from the newest checkpoint; the finished run must equal an uninterrupted one
bit for bit.

    python tests/_kill_resume_train.py OUT_DIR DEVICE [EPOCHS]

Resume recipe (also in docs/reliability.md): the checkpoint holds the model, optimizer and
scheduler state_dicts, clgrad's RNG state (dropout) and, for the data order, the shuffling
generator's state at the start of the current epoch plus the number of batches already done
in it; on resume the generator is rewound to that state and those batches are skipped.
Prints "begin K" before saving step K and "saved K" after, flushing each line."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import clgrad  # noqa: E402
import clgrad.nn as nn  # noqa: E402
from clgrad.utils.data import DataLoader, TensorDataset  # noqa: E402

BATCHES_PER_EPOCH = 6
BATCH = 8


def main(out, device, epochs):
    dev = clgrad.runtime.get_device(device)
    clgrad.manual_seed(1234)
    rng = np.random.default_rng(0)
    x = clgrad.tensor(rng.standard_normal((BATCH * BATCHES_PER_EPOCH, 5)).astype("float32"),
                      device=dev)
    y = clgrad.tensor(rng.integers(0, 3, BATCH * BATCHES_PER_EPOCH), device=dev)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)).to(dev)
    opt = clgrad.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    total = epochs * BATCHES_PER_EPOCH
    sched = clgrad.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-2, total_steps=total)
    gen = clgrad.Generator().manual_seed(99)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, generator=gen)
    ckpt = os.path.join(out, "ckpt.pt")
    step, epoch, done_in_epoch, epoch_gen = 0, 0, 0, gen.get_state()
    if os.path.exists(ckpt):
        st = clgrad.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optim"])
        sched.load_state_dict(st["sched"])
        clgrad.set_rng_state(st["rng"])
        step, epoch, done_in_epoch = st["step"], st["epoch"], st["done_in_epoch"]
        epoch_gen = st["epoch_gen"]
    model.train()
    while epoch < epochs:
        gen.set_state(epoch_gen)          # the shuffle of this epoch, drawn afresh
        for b, (xb, yb) in enumerate(loader):
            if b < done_in_epoch:
                continue                  # batches this epoch already trained on
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            done_in_epoch = b + 1
            if done_in_epoch == BATCHES_PER_EPOCH:
                epoch, done_in_epoch, epoch_gen = epoch + 1, 0, gen.get_state()
            print(f"begin {step}", flush=True)
            clgrad.save({"model": model.state_dict(), "optim": opt.state_dict(),
                         "sched": sched.state_dict(), "rng": clgrad.get_rng_state(),
                         "step": step, "epoch": epoch, "done_in_epoch": done_in_epoch,
                         "epoch_gen": epoch_gen}, ckpt)
            print(f"saved {step}", flush=True)
            if done_in_epoch == 0:
                break
    clgrad.save({k: v for k, v in model.state_dict().items()}, os.path.join(out, "final.pt"))
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
