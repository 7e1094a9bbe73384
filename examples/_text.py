"""What the character-level language models (char_lstm.py, gpt_char.py) share: the text flags,
loading the corpus, the training loop over random windows, evaluation in nats and bits per
character, and the report with a sample. Each script keeps its model, its optimizer and its
train step; this module runs them the same way."""
import argparse
import time

import numpy as np

import clgrad
from clgrad.nn import functional as F

import _corpus

LOG_FIELDS = ("step", "epoch", "loss", "lr", "val_loss", "val_bpc", "accuracy", "chars_per_s",
              "time_s")


def add_text_args(p: argparse.ArgumentParser, *, block: int = 64) -> None:
    """The flags of the data, the evaluation and the samples."""
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: the stdlib text)")
    p.add_argument("--max-bytes", type=int, default=_corpus.DEFAULT_BYTES,
                   help="read at most this many bytes of text")
    p.add_argument("--block", type=int, default=block, help="characters per training window")
    p.add_argument("--eval-every", type=int, default=200,
                   help="steps between evaluations, samples and checkpoints (one 'epoch')")
    p.add_argument("--sample-chars", type=int, default=240)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=10, help="sample among the k likeliest (0: all)")


def shrink_for_dry_run(args: argparse.Namespace) -> None:
    """--dry-run: a little text, tiny windows and batches, an evaluation after the 3 steps."""
    args.max_bytes, args.eval_every, args.sample_chars = 60_000, 3, 40
    args.block, args.batch_size = 16, 4


def load_corpus(args: argparse.Namespace):
    """The corpus (printed with its digest) and its fixed validation windows (x, y)."""
    corpus = _corpus.load(args.data, args.max_bytes, seed=args.seed)
    print(f"data: {corpus.description} (sha256 {corpus.digest}); {corpus.vocab_size} distinct "
          f"characters, {len(corpus.train):,} train / {len(corpus.val):,} validation", flush=True)
    vx, vy = _corpus.eval_windows(corpus.val, args.block, max_windows=4 if args.dry_run else 256)
    return corpus, vx, vy


def evaluate(logits_of, model, x, y, device, batch: int = 64):
    """Mean cross entropy (nats per character) and next-character accuracy over fixed windows;
    `logits_of(model, xb)` gives the (b, T, V) logits."""
    model.eval()
    total, correct, n = 0.0, 0, 0
    with clgrad.no_grad():
        for i in range(0, len(x), batch):
            xb = clgrad.tensor(x[i:i + batch], device=device)
            yb = clgrad.tensor(y[i:i + batch], device=device)
            logits = logits_of(model, xb)                              # (b, T, V)
            flat = logits.reshape(-1, logits.shape[-1])
            total += F.cross_entropy(flat, yb.reshape(-1), reduction="sum").item()
            correct += int((flat.argmax(-1) == yb.reshape(-1)).sum().item())
            n += yb.numel()
    model.train()
    return total / n, correct / n


def train(run, model, optimizer, scheduler, step_fn, corpus, vx, vy, total_steps: int, *,
          logits_of, generate):
    """The training loop: `step_fn(x, y)` (the script's train step, maybe under clgrad.jit)
    on random windows drawn from (seed, step), the scheduler stepped after each; every
    --eval-every steps an evaluation, a sample and the checkpoint. Resumes with --resume.
    Returns the final (nats, accuracy)."""
    args, device = run.args, run.device
    ckpt = run.checkpoint(model=model, optimizer=optimizer, scheduler=scheduler)
    step = ckpt.resume()["step"]
    prompt = corpus.decode(corpus.val[:args.block // 2])
    chars_per_step = args.batch_size * args.block

    def report(rate):
        nats, acc = evaluate(logits_of, model, vx, vy, device)
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
            scheduler.step()
            bar.update(samples=chars_per_step, loss=loss, lr=scheduler.get_last_lr()[0])
            run.log.write(step=step + 1, epoch=epoch + 1, loss=loss,
                          lr=scheduler.get_last_lr()[0])
            ckpt.maybe_save(step + 1, epoch=epoch, batch=step + 1 - epoch * args.eval_every)
        step = end
        bar.close()
        result = report(bar.samples / max(time.perf_counter() - t0, 1e-9))
        ckpt.save(epoch=epoch + 1, batch=0, step=step)
    if result is None:                                  # resumed a finished run
        result = report(0.0)
    nats, acc = result
    clgrad.save(model.state_dict(), str(run.out / "model.ckpt"))
    print(f"final val loss {nats:.4f} nats/char = {_corpus.bits_per_char(nats):.3f} bits/char, "
          f"next-character accuracy {acc:.3f}, after {step} steps in {run.elapsed():.1f} s",
          flush=True)
    run.finish(losses=("loss", "val_loss"), accuracies=("accuracy",), smooth=20)
    return nats, acc
