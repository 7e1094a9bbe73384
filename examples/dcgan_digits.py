"""Train a small conditional DCGAN on the bundled handwritten digits and check that it draws
the digits it is asked for, readably.

    python examples/dcgan_digits.py --device cl:0                   # the default run, 15 epochs
    python examples/dcgan_digits.py --checkpoint gan.ckpt --resume  # continue a killed run
    python examples/dcgan_digits.py --dry-run                       # three tiny steps, for CI
    python examples/dcgan_digits.py --unconditional --epochs 30     # the plain DCGAN (fails)

Data: the 5,000 bundled MNIST digits (examples/data/mnist_5k.npz through examples/_mnist.py;
--data DIR reads standard MNIST IDX files instead), scaled to [-1, 1]. The GAN trains on the
4,500 training digits and their labels; the 500 held out show what the judge below says of real
digits.

The models (DCGAN, Radford et al. 2015, sized for 28x28 and a CPU; made conditional on the
digit, cGAN, Mirza & Osindero 2014):
  generator: z (64) and the one-hot digit (10) -> ConvTranspose2d to 7x7 -> 14x14 -> 28x28,
             BatchNorm2d + ReLU between, Tanh at the end;
  discriminator: Conv2d 28x28 -> 14x14 -> 7x7, LeakyReLU(0.2), BatchNorm2d inside, a
             minibatch-stddev channel (ProGAN), then one logit: a 7x7 conv plus a projection
             term, the inner product of those 7x7 features with a learned vector for the image's
             digit (projection discriminator, Miyato & Koyama 2018);
trained with BCEWithLogitsLoss and Adam(lr 2e-4, betas (0.5, 0.999)), the discriminator on a
real batch with its labels (target 0.9: one-sided label smoothing, --real-label) and a generated
one asked for uniformly drawn digits, then the generator to make the discriminator say "real".
Because the digit is an input and drawn uniformly, the generator cannot drop a digit (the plain
DCGAN seldom drew 1s, 4s and 8s). Digits are drawn by an exponential moving average of the
generator's weights (--ema 0.999; its BatchNorm statistics are measured anew before each use).
--unconditional trains the plain DCGAN instead (no labels anywhere; the check then counts any
confident digit label): 40% after 30 epochs, a FAIL (docs/examples.md).
A grid of 100 digits from fixed noise, each row the digits 0-9 (unconditional: 64), is saved as
PNG after every epoch (runs/dcgan_digits/samples_epoch_NN.png, --out), with metrics.csv and
loss.png; the checkpoint (both generators, the discriminator, both optimizers) is written after
every epoch.

Quality check (printed at the end): a small CNN "judge" is trained on the 4,500 real training
digits plus made-up non-digits (class 10), then labels 500 generated digits, 50 asked for as
each digit. A generated digit counts only when the judge's label IS the digit it was asked for,
with confidence > 0.9. The check passes when at least half of the 500 count, the labels are
not collapsed (at least 8 of the 10 digits each make up >= 3% of the 500, none more than 30%),
and each digit is varied: the mean distance between two of its 50 images is at least half that
between two held-out real digits of that digit (a generator drawing one or two images per digit
fails). Noise, blobs, overlaid strokes, a generator stuck on one digit and one that draws sharp
digits but ignores the digit asked for all fail. The line also gives the judge's score on 500
held-out real digits under the same rule (their true labels as the asked-for digits): the
yardstick.
--check-every N runs the check after every N epochs too (it does not change the training).
--truncation T draws the checked and gridded digits' noise from a normal truncated at +-T (the
truncation trick, BigGAN); off by default, because on the plain DCGAN it did not help.
--lr-d gives the discriminator its own learning rate (two time-scale updates, TTUR).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # _common, _mnist from any cwd

import numpy as np  # noqa: E402

import clgrad  # noqa: E402
from clgrad import nn  # noqa: E402
from clgrad.nn import functional as F  # noqa: E402

import _common as common  # noqa: E402
import _mnist  # noqa: E402

NZ = 64


class Generator(nn.Module):
    """z (B, nz) -> (B, 1, 28, 28) in [-1, 1]; with `classes` > 0 a conditional generator
    (Mirza & Osindero 2014): the requested class y (B,) enters as a one-hot vector beside z."""

    def __init__(self, nz: int = NZ, width: int = 64, device=None, classes: int = 0):
        super().__init__()
        self.classes = classes
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz + classes, 2 * width, 7, 1, 0, bias=False, device=device),
            nn.BatchNorm2d(2 * width, device=device), nn.ReLU(True),                 # 7x7
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False, device=device),  # 14x14
            nn.BatchNorm2d(width, device=device), nn.ReLU(True),
            nn.ConvTranspose2d(width, 1, 4, 2, 1, device=device),                    # 28x28
            nn.Tanh())

    def forward(self, z, y=None):
        if self.classes:
            if y is None:
                raise ValueError("a conditional generator needs the requested classes y")
            z = clgrad.cat([z, F.one_hot(y, self.classes).float()], 1)  # (B, nz + classes)
        return self.net(z.view(z.shape[0], -1, 1, 1))                 # (B, nz) -> (B, 1, 28, 28)


class MinibatchStd(nn.Module):
    """Appends one channel holding the batch's mean feature standard deviation (ProGAN's
    minibatch-stddev): a batch of near-identical fakes has a telltale small value there, so
    the discriminator can punish a generator that drops digits or repeats itself."""

    def forward(self, x):                                             # (B, C, H, W)
        var = ((x - x.mean(0, keepdim=True)) ** 2).mean(0)            # (C, H, W) over the batch
        s = (var + 1e-8).sqrt().mean().view(1, 1, 1, 1)
        return clgrad.cat([x, s.expand(x.shape[0], 1, x.shape[2], x.shape[3])], 1)


class Discriminator(nn.Module):
    """(B, 1, 28, 28) -> one logit per image; with `classes` > 0 a projection discriminator
    (Miyato & Koyama 2018): the logit gains the inner product of the last features with a
    learned vector for the image's class, so D judges "a real digit of THIS class"."""

    def __init__(self, width: int = 64, device=None, classes: int = 0):
        super().__init__()
        self.classes = classes
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1, device=device),                             # -> 14x14
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False, device=device),         # -> 7x7
            nn.BatchNorm2d(2 * width, device=device), nn.LeakyReLU(0.2, True),
            MinibatchStd())                                                          # +1 channel
        self.head = nn.Conv2d(2 * width + 1, 1, 7, 1, 0, device=device)             # -> 1x1
        if classes:
            self.embed = nn.Embedding(classes, (2 * width + 1) * 7 * 7, device=device)

    def forward(self, x, y=None):
        h = self.features(x)                                          # (B, 2w + 1, 7, 7)
        out = self.head(h).view(-1)                                   # (B,)
        if self.classes:
            if y is None:
                raise ValueError("a conditional discriminator needs the images' classes y")
            out = out + (self.embed(y) * h.flatten(1)).sum(1)         # the projection term
        return out


