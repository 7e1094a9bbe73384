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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # _common, _text from any cwd

import clgrad  # noqa: E402
from clgrad import nn  # noqa: E402
from clgrad.nn import functional as F  # noqa: E402

import _common as common  # noqa: E402
import _corpus  # noqa: E402
import _text  # noqa: E402


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


def logits_of(model, x):
    return model(x)[0]                               # from a zero state, as in training


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
    _text.add_text_args(p)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    args = p.parse_args(argv)
    if args.dry_run:
        _text.shrink_for_dry_run(args)
        args.embed, args.hidden, args.layers = 8, 16, 1
    run = common.Run("char_lstm", args, log_fields=_text.LOG_FIELDS)
    corpus, vx, vy = _text.load_corpus(args)
    V = corpus.vocab_size
    epochs, total_steps = run.plan(args.eval_every)

    model = CharLSTM(V, args.embed, args.hidden, args.layers, device=run.device)
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

    _text.train(run, model, opt, sched, run.jit(train_step), corpus, vx, vy, total_steps,
                logits_of=logits_of, generate=generate)


if __name__ == "__main__":
    main()
