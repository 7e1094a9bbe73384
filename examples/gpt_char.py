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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # _common, _corpus from any cwd

import numpy as np  # noqa: E402

import clgrad  # noqa: E402
from clgrad import nn  # noqa: E402
from clgrad.nn import functional as F  # noqa: E402

import _common as common  # noqa: E402
import _corpus  # noqa: E402
import _text  # noqa: E402


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


def logits_of(model, x):
    return model(x)


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
    _text.add_text_args(p)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-layer", type=int, default=4)
    args = p.parse_args(argv)
    if args.dry_run:
        _text.shrink_for_dry_run(args)
        args.n_embd, args.n_head, args.n_layer = 16, 2, 1
    run = common.Run("gpt_char", args, log_fields=_text.LOG_FIELDS)
    corpus, vx, vy = _text.load_corpus(args)
    V = corpus.vocab_size
    epochs, total_steps = run.plan(args.eval_every)

    model = GPT(V, args.block, args.n_embd, args.n_head, args.n_layer, device=run.device)
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

    _text.train(run, model, opt, sched, run.jit(train_step), corpus, vx, vy, total_steps,
                logits_of=logits_of, generate=generate)


if __name__ == "__main__":
    main()
