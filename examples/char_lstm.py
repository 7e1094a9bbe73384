"""Train a character-level LSTM language model, printing samples as it learns.

    python examples/char_lstm.py --device cl:0                   # the default run, 600 steps
    python examples/char_lstm.py --data book.txt --steps 3000    # your own text
    python examples/char_lstm.py --checkpoint lstm.ckpt --resume # continue a killed run
    python examples/char_lstm.py --dry-run                       # three tiny steps, for CI

Data: --data FILE (UTF-8), or by default the first 1,000,000 bytes of the running Python's
standard library (its top-level *.py files in name order; examples/_corpus.py), which every
machine has without a network. The text is cut into 4 KiB pieces and a tenth of them, picked by
--seed, is the validation set.

The model: Embedding -> nn.LSTM (2 layers) -> Linear over the character vocabulary, trained with
cross entropy on next-character prediction over random windows (truncated backpropagation
through time over --block characters, each window starting from a zero state). Adam, gradient
clipping at norm 1, the learning rate decayed by a cosine to a tenth. Validation loss is
reported in nats and in bits per character (nats / ln 2); samples use --temperature and --top-k
and carry the LSTM state forward one character at a time. Every --eval-every steps (an "epoch"
here) it evaluates, prints a sample and writes the checkpoint; runs/char_lstm/ (--out) gets
metrics.csv and loss.png.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # _common, _corpus from any cwd

import numpy as np  # noqa: E402

import clgrad  # noqa: E402
from clgrad import nn  # noqa: E402
from clgrad.nn import functional as F  # noqa: E402

import _common as common  # noqa: E402
import _corpus  # noqa: E402

LOG_FIELDS = ("step", "epoch", "loss", "lr", "val_loss", "val_bpc", "accuracy", "chars_per_s",
              "time_s")


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, device=None):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, device=device)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, device=device)
        self.head = nn.Linear(hidden, vocab, device=device)

    def forward(self, idx, state=None):
        x = self.embed(idx)                          # (B, T) -> (B, T, E)
        out, state = self.lstm(x, state)             # (B, T, E) -> (B, T, H)
        return self.head(out), state                 # (B, T, H) -> (B, T, V)


def evaluate(model, x, y, device, batch: int = 64):
    """Mean cross entropy (nats per character) and next-character accuracy over fixed windows,
    each from a zero state (as in training)."""
    model.eval()
    total, correct, n = 0.0, 0, 0
    with clgrad.no_grad():
        for i in range(0, len(x), batch):
            xb = clgrad.tensor(x[i:i + batch], device=device)
            yb = clgrad.tensor(y[i:i + batch], device=device)
            logits, _ = model(xb)                                     # (b, T, V)
            flat = logits.reshape(-1, logits.shape[-1])
            total += F.cross_entropy(flat, yb.reshape(-1), reduction="sum").item()
            correct += int((flat.argmax(-1) == yb.reshape(-1)).sum().item())
            n += yb.numel()
    model.train()
    return total / n, correct / n


def generate(model, corpus, prompt: str, length: int, device, temperature: float,
             top_k, rng) -> str:
    """Read `prompt` once, then feed each sampled character back with the carried state."""
    model.eval()
    out = []
    with clgrad.no_grad():
        logits, state = model(clgrad.tensor(corpus.encode(prompt)[None], device=device))
        for _ in range(length):
            k = _corpus.sample_next(logits[0, -1].numpy(), temperature, top_k, rng)
            out.append(k)
            logits, state = model(clgrad.tensor([[k]], device=device), state)
    model.train()
    return corpus.decode(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, steps=600, batch_size=32, lr=3e-3)
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: the stdlib text)")
    p.add_argument("--max-bytes", type=int, default=_corpus.DEFAULT_BYTES,
                   help="read at most this many bytes of text")
    p.add_argument("--block", type=int, default=64, help="characters per training window")
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=200,
                   help="steps between evaluations, samples and checkpoints (one 'epoch')")
    p.add_argument("--sample-chars", type=int, default=240)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=10, help="sample among the k likeliest (0: all)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.max_bytes, args.eval_every, args.sample_chars = 60_000, 3, 40
        args.block, args.embed, args.hidden, args.layers, args.batch_size = 16, 8, 16, 1, 4
    run = common.Run("char_lstm", args, log_fields=LOG_FIELDS)
    device = run.device

    corpus = _corpus.load(args.data, args.max_bytes, seed=args.seed)
    V = corpus.vocab_size
    print(f"data: {corpus.description} (sha256 {corpus.digest}); {V} distinct characters, "
          f"{len(corpus.train):,} train / {len(corpus.val):,} validation", flush=True)
    vx, vy = _corpus.eval_windows(corpus.val, args.block, max_windows=4 if args.dry_run else 256)
    epochs, total_steps = run.plan(args.eval_every)

    model = CharLSTM(V, args.embed, args.hidden, args.layers, device=device)
    opt = clgrad.optim.Adam(model.parameters(), lr=args.lr)
    sched = clgrad.optim.lr_scheduler.CosineAnnealingLR(opt, total_steps, eta_min=args.lr / 10)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.layers}-layer LSTM, hidden {args.hidden}, embedding {args.embed}; "
          f"{n_params:,} parameters; {total_steps} steps of {args.batch_size} x {args.block}",
          flush=True)

    def train_step(x, y):
        logits, _ = model(x)                                          # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    step_fn = run.jit(train_step)
    ckpt = run.checkpoint(model=model, optimizer=opt, scheduler=sched)
    step = ckpt.resume()["step"]
    prompt = corpus.decode(corpus.val[:args.block // 2])
    chars_per_step = args.batch_size * args.block
    result = None
    while step < total_steps:
        epoch = step // args.eval_every
        end = min((epoch + 1) * args.eval_every, total_steps)
        bar = run.progress(end - epoch * args.eval_every,
                           f"steps {epoch * args.eval_every + 1}-{end}", unit="chars")
        bar.update(step - epoch * args.eval_every)
        t0 = time.perf_counter()
        for step in range(step, end):
            rng = np.random.default_rng([args.seed, step])            # data order = f(seed, step)
            x, y = _corpus.batch(corpus.train, args.block, args.batch_size, rng)
            loss = step_fn(clgrad.tensor(x, device=device), clgrad.tensor(y, device=device))
            loss = loss.item()                  # read now: the next jit replay overwrites it
            sched.step()
            bar.update(samples=chars_per_step, loss=loss, lr=sched.get_last_lr()[0])
            run.log.write(step=step + 1, epoch=epoch + 1, loss=loss, lr=sched.get_last_lr()[0])
            ckpt.maybe_save(step + 1, epoch=epoch, batch=step + 1 - epoch * args.eval_every)
        step = end
        bar.close()
        rate = bar.samples / max(time.perf_counter() - t0, 1e-9)
        result = report(model, corpus, vx, vy, prompt, args, device, step, rate, run)
        ckpt.save(epoch=epoch + 1, batch=0, step=step)
    if result is None:                                  # resumed a finished run
        result = report(model, corpus, vx, vy, prompt, args, device, step, 0.0, run)
    nats, acc = result
    clgrad.save(model.state_dict(), str(run.out / "model.ckpt"))
    print(f"final val loss {nats:.4f} nats/char = {_corpus.bits_per_char(nats):.3f} bits/char, "
          f"next-character accuracy {acc:.3f}, after {step} steps in {run.elapsed():.1f} s",
          flush=True)
    run.finish(losses=("loss", "val_loss"), accuracies=("accuracy",), smooth=20)


def report(model, corpus, vx, vy, prompt, args, device, step, rate, run):
    """Evaluate, log and print the validation loss, then print a sample."""
    nats, acc = evaluate(model, vx, vy, device)
    bpc = _corpus.bits_per_char(nats)
    run.log.write(step=step, val_loss=nats, val_bpc=bpc, accuracy=acc, chars_per_s=rate,
                  time_s=run.elapsed())
    print(f"step {step:5d}  val loss {nats:.4f} nats = {bpc:.3f} bits/char  "
          f"accuracy {acc:.3f}  {rate:,.0f} chars/s  {run.elapsed():.0f} s", flush=True)
    text = generate(model, corpus, prompt, args.sample_chars, device, args.temperature,
                    args.top_k, np.random.default_rng([args.seed, step]))
    print(f"--- sample at step {step} (temperature {args.temperature}, top-k {args.top_k}; "
          f"the prompt is the first {len(prompt)} validation characters) ---")
    print(prompt + text)
    print("---", flush=True)
    return nats, acc


if __name__ == "__main__":
    main()