def dcgan_init(module):
    """DCGAN's initialisation: conv weights (and class embeddings) N(0, 0.02), BatchNorm scale
    N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def update_ema(ema, model, decay: float):
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter (on the device)."""
    with clgrad.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1.0 - decay)


def calibrate_batchnorm(G, device, seed: int, batches: int = 8, batch: int = 250):
    """Set G's BatchNorm running statistics to its own (averaged) weights' batch statistics.

    The averaged generator never trains, so its running mean and variance are measured anew:
    reset, then a few batches of noise through it in training mode with a cumulative average."""
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    rng = np.random.default_rng([seed, 4])
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    G.train()
    with clgrad.no_grad():
        for _ in range(batches):
            z = clgrad.tensor(rng.standard_normal((batch, NZ)).astype(np.float32), device=device)
            y = (clgrad.tensor(rng.integers(0, G.classes, batch), device=device)
                 if G.classes else None)
            G(z, y)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    G.eval()


# ---- the quality check -------------------------------------------------------------------------

class Judge(nn.Module):
    """A small CNN that labels a 28x28 image as one of the digits 0-9 or as class 10, "not a
    digit" (about 97% on held-out digits when trained on the 4,500)."""

    def __init__(self, device=None):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2, device=device), nn.ReLU(), nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(16, 32, 5, padding=2, device=device), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
            nn.Flatten(), nn.Dropout(0.3),
            nn.Linear(32 * 7 * 7, 11, device=device))

    def forward(self, x):
        return self.net(x)                                            # (B, 1, 28, 28) -> (B, 11)


