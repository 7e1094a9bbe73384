"""Train a tiny GPT-style causal Transformer on a short public-domain text, then sample.

    PYTHONPATH=. python examples/tiny_gpt.py --device cl:0 --steps 200
    PYTHONPATH=. python examples/tiny_gpt.py --dry-run --device cl:0       # two steps, for CI

The model: token + position embeddings -> a stack of pre-norm TransformerEncoderLayers run
with a square subsequent (causal) mask -> LayerNorm -> Linear over the character vocabulary,
trained on next-character prediction. The last tenth of the text is held out: "test accuracy"
is next-character accuracy there; the poem ends by repeating its opening lines, so this
measures recall of the training text more than generalisation.
"""
import argparse
import time

import numpy as np

import clgrad
from clgrad import nn
from clgrad.nn import functional as F

# Lewis Carroll, "How Doth the Little Crocodile" (1865), public domain
TEXT = """how doth the little crocodile
improve his shining tail,
and pour the waters of the nile
on every golden scale!
how cheerfully he seems to grin,
how neatly spreads his claws,
and welcomes little fishes in
with gently smiling jaws!
how doth the little crocodile
improve his shining tail,
and pour the waters of the nile
on every golden scale!
"""


class TinyGPT(nn.Module):
    def __init__(self, vocab: int, block: int, d_model: int, nhead: int, layers: int,
                 device=None):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model, device=device)
        self.pos = nn.Embedding(block, d_model, device=device)
        layer = nn.TransformerEncoderLayer(d_model, nhead, 4 * d_model, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True, device=device)
        self.blocks = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(d_model, device=device)
        self.head = nn.Linear(d_model, vocab, device=device)

    def forward(self, idx):
        T = idx.shape[1]
        where = clgrad.arange(T, device=idx.device)
        x = self.tok(idx) + self.pos(where)                           # (B, T) -> (B, T, C)
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=idx.device)
        x = self.blocks(x, mask=mask, is_causal=True)                 # (B, T, C)
        return self.head(self.norm(x))                                # (B, T, C) -> (B, T, V)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cl:N, cl:P:D, gpu, cpu or a name part")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--dry-run", action="store_true", help="two steps at small sizes")
    args = ap.parse_args()
    device = clgrad.device(args.device) if args.device else clgrad.get_default_device()
    steps = 2 if args.dry_run else args.steps
    d_model, T, B = (16, 16, 4) if args.dry_run else (64, 32, 16)
    clgrad.manual_seed(0)
    rng = np.random.default_rng(0)

    chars = sorted(set(TEXT))
    V = len(chars)
    ids = np.array([chars.index(c) for c in TEXT], dtype=np.int64)
    split = int(len(ids) * 0.9)
    train, test = ids[:split], ids[split - T:]
    model = TinyGPT(V, T, d_model, 4, 2, device=device)
    opt = clgrad.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    print(f"device {device.name}, {V} characters, {len(ids)} text positions, {steps} steps")

    t0 = time.time()
    loss = None
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(train) - T - 1, size=B)
        x = clgrad.tensor(np.stack([train[s:s + T] for s in starts]), device=device)
        y = clgrad.tensor(np.stack([train[s + 1:s + T + 1] for s in starts]), device=device)
        logits = model(x)                                             # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == 1 or step == steps:
            print(f"step {step:4d}  loss {loss.item():.4f}  ({time.time() - t0:.1f} s)")

    model.eval()
    with clgrad.no_grad():
        # every held-out position predicted from the T characters before it
        n = len(test) - T
        windows = np.stack([test[i:i + T] for i in range(n)])        # (n, T)
        logits = model(clgrad.tensor(windows, device=device))
        pred = logits[:, -1].argmax(-1).numpy()
        acc = float((pred == test[T:]).mean())
        ctx = list(ids[:T])                                           # greedy sampling
        for _ in range(60):
            logits = model(clgrad.tensor(np.array([ctx[-T:]]), device=device))
            ctx.append(int(logits[0, -1].argmax().item()))
    print("sample:", "".join(chars[i] for i in ctx[T:]).replace("\n", " / "))
    print(f"final loss {loss.item():.4f}")
    print(f"test accuracy {acc:.3f} (next character on the held-out tenth)")


if __name__ == "__main__":
    main()
