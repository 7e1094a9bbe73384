"""Train a character-level LSTM on a short public-domain poem, then sample from it.

    PYTHONPATH=. python examples/char_lstm.py --device cl:0 --steps 150
    PYTHONPATH=. python examples/char_lstm.py --dry-run --device cl:0      # two steps, for CI

The model: Embedding -> 1-layer LSTM -> Linear over the character vocabulary, trained with
cross entropy on next-character prediction over random windows of the text. The last tenth
of the text is held out: "test accuracy" is next-character accuracy there; the poem ends by repeating its opening lines, so
this measures recall of the training text more than generalisation.
"""
import argparse
import time

import numpy as np

import clgrad
from clgrad import nn
from clgrad.nn import functional as F

# Jane Taylor, "The Star" (1806), public domain
TEXT = """twinkle, twinkle, little star,
how i wonder what you are!
up above the world so high,
like a diamond in the sky.
when the blazing sun is gone,
when he nothing shines upon,
then you show your little light,
twinkle, twinkle, all the night.
then the traveller in the dark
thanks you for your tiny spark;
he could not see which way to go,
if you did not twinkle so.
twinkle, twinkle, little star,
how i wonder what you are!
"""


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, device=None):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, device=device)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, device=device)
        self.head = nn.Linear(hidden, vocab, device=device)

    def forward(self, idx, state=None):
        x = self.embed(idx)                          # (B, T) -> (B, T, E)
        out, state = self.lstm(x, state)             # (B, T, E) -> (B, T, H)
        return self.head(out), state                 # (B, T, H) -> (B, T, V)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cl:N, cl:P:D, gpu, cpu or a name part")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--dry-run", action="store_true", help="two steps at small sizes")
    args = ap.parse_args()
    device = clgrad.device(args.device) if args.device else clgrad.get_default_device()
    steps = 2 if args.dry_run else args.steps
    hidden, T, B = (32, 16, 8) if args.dry_run else (128, 32, 16)
    clgrad.manual_seed(0)
    rng = np.random.default_rng(0)

    chars = sorted(set(TEXT))
    V = len(chars)
    ids = np.array([chars.index(c) for c in TEXT], dtype=np.int64)
    split = int(len(ids) * 0.9)
    train, test = ids[:split], ids[split - T:]
    model = CharLSTM(V, 32, hidden, device=device)
    opt = clgrad.optim.Adam(model.parameters(), lr=1e-2)
    print(f"device {device.name}, {V} characters, {len(ids)} text positions, {steps} steps")

    t0 = time.time()
    loss = None
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(train) - T - 1, size=B)
        x = clgrad.tensor(np.stack([train[s:s + T] for s in starts]), device=device)
        y = clgrad.tensor(np.stack([train[s + 1:s + T + 1] for s in starts]), device=device)
        logits, _ = model(x)                                          # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == 1 or step == steps:
            print(f"step {step:4d}  loss {loss.item():.4f}  ({time.time() - t0:.1f} s)")

    model.eval()
    with clgrad.no_grad():
        x = clgrad.tensor(test[None, :-1], device=device)             # (1, L)
        logits, _ = model(x)
        pred = logits.argmax(-1).numpy()[0, T - 1:]
        acc = float((pred == test[T:]).mean())
        # greedy sampling, feeding the state forward one character at a time
        state, c = None, clgrad.tensor([[chars.index("t")]], device=device)
        out = ["t"]
        for _ in range(60):
            logits, state = model(c, state)
            k = int(logits[0, -1].argmax().item())
            out.append(chars[k])
            c = clgrad.tensor([[k]], device=device)
    print("sample:", "".join(out).replace("\n", " / "))
    print(f"final loss {loss.item():.4f}")
    print(f"test accuracy {acc:.3f} (next character on the held-out tenth)")


if __name__ == "__main__":
    main()