def not_digits(images, n: int, rng) -> np.ndarray:
    """n images that are not digits, made from real ones (float [0, 1], (N, 28, 28)): uniform
    and sparse noise, two digits overlaid, a digit with its 7x7 patches shuffled, and the mean
    digit plus noise. A classifier trained only on digits labels much of this confidently (in a
    trial, 45% of uniform noise as a "3" and 61% of overlaid pairs with confidence > 0.9), so a
    generator making such images would pass; the judge learns them as class 10 instead."""
    kinds = rng.integers(0, 5, size=n)
    pick = rng.integers(0, len(images), size=(n, 2))
    out = np.empty((n, 28, 28), np.float32)
    mean = images.mean(0)
    for i, (kind, (a, b)) in enumerate(zip(kinds, pick)):
        if kind == 0:
            img = rng.random((28, 28)) * rng.uniform(0.3, 1.0)
        elif kind == 1:
            img = (rng.random((28, 28)) < rng.uniform(0.05, 0.3)).astype(np.float32)
        elif kind == 2:
            img = np.maximum(images[a], np.roll(images[b], rng.integers(-4, 5, 2), (0, 1)))
        elif kind == 3:
            patches = images[a].reshape(4, 7, 4, 7).transpose(0, 2, 1, 3).reshape(16, 7, 7)
            img = patches[rng.permutation(16)].reshape(4, 4, 7, 7).transpose(0, 2, 1, 3)
            img = img.reshape(28, 28)
        else:
            img = np.clip(mean + rng.normal(0, 0.3, (28, 28)), 0, 1)
        out[i] = img
    return out


