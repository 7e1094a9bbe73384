"""Train a nanoGPT-style character-level Transformer, printing samples as it learns.

    python examples/gpt_char.py --device cl:0                   # the default run, 1000 steps
    python examples/gpt_char.py --data book.txt --steps 5000    # your own text
    python examples/gpt_char.py --checkpoint gpt.ckpt --resume  # continue a killed run
    python examples/gpt_char.py --dry-run                       # three tiny steps, for CI

Data: --data FILE (UTF-8), or by default the first 1,000,000 bytes of the running Python's
standard library (its top-level *.py files in name order; examples/_corpus.py), which every
machine has without a network. The text is cut into 4 KiB pieces and a tenth of them, picked by
--seed, is the validation set.

The model: token + position embeddings -> N pre-norm blocks (causal self-attention through
F.scaled_dot_product_attention(is_causal=True), then a GELU MLP, each with a residual) -> final
LayerNorm -> a head that shares the token embedding's weight (weight tying). Trained with AdamW
(weight decay on matrices only), linear warmup then cosine decay of the learning rate, gradient
clipping at norm 1. Validation loss is reported in nats and in bits per character (nats / ln 2);
samples use --temperature and --top-k. Every --eval-every steps (an "epoch" here) it evaluates,
prints a sample and writes the checkpoint; runs/gpt_char/ (--out) gets metrics.csv and loss.png.
"""
import argparse
import math
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


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, device=None):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not a multiple of n_head {n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, device=device)
        self.proj = nn.Linear(n_embd, n_embd, device=device)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)                         # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)   # (B, H, T, C/H)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)   # (B, H, T, C/H)
        y = y.transpose(1, 2).contiguous().view(B, T, C)              # (B, T, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, device=None):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd, device=device)
        self.attn = CausalSelfAttention(n_embd, n_head, device=device)
        self.ln2 = nn.LayerNorm(n_embd, device=device)
        self.fc = nn.Linear(n_embd, 4 * n_embd, device=device)
        self.proj = nn.Linear(4 * n_embd, n_embd, device=device)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))           # (B, T, C) via (B, T, 4C)


class GPT(nn.Module):
    def __init__(self, vocab: int, block: int, n_embd: int, n_head: int, n_layer: int,
                 device=None):
        super().__init__()
        self.block = block
        self.tok = nn.Embedding(vocab, n_embd, device=device)
        self.pos = nn.Embedding(block, n_embd, device=device)
        self.blocks = nn.ModuleList([Block(n_embd, n_head, device=device)
                                     for _ in range(n_layer)])
        self.ln = nn.LayerNorm(n_embd, device=device)
        self.head = nn.Linear(n_embd, vocab, bias=False, device=device)
        self.head.weight = self.tok.weight                            # weight tying
        # GPT-2's initialisation: small normal weights, residual projections scaled down by
        # the depth so the residual stream's variance does not grow with the number of blocks
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.ndim == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        B, T = idx.shape
        where = clgrad.arange(T, device=idx.device)
        x = self.tok(idx) + self.pos(where)                           # (B, T) -> (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))                                  # (B, T, C) -> (B, T, V)


def warmup_cosine(warmup: int, total: int, floor: float = 0.1):
    """Learning-rate factor: linear from 0 to 1 over `warmup` steps, then a half cosine down
    to `floor` at step `total` (nanoGPT's schedule)."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min((step - warmup) / max(total - warmup, 1), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    return factor


def evaluate(model, x, y, device, batch: int = 64):
    """Mean cross entropy (nats per character) and next-character accuracy over fixed windows."""
    model.eval()
    total, correct, n = 0.0, 0, 0
    with clgrad.no_grad():
        for i in range(0, len(x), batch):
            xb = clgrad.tensor(x[i:i + batch], device=device)
            yb = clgrad.tensor(y[i:i + batch], device=device)
            logits = model(xb)                                        # (b, T, V)
            flat = logits.reshape(-1, logits.shape[-1])
            total += F.cross_entropy(flat, yb.reshape(-1), reduction="sum").item()
            correct += int((flat.argmax(-1) == yb.reshape(-1)).sum().item())
            n += yb.numel()
    model.train()
    return total / n, correct / n


def generate(model, corpus, prompt: str, length: int, device, temperature: float,
             top_k, rng) -> str:
    """Extend `prompt` by `length` characters, one forward pass each over the last block."""
    model.eval()
    ids = list(corpus.encode(prompt))
    with clgrad.no_grad():
        for _ in range(length):
            ctx = clgrad.tensor(np.array([ids[-model.block:]]), device=device)
            logits = model(ctx)[0, -1].numpy()                        # (V,), read to sample
            ids.append(_corpus.sample_next(logits, temperature, top_k, rng))
    model.train()
    return corpus.decode(ids[len(prompt):])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, steps=1000, batch_size=32, lr=2e-3)
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: the stdlib text)")
    p.add_argument("--max-bytes", type=int, default=_corpus.DEFAULT_BYTES,
                   help="read at most this many bytes of text")
    p.add_argument("--block", type=int, default=64, help="context length in characters")
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--eval-every", type=int, default=200,
                   help="steps between evaluations, samples and checkpoints (one 'epoch')")
    p.add_argument("--sample-chars", type=int, default=240)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=10, help="sample among the k likeliest (0: all)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.max_bytes, args.eval_every, args.sample_chars = 60_000, 3, 40
        args.block, args.n_embd, args.n_head, args.n_layer, args.batch_size = 16, 16, 2, 1, 4
    run = common.Run("gpt_char", args, log_fields=LOG_FIELDS)
    device = run.device

    corpus = _corpus.load(args.data, args.max_bytes, seed=args.seed)
    V = corpus.vocab_size
    print(f"data: {corpus.description} (sha256 {corpus.digest}); {V} distinct characters, "
          f"{len(corpus.train):,} train / {len(corpus.val):,} validation", flush=True)
    vx, vy = _corpus.eval_windows(corpus.val, args.block, max_windows=4 if args.dry_run else 256)
    epochs, total_steps = run.plan(args.eval_every)

    model = GPT(V, args.block, args.n_embd, args.n_head, args.n_layer, device=device)
    decay = [p for p in model.parameters() if p.ndim >= 2]           # matrices and embeddings
    no_decay = [p for p in model.parameters() if p.ndim < 2]         # biases and norm scales
    opt = clgrad.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=args.lr, betas=(0.9, 0.99))
    warmup = max(1, min(100, total_steps // 10))
    sched = clgrad.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup, total_steps))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.n_layer} blocks, {args.n_head} heads, width {args.n_embd}, context "
          f"{args.block}; {n_params:,} parameters; {total_steps} steps of {args.batch_size} "
          f"windows", flush=True)

    def train_step(x, y):
        logits = model(x)                                             # (B, T, V)
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