def train_judge(images, labels, device, epochs: int = 4, batch: int = 64, seed: int = 0,
                jit: bool = True):
    """Train a Judge on real digits (float [0, 1], (N, 28, 28)) plus half as many non-digits
    (class 10); returns it in eval mode."""
    rng = np.random.default_rng([seed, 3])
    clgrad.manual_seed(seed)
    judge = Judge(device)
    opt = clgrad.optim.Adam(judge.parameters(), lr=2e-3)

    def step(x, y):
        loss = F.cross_entropy(judge(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step = clgrad.jit(step) if jit else step
    for _ in range(epochs):
        fakes = not_digits(images, len(images) // 2, rng)
        xs = np.concatenate([images, fakes])
        ys = np.concatenate([labels, np.full(len(fakes), 10, np.int64)])
        order = rng.permutation(len(ys))
        order = order[:len(order) // batch * batch].reshape(-1, batch)
        for idx in order:
            step(clgrad.tensor(xs[idx, None], device=device), clgrad.tensor(ys[idx], device=device))
    judge.eval()
    return judge


def judge_probs(judge, images, device, batch: int = 250) -> np.ndarray:
    """The judge's class probabilities (N, 11) for images (float [0, 1], (N, 28, 28))."""
    probs = []
    with clgrad.no_grad():
        for i in range(0, len(images), batch):
            x = clgrad.tensor(np.ascontiguousarray(images[i:i + batch, None]), device=device)
            probs.append(F.softmax(judge(x), dim=1).numpy())         # read to count labels
    return np.concatenate(probs)


def mean_spread(images) -> float:
    """The mean Euclidean distance between two different images of a set (N, 28, 28): how
    varied the set is (0 for copies of one image); nan for fewer than two images."""
    f = np.asarray(images, np.float64).reshape(len(images), -1)
    if len(f) < 2:
        return float("nan")
    sq = (f * f).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * f @ f.T, 0))
    return float(d[np.triu_indices(len(f), 1)].mean())


def within_digit_spread(images, groups, real, real_labels) -> list:
    """Per digit 0-9: the mean_spread of the images in `groups` == digit over that of the real
    digits with that label (None where either side has fewer than two images). About 1 for a
    generator as varied as real handwriting; 0 for one that draws one image per digit."""
    out = []
    for c in range(10):
        mine, theirs = images[groups == c], real[real_labels == c]
        ok = len(mine) >= 2 and len(theirs) >= 2
        out.append(mean_spread(mine) / mean_spread(theirs) if ok else None)
    return out


MIN_SPREAD = 0.5    # within each digit, at least half as varied as real handwriting


def judge_digits(judge, images, device, threshold: float = 0.9, classes=None, real=None):
    """Label images (float [0, 1], (N, 28, 28)) and apply the pass rule.

    With `classes` (N ints: the digit each image was asked to be, e.g. a conditional
    generator's requested classes, or real digits' labels) an image counts only when the judge's
    label IS that digit, with probability > threshold; without, any digit label counts.
    Returns a dict: confident (the fraction that counts), histogram (how many of the N got each
    digit label; "not a digit" is not counted), classes_present (digits with >= 3% of N),
    largest (the most common digit's share), per_class (with `classes`: the fraction counted
    among the images asked to be each digit) and passed.
    With `real` (real digits and their labels, e.g. the held-out ones) it also measures variety
    within each digit (grouped by `classes`, or by the judge's labels without them):
    spread (within_digit_spread per digit) and min_spread (the least varied digit's, 0 when
    none can be measured); passing then also needs min_spread >= MIN_SPREAD, so a generator
    that draws the same few images for each digit fails."""
    probs = judge_probs(judge, images, device)                        # (N, 11)
    n = len(probs)
    label = probs.argmax(1)
    hist = np.bincount(label[label < 10], minlength=10)
    good = (label < 10) & (probs.max(1) > threshold)
    per_class = None
    if classes is not None:
        classes = np.asarray(classes)
        if classes.shape != (n,):
            raise ValueError(f"classes must hold one digit per image ({n}), got {classes.shape}")
        good &= label == classes
        per_class = [float(good[classes == c].mean()) if (classes == c).any() else None
                     for c in range(10)]
    confident = float(good.mean())
    present = int((hist >= 0.03 * n).sum())
    largest = float(hist.max() / n)
    passed = confident >= 0.5 and present >= 8 and largest <= 0.3
    spread = min_spread = None
    if real is not None:
        groups = classes if classes is not None else np.where(label < 10, label, -1)
        spread = within_digit_spread(np.asarray(images), groups, *real)
        measured = [v for v in spread if v is not None]
        min_spread = float(min(measured)) if measured else 0.0
        passed = passed and min_spread >= MIN_SPREAD
    return {"confident": confident, "histogram": hist.tolist(), "rejected": int(n - hist.sum()),
            "classes_present": present, "per_class": per_class, "spread": spread,
            "min_spread": min_spread, "largest": largest, "passed": passed}


def describe(result) -> str:
    if result.get("per_class") is None:
        what = "of the digits labelled with confidence > 0.9"
        detail = ""
    else:
        what = "of the digits labelled as the digit asked for with confidence > 0.9"
        detail = ("; per digit asked for: " +
                  " ".join(f"{c}:{f:.0%}" for c, f in enumerate(result["per_class"])
                           if f is not None))
    variety = ""
    if result.get("min_spread") is not None:
        variety = (f"; variety within a digit, against real ones: least {result['min_spread']:.2f} "
                   f"(need >= {MIN_SPREAD:g}), " +
                   " ".join(f"{c}:{v:.2f}" for c, v in enumerate(result["spread"])
                            if v is not None))
    return (f"{result['confident']:.1%} {what} "
            f"(need >= 50%); {result['classes_present']} digits with >= 3% of the labels "
            f"(need >= 8), the most common has {result['largest']:.1%} (need <= 30%); "
            f"labels 0-9: {result['histogram']}, not a digit: {result['rejected']}{detail}"
            f"{variety} -> "
            f"{'PASS' if result['passed'] else 'FAIL'}")


def truncated_normal(rng, shape, truncation: float | None = None) -> np.ndarray:
    """Standard normal noise (float32) with every entry of magnitude > `truncation` drawn again
    until none is left (the truncation trick, Brock et al. 2018); None or 0: plain normal."""
    z = rng.standard_normal(shape)
    if truncation:
        if truncation < 0:
            raise ValueError(f"truncation must be positive (or 0 for none), got {truncation}")
        bad = np.abs(z) > truncation
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > truncation
    return z.astype(np.float32)


def requested_classes(n: int, classes: int) -> np.ndarray:
    """The digits a conditional generator is asked for when drawing n: 0, 1, ..., 9, 0, 1, ...
    (uniform, so none can be dropped)."""
    return np.arange(n) % classes


def generate(G, n: int, device, seed: int, batch: int = 250,
             truncation: float | None = None) -> np.ndarray:
    """n generated digits as float [0, 1], (n, 28, 28), from noise drawn with `seed`
    (truncated at `truncation`, see truncated_normal); a conditional G is asked for the digits
    requested_classes(n, G.classes)."""
    z = truncated_normal(np.random.default_rng(seed), (n, NZ), truncation)
    y = requested_classes(n, G.classes) if G.classes else None
    out = []
    G.eval()
    with clgrad.no_grad():
        for i in range(0, n, batch):
            yb = clgrad.tensor(y[i:i + batch], device=device) if y is not None else None
            out.append(G(clgrad.tensor(z[i:i + batch], device=device), yb).numpy())
    G.train()
    return (np.concatenate(out)[:, 0] + 1) / 2


# ---- training -----------------------------------------------------------------------------------

LOG_FIELDS = ("step", "epoch", "d_loss", "g_loss", "d_real", "d_fake", "confident",
              "samples_per_s", "time_s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=15, batch_size=32, lr=2e-4)
    p.add_argument("--data", default=None, help="folder with MNIST IDX files")
    p.add_argument("--width", type=int, default=32, help="channels of the widest conv layer / 2")
    p.add_argument("--train-size", type=int, default=None, help="train on the first N digits")
    p.add_argument("--judge-epochs", type=int, default=4, help="epochs of the judge's training")
    p.add_argument("--ema", type=float, default=0.999,
                   help="decay of the generator's weight average used for sampling (0: off)")
    p.add_argument("--lr-d", type=float, default=None,
                   help="the discriminator's learning rate (default: --lr, which then sets "
                        "the generator's only)")
    p.add_argument("--real-label", type=float, default=0.9,
                   help="target for real digits in D's loss (one-sided label smoothing)")
    p.add_argument("--truncation", type=float, default=0.0, metavar="T",
                   help="draw the checked and gridded digits' noise from a normal truncated at "
                        "+-T (the truncation trick; 0: no truncation)")
    p.add_argument("--unconditional", action="store_true",
                   help="the plain DCGAN: no class labels in G or D (the check then counts any "
                        "confident digit label)")
    p.add_argument("--check-every", type=int, default=0, metavar="N",
                   help="also run the quality check after every N epochs (default: at the end)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.width, args.batch_size, args.judge_epochs = 4, 8, 1
    run = common.Run("dcgan_digits", args, log_fields=LOG_FIELDS)
    device = run.device
    train_x, train_y, held_x, held_y = _mnist.load(args.data, seed=args.seed)
    if args.train_size:
        train_x, train_y = train_x[:args.train_size], train_y[:args.train_size]
    if args.dry_run:
        train_x, train_y = train_x[:200], train_y[:200]
        held_x, held_y = held_x[:100], held_y[:100]
    real = clgrad.tensor(train_x[:, None] * 2 - 1, device=device)   # (N, 1, 28, 28) in [-1, 1]
    real_y = clgrad.tensor(train_y.astype(np.int64), device=device)  # (N,) their digits
    classes = 0 if args.unconditional else 10

    G = Generator(NZ, args.width, device, classes)
    D = Discriminator(args.width, device, classes)
    dcgan_init(G)
    dcgan_init(D)
    G_ema = Generator(NZ, args.width, device, classes) if args.ema else None
    if G_ema is not None:
        G_ema.load_state_dict(G.state_dict())
        G_ema.eval()
    opt_g = clgrad.optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = clgrad.optim.Adam(D.parameters(), lr=args.lr_d or args.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    B = args.batch_size
    real_target = clgrad.full((B,), args.real_label, device=device)
    ones = clgrad.ones(B, device=device)
    zeros = clgrad.zeros(B, device=device)
    sampler = common.EpochSampler(len(train_x), B, seed=args.seed)
    epochs, total_steps = run.plan(sampler.batches_per_epoch)
    print(f"{len(train_x):,} training digits; {epochs} epochs, {total_steps} steps of {B}; "
          f"{'conditional on the digit' if classes else 'unconditional'}; "
          f"generator {sum(p.numel() for p in G.parameters()):,} and discriminator "
          f"{sum(p.numel() for p in D.parameters()):,} parameters", flush=True)

    def d_step(x, yx, z, yz):                 # real digits x of classes yx; noise z, classes yz
        yx, yz = (yx, yz) if classes else (None, None)
        fake = G(z, yz).detach()                                      # (B, 1, 28, 28)
        real_logits, fake_logits = D(x, yx), D(fake, yz)              # (B,), (B,)
        loss = bce(real_logits, real_target) + bce(fake_logits, zeros)
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        # D's mean belief that real digits are real and that fakes are real
        return loss, real_logits.sigmoid().mean(), fake_logits.sigmoid().mean()

    def g_step(z, yz):
        yz = yz if classes else None
        loss = bce(D(G(z, yz), yz), ones)                             # "make D say real"
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        return loss

    d_step, g_step = run.jit(d_step), run.jit(g_step)
    sampler_G = G_ema if G_ema is not None else G                     # what draws the digits

    def draw(z, y):
        if G_ema is not None:
            calibrate_batchnorm(G_ema, device, args.seed)
        sampler_G.eval()
        with clgrad.no_grad():
            out = (sampler_G(z, y) + 1) / 2                           # in [0, 1]
        G.train()
        return out

    judge = None

    def check(tag):
        nonlocal judge
        if judge is None:
            judge = train_judge(train_x, train_y, device, epochs=args.judge_epochs,
                                seed=args.seed, jit=not args.no_jit)
        if G_ema is not None:
            calibrate_batchnorm(G_ema, device, args.seed)
        result = judge_digits(judge, generate(sampler_G, 500, device, args.seed + 7,
                                              truncation=args.truncation), device,
                              classes=asked, real=(held_x[:500], held_y[:500]))
        real = judge_digits(judge, held_x[:500], device,          # the judge's own yardstick
                            classes=held_y[:500] if classes else None)["confident"]
        print(f"quality check {tag} ({trunc_note}): {describe(result)} "
              f"[the judge gives held-out real digits {real:.1%}]", flush=True)
        return result

    asked = requested_classes(500, classes) if classes else None    # the checked digits' classes
    trunc_note = f"noise truncated at {args.truncation:g}" if args.truncation else "no truncation"
    n_grid, nrow = (100, 10) if classes else (64, 8)                  # conditional: rows of 0-9
    fixed = clgrad.tensor(truncated_normal(np.random.default_rng([args.seed, 1]), (n_grid, NZ),
                                           args.truncation), device=device)
    fixed_y = clgrad.tensor(requested_classes(n_grid, classes), device=device) if classes else None
    ckpt = run.checkpoint(generator=G, discriminator=D, opt_g=opt_g, opt_d=opt_d,
                          generator_ema=G_ema)
    state = ckpt.resume()
    step = state["step"]
    for epoch in range(state["epoch"], epochs):
        if step >= total_steps:
            break
        sampler.set_epoch(epoch, skip=state["batch"] if epoch == state["epoch"] else 0)
        bar = run.progress(sampler.batches_per_epoch, f"epoch {epoch + 1}/{epochs}")
        bar.update(sampler.skip)
        t0, seen = time.perf_counter(), 0
        for batch, idx in enumerate(sampler, start=sampler.skip):
            noise = np.random.default_rng([args.seed, 2, step])       # noise = f(seed, step)
            z1, z2 = noise.standard_normal((2, B, NZ)).astype(np.float32)
            y1, y2 = noise.integers(0, max(classes, 1), (2, B))       # fakes' classes, uniform
            idx = clgrad.tensor(idx, device=device)
            x, yx = real[idx], real_y[idx]                            # (B, 1, 28, 28), (B,)
            d_loss, d_real, d_fake = (t.item() for t in d_step(
                x, yx, clgrad.tensor(z1, device=device), clgrad.tensor(y1, device=device)))
            g_loss = g_step(clgrad.tensor(z2, device=device),
                            clgrad.tensor(y2, device=device)).item()
            if G_ema is not None:                                     # warm-up: short memory first
                update_ema(G_ema, G, min(args.ema, (1 + step) / (10 + step)))
            step += 1
            seen += B
            bar.update(samples=B, d_loss=d_loss, g_loss=g_loss)
            run.log.write(step=step, epoch=epoch + 1, d_loss=d_loss, g_loss=g_loss,
                          d_real=d_real, d_fake=d_fake)
            ckpt.maybe_save(step, epoch=epoch, batch=batch + 1)
            if step >= total_steps:
                break
        bar.close()
        rate = seen / max(time.perf_counter() - t0, 1e-9)
        png = common.save_image_grid(draw(fixed, fixed_y),
                                     run.out / f"samples_epoch_{epoch + 1:02d}.png", nrow=nrow)
        run.log.write(step=step, epoch=epoch + 1, samples_per_s=rate, time_s=run.elapsed())
        print(f"epoch {epoch + 1}/{epochs}  loss D {d_loss:.3f}  G {g_loss:.3f}  D(real) "
              f"{d_real:.2f}  D(fake) {d_fake:.2f}  {rate:,.0f} samples/s  "
              f"{run.elapsed():.0f} s  -> {png.name}", flush=True)
        ckpt.save(epoch=epoch + 1, batch=0, step=step)
        if args.check_every and (epoch + 1) % args.check_every == 0 and epoch + 1 < epochs:
            check(f"after epoch {epoch + 1}")
    train_time = run.elapsed()
    clgrad.save(sampler_G.state_dict(), str(run.out / "generator.ckpt"))

    result = check("on 500 generated digits")
    real_check = judge_digits(judge, held_x[:500], device,
                              classes=held_y[:500] if classes else None)
    if G_ema is not None:
        raw = judge_digits(judge, generate(G, 500, device, args.seed + 7,
                                           truncation=args.truncation), device, classes=asked,
                           real=(held_x[:500], held_y[:500]))
        print(f"  (the generator's last weights instead of their average: {describe(raw)})")
    run.log.write(step=step, confident=result["confident"], time_s=run.elapsed())
    print(f"judge on {min(len(held_x), 500)} held-out real digits: {describe(real_check)}")
    print(f"training {train_time:.0f} s, total {run.elapsed():.0f} s; sample grids in {run.out}",
          flush=True)
    run.finish(losses=("d_loss", "g_loss"), accuracies=(), smooth=20)


if __name__ == "__main__":
    main()
