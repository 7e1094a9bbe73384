"""Plumbing shared by the examples: common flags, device choice, a progress bar, CSV/PNG metrics,
atomic checkpoints with bit-identical resume, and the optional `clgrad.jit` of a train step.

The examples stay PyTorch-like scripts: each one writes out its model, its loop and its loss;
this module only does what every script would otherwise copy. A typical script::

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=4, batch_size=64, lr=0.05)
    args = p.parse_args()
    run = common.Run("mnist_cnn", args)            # seeds, prints the device first, makes --out
    model = Net().to(run.device)
    opt = clgrad.optim.SGD(model.parameters(), lr=args.lr)
    sampler = common.EpochSampler(len(train_set), args.batch_size, seed=args.seed)
    loader = DataLoader(train_set, batch_sampler=sampler)
    epochs, total_steps = run.plan(sampler.batches_per_epoch)   # --epochs, --steps, --dry-run
    ckpt = run.checkpoint(model=model, optimizer=opt)
    state = ckpt.resume()                 # with --resume: the saved epoch, batch and step
    step_fn = run.jit(train_step)         # clgrad.jit unless --no-jit

    step = state["step"]
    for epoch in range(state["epoch"], epochs):
        sampler.set_epoch(epoch, skip=state["batch"] if epoch == state["epoch"] else 0)
        bar = run.progress(sampler.batches_per_epoch, f"epoch {epoch + 1}/{epochs}",
                           initial=sampler.skip)
        for batch, (x, y) in enumerate(loader, start=sampler.skip):
            loss = step_fn(x, y).item()
            step += 1
            bar.update(samples=len(y), loss=loss)
            run.log.write(step=step, epoch=epoch + 1, loss=loss)
            ckpt.maybe_save(step, epoch=epoch, batch=batch + 1)     # --checkpoint-every N
        bar.close()
        ckpt.save(epoch=epoch + 1, batch=0, step=step)               # after every epoch
    run.finish()

Data order is reproducible from a checkpoint: EpochSampler's order is a pure function of
(--seed, epoch), and a resumed epoch skips the batches already done without loading them.
Together with the saved model, optimizer, scheduler and RNG states (clgrad's default
generator, Python's `random` and numpy's global RNG), a run killed with SIGKILL and started again
with --resume ends with the same weights, bit for bit, as an uninterrupted run with that seed.
"""
from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

import clgrad

DRY_RUN_STEPS = 3


# ---------------------------------------------------------------------------------------------
# flags and setup

def add_common_args(parser: argparse.ArgumentParser, *, epochs: int | None = None,
                    steps: int | None = None, batch_size: int = 64, lr: float = 1e-3,
                    seed: int = 0) -> argparse.ArgumentParser:
    """Add the flags every example takes, with the script's own defaults.

    Training length: --epochs E and/or --steps N. With --steps alone, epochs repeat until N
    optimizer steps are done; with both, whichever ends first; with neither, the script's
    `epochs` (or `steps`). --dry-run runs a few tiny steps.
    """
    parser.set_defaults(default_epochs=epochs)
    g = parser.add_argument_group("common example options")
    g.add_argument("--device", default=None,
                   help="clgrad device spec (cl:N as `python -m clgrad devices` lists, gpu, cpu, "
                        "a name substring); default: clgrad's default device")
    g.add_argument("--epochs", type=int, default=None,
                   help=f"epochs (default {epochs})" if epochs else "epochs")
    g.add_argument("--steps", type=int, default=steps,
                   help="stop after this many optimizer steps" +
                        (f" (default {steps})" if steps else " (default: all epochs)"))
    g.add_argument("--batch-size", type=int, default=batch_size,
                   help=f"batch size (default {batch_size})")
    g.add_argument("--lr", type=float, default=lr, help=f"learning rate (default {lr:g})")
    g.add_argument("--seed", type=int, default=seed, help=f"random seed (default {seed})")
    g.add_argument("--dry-run", action="store_true",
                   help=f"{DRY_RUN_STEPS} tiny steps on little data, for tests and CI")
    g.add_argument("--out", default=None, help="folder for CSV, PNG and the default checkpoint "
                   "(default: runs/<example> in the current folder)")
    g.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="checkpoint file, written atomically after each epoch "
                        "(default: <out>/checkpoint.ckpt)")
    g.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="also write the checkpoint every N steps inside an epoch (default: off)")
    g.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint if it exists (bit-identical to an "
                        "uninterrupted run with the same flags)")
    g.add_argument("--no-jit", action="store_true",
                   help="run the train step eagerly instead of replaying it with clgrad.jit")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def describe_device(device) -> str:
    """One line naming a clgrad device: spec, name, platform and driver."""
    return (f"device {device.spec}: {device.name.strip()} "
            f"({device.platform_name.strip()}, driver {device.driver_version})")


def seed_everything(seed: int) -> None:
    """Seed clgrad's default generator, Python's `random` and numpy's global RNG."""
    clgrad.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def plan(args: argparse.Namespace, batches_per_epoch: int) -> tuple[int, int]:
    """(epochs, total_steps) from --epochs, --steps and --dry-run.

    --steps alone runs as many epochs as it takes; both given cap each other; neither: the
    script's default epochs; --dry-run runs DRY_RUN_STEPS steps in one epoch.
    """
    if batches_per_epoch < 1:
        raise ValueError("the data loader yields no batch: lower --batch-size")
    if args.dry_run:
        return 1, min(DRY_RUN_STEPS, batches_per_epoch)
    epochs = args.epochs
    if epochs is None and args.steps is None:
        epochs = getattr(args, "default_epochs", None)
        if epochs is None:
            raise ValueError("give --epochs or --steps")
    if epochs is None:
        epochs = math.ceil(args.steps / batches_per_epoch)
    total = epochs * batches_per_epoch
    if args.steps is not None:
        total = min(total, args.steps)
    if total < 1:
        raise ValueError(f"nothing to train: --epochs {epochs}, --steps {args.steps}")
    return epochs, total


class Run:
    """What one run of an example shares: its flags, device, output folder and metrics log.

    Creating it seeds every RNG with --seed, picks the device and prints it (the first line an
    example prints), and makes the output folder.

    Attributes:
        name: the example's name (`mnist_cnn`).
        args: the parsed flags.
        device: the clgrad device.
        out: the output folder (Path).
        log: the step/epoch `MetricsLog` writing `<out>/metrics.csv`.
    """

    def __init__(self, name: str, args: argparse.Namespace, *, log_fields=None):
        self.name = name
        self.args = args
        seed_everything(args.seed)
        self.device = clgrad.device(args.device) if args.device else clgrad.get_default_device()
        print(describe_device(self.device), flush=True)
        self.out = Path(args.out if args.out else Path("runs") / name)
        self.out.mkdir(parents=True, exist_ok=True)
        fields = log_fields or ("step", "epoch", "loss", "accuracy", "samples_per_s", "time_s")
        self.log = MetricsLog(self.out / "metrics.csv", fields)
        self.t0 = time.perf_counter()
        self._ckpt = None

    # training length ------------------------------------------------------------------------
    def plan(self, batches_per_epoch: int) -> tuple[int, int]:
        """(epochs, total_steps) for this run: see `plan`."""
        return plan(self.args, batches_per_epoch)

    # helpers ----------------------------------------------------------------------------------
    def progress(self, total: int, desc: str = "", unit: str = "samples",
                 initial: int = 0) -> "Progress":
        """A Progress bar on stderr, silent with --no-progress."""
        return Progress(total, desc, unit=unit, initial=initial,
                        enabled=not self.args.no_progress)

    def jit(self, fn, **kwargs):
        """`clgrad.jit(fn)` unless --no-jit (then `fn` itself)."""
        return fn if self.args.no_jit else clgrad.jit(fn, **kwargs)

    def checkpoint(self, **objects) -> "Checkpoint":
        """A Checkpoint (at --checkpoint, or <out>/checkpoint.ckpt) over these objects: anything
        with state_dict/load_state_dict, or a clgrad.Generator (get_state/set_state)."""
        path = self.args.checkpoint or self.out / "checkpoint.ckpt"
        self._ckpt = Checkpoint(path, log=self.log, every=self.args.checkpoint_every,
                                map_location=self.device, resume=self.args.resume, **objects)
        return self._ckpt

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def finish(self, plot: bool = True, **plot_kwargs) -> None:
        """Flush the CSV and, when matplotlib is importable, draw the loss curve PNG."""
        self.log.close()
        if plot:
            path = plot_metrics(self.log, self.out / "loss.png", title=self.name, **plot_kwargs)
            if path:
                print(f"wrote {self.log.path} and {path}")
            else:
                print(f"wrote {self.log.path} (no matplotlib: no PNG)")


class EpochSampler:
    """Batches of indices whose order is a pure function of (seed, epoch): a batch sampler for
    `DataLoader(dataset, batch_sampler=sampler)` that makes the data order resumable.

    Like torch's DistributedSampler, call `set_epoch(epoch)` before each epoch; `skip` drops the
    first batches of that epoch (those trained on before a resume) without loading them, so a
    dataset's random transforms are not drawn for them. `num_replicas`/`rank` give each process
    its own slice of every epoch's permutation (for data-parallel runs).

    Args:
        n: dataset size.
        batch_size: samples per batch (per replica).
        seed: the run's seed.
        shuffle: False keeps the order 0..n-1 every epoch.
        drop_last: drop a last, incomplete batch.
        num_replicas, rank: split each permutation into `num_replicas` equal slices.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, *, shuffle: bool = True,
                 drop_last: bool = True, num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} not in [0, {num_replicas})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.skip = 0

    @property
    def per_replica(self) -> int:
        return self.n // self.num_replicas

    @property
    def batches_per_epoch(self) -> int:
        """Batches in a whole epoch (independent of `skip`)."""
        if self.drop_last:
            return self.per_replica // self.batch_size
        return math.ceil(self.per_replica / self.batch_size)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self, epoch: int) -> np.ndarray:
        """This replica's sample indices for `epoch`, in training order."""
        idx = (np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle
               else np.arange(self.n))
        m = self.per_replica
        return idx[self.rank * m:(self.rank + 1) * m]

    def __iter__(self):
        idx = self.order(self.epoch)
        for b in range(self.skip, self.batches_per_epoch):
            yield idx[b * self.batch_size:(b + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return max(self.batches_per_epoch - self.skip, 0)


# ---------------------------------------------------------------------------------------------
# progress bar

class Progress:
    """A progress bar on stderr: steps done, last loss (and any other values), samples/s, ETA.

    On a terminal it redraws one line (at most 10 times a second); otherwise (a log file, a
    pipe, CI) it prints a plain line every `interval` seconds and one at the end. Disabled, it
    prints nothing. `initial` steps count as done already (a resumed epoch) but not in the ETA.
    """

    def __init__(self, total: int, desc: str = "", *, unit: str = "samples", enabled=True,
                 stream=None, interval: float = 10.0, width: int = 24, initial: int = 0):
        self.total, self.desc, self.unit, self.width = max(int(total), 1), desc, unit, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.1 if self.tty else interval
        self.n = self.initial = int(initial)
        self.samples = 0
        self.values: dict = {}
        self.t0 = time.perf_counter()
        self._last = self.t0
        self._closed = False

    def update(self, n: int = 1, samples: int = 0, **values) -> None:
        """Count `n` more steps of `samples` samples; `values` (e.g. loss=0.31) are shown."""
        self.n += n
        self.samples += samples
        self.values.update(values)
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.interval or self.n >= self.total):
            self._last = now
            self._draw(now)

    @property
    def rate(self) -> float:
        """Samples per second so far."""
        dt = time.perf_counter() - self.t0
        return self.samples / dt if dt > 0 else 0.0

    def line(self, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        dt = now - self.t0
        frac = min(self.n / self.total, 1.0)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        vals = "  ".join(f"{k} {_fmt(v)}" for k, v in self.values.items())
        rate = f"{self.samples / dt:,.0f} {self.unit}/s" if dt > 0 and self.samples else ""
        done = self.n - self.initial
        eta = _clock(dt / done * (self.total - self.n)) if done > 0 else "?"
        parts = [self.desc, f"[{bar}] {self.n}/{self.total}", vals, rate,
                 f"ETA {eta}" if self.n < self.total else f"in {_clock(dt)}"]
        return "  ".join(p for p in parts if p)

    def _draw(self, now: float) -> None:
        if self.tty:
            self.stream.write("\r" + self.line(now) + "\x1b[K")
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# ---------------------------------------------------------------------------------------------
# metrics: CSV always, PNG when matplotlib is there

class MetricsLog:
    """Rows of metrics appended to a CSV file as they come (flushed each row).

    The columns are fixed at construction; a row may leave any of them out (empty cell) and may
    not add others. `rows` keeps everything written, so a checkpoint can store it and a resume can
    rewrite the file as it was at that checkpoint (`restore`).
    """

    def __init__(self, path, fields):
        self.path = Path(path)
        self.fields = list(fields)
        self.rows: list[dict] = []
        self._f = None

    def _open(self, mode: str):
        self._f = open(self.path, mode, newline="")
        self._w = csv.DictWriter(self._f, fieldnames=self.fields)

    def write(self, **row) -> None:
        unknown = set(row) - set(self.fields)
        if unknown:
            raise ValueError(f"{self.path.name}: no column(s) {sorted(unknown)}; "
                             f"columns are {self.fields}")
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        if self._f is None:
            self._open("w")
            self._w.writeheader()
            for r in self.rows:
                self._w.writerow(r)
        self.rows.append(row)
        self._w.writerow(row)
        self._f.flush()

    def restore(self, rows) -> None:
        """Replace the log by `rows` (from a checkpoint) and rewrite the file."""
        self.rows = [dict(r) for r in rows]
        if self._f is not None:
            self._f.close()
        self._open("w")
        self._w.writeheader()
        for r in self.rows:
            self._w.writerow(r)
        self._f.flush()

    def column(self, name: str, x: str = "step"):
        """(xs, ys) of the rows that have both `x` and `name`."""
        pts = [(r[x], r[name]) for r in self.rows
               if r.get(x) not in (None, "") and r.get(name) not in (None, "")]
        return [p[0] for p in pts], [p[1] for p in pts]

    def close(self) -> None:
        if self._f is None:
            self._open("w")
            self._w.writeheader()
        self._f.close()
        self._f = None


def read_csv(path) -> list[dict]:
    """Rows of a metrics CSV as dicts of floats (empty cells left out)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in (None, "")}
                for r in csv.DictReader(f)]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_metrics(log: MetricsLog, path, *, x: str = "step", losses=("loss",),
                 accuracies=("accuracy",), title: str = "", smooth: int = 0):
    """Loss curve(s) against `x` (log scale) and, in a second panel when the log has any,
    accuracy column(s); returns the PNG path, or None when matplotlib is not installed.
    `smooth` > 1 adds a running mean of that many points to each loss curve."""
    plt = _pyplot()
    if plt is None:
        return None
    acc = [(name, log.column(name, x)) for name in accuracies]
    acc = [(n, c) for n, c in acc if c[0]]
    fig, axes = plt.subplots(1, 2 if acc else 1, figsize=(10 if acc else 6, 3.6), dpi=80,
                             squeeze=False)
    ax = axes[0][0]
    for name in losses:
        xs, ys = log.column(name, x)
        if xs:
            ax.plot(xs, ys, lw=0.7, alpha=0.45 if smooth > 1 else 1.0, label=name)
            if smooth > 1 and len(ys) >= smooth:
                k = np.ones(smooth) / smooth
                ax.plot(xs[smooth - 1:], np.convolve(ys, k, mode="valid"), lw=1.6,
                        label=f"{name}, mean of {smooth}")
    ax.set_xlabel(x)
    ax.set_ylabel("loss")
    if any(v > 0 for name in losses for v in log.column(name, x)[1]):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(f"{title} training loss" if title else "training loss")
    if acc:
        ax2 = axes[0][1]
        for name, (xs, ys) in acc:
            ax2.plot(xs, ys, "o-", label=name)
            ax2.annotate(f"{ys[-1]:.3f}", (xs[-1], ys[-1]), textcoords="offset points",
                         xytext=(-10, -14), ha="right")
        ax2.set_xlabel(x)
        ax2.set_ylabel("held-out accuracy")
        ax2.grid(alpha=0.3)
        ax2.legend(loc="lower right")
        ax2.set_title("held-out accuracy")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def confusion_matrix(pred, target, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = true class, columns = predicted.

    `pred` and `target` are label tensors or arrays (read back to the host: this is reporting,
    not training)."""
    p = np.asarray(pred.numpy() if hasattr(pred, "numpy") else pred).astype(np.int64).ravel()
    t = np.asarray(target.numpy() if hasattr(target, "numpy") else target).astype(np.int64).ravel()
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def save_confusion_matrix(cm: np.ndarray, out_dir, name: str = "confusion", labels=None):
    """Write `<name>.csv` always and `<name>.png` when matplotlib is there; returns the paths."""
    out_dir = Path(out_dir)
    labels = [str(i) for i in range(len(cm))] if labels is None else [str(s) for s in labels]
    csv_path = out_dir / f"{name}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\pred"] + labels)
        for lab, row in zip(labels, cm):
            w.writerow([lab] + [int(v) for v in row])
    paths = [csv_path]
    plt = _pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(5, 4.5), dpi=90)
        im = ax.imshow(cm, cmap="Blues")
        for i in range(len(cm)):
            for j in range(len(cm)):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > cm.max() / 2 else "black")
        ax.set_xticks(range(len(cm)), labels)
        ax.set_yticks(range(len(cm)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        acc = np.trace(cm) / max(cm.sum(), 1)
        ax.set_title(f"confusion matrix (accuracy {acc:.3f})")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.png")
        plt.close(fig)
        paths.append(out_dir / f"{name}.png")
    return paths


def save_image_grid(images, path, nrow: int = 8, normalize: bool = False, value_range=None):
    """Tile a (B, C, H, W) tensor of images into one PNG (clgrad.vision.utils.save_image: no
    matplotlib needed). Values in [0, 1], or give normalize=True / value_range=(lo, hi)."""
    from clgrad.vision.utils import save_image
    save_image(images, str(path), nrow=nrow, normalize=normalize, value_range=value_range)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# checkpoints

class Checkpoint:
    """Everything a bit-identical resume needs, in one file written atomically (clgrad.save).

    Holds the `state_dict()` of every object given (model, optimizer, scheduler, ...), the
    state of any clgrad.Generator given (e.g. a DataLoader's), clgrad's default RNG state,
    Python's and numpy's global RNG states, the metrics rows so far, and whatever the script
    passes to `save` (epoch, batch within the epoch, step, ...).

    Args:
        path: the checkpoint file.
        log: a MetricsLog to save and restore (optional).
        every: `maybe_save` writes every `every` steps (0: never, only explicit `save`).
        map_location: device tensors are loaded onto.
        resume: whether `resume()` loads the file (--resume).
        **objects: name -> object with state_dict()/load_state_dict(), or a clgrad.Generator
            (get_state/set_state).
    """

    FORMAT = "clgrad-example-checkpoint/1"

    def __init__(self, path, *, log: MetricsLog | None = None, every: int = 0,
                 map_location=None, resume: bool = False, **objects):
        self.path = Path(path)
        self.resume_requested = resume
        self.log = log
        self.every = every
        self.map_location = map_location
        self.objects = objects
        self.saved_steps = 0

    def state(self, **extra) -> dict:
        objs = {}
        for name, obj in self.objects.items():
            if obj is None:
                continue
            objs[name] = obj.get_state() if isinstance(obj, clgrad.Generator) else obj.state_dict()
        return {"format": self.FORMAT, "objects": objs, "extra": extra,
                "rng": {"clgrad": clgrad.get_rng_state(), "python": random.getstate(),
                        "numpy": np.random.get_state()},
                "metrics": list(self.log.rows) if self.log is not None else []}

    def save(self, **extra) -> Path:
        """Write the checkpoint now (atomically: a kill leaves the old file or the new one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clgrad.save(self.state(**extra), str(self.path))
        self.saved_steps += 1
        return self.path

    def maybe_save(self, step: int, **extra) -> bool:
        """Save if --checkpoint-every divides `step`; `step` is saved as extra["step"] too."""
        if self.every and step % self.every == 0:
            self.save(step=step, **extra)
            return True
        return False

    def load(self) -> dict:
        """Restore every object and RNG from the file; return the saved extras."""
        st = clgrad.load(str(self.path), map_location=self.map_location)
        if not isinstance(st, dict) or st.get("format") != self.FORMAT:
            raise ValueError(f"{self.path} is not a checkpoint written by examples/_common.py")
        missing = set(self.objects) - set(st["objects"])
        if missing:
            raise ValueError(f"{self.path} has no state for {sorted(missing)}")
        for name, obj in self.objects.items():
            if obj is None:
                continue
            if isinstance(obj, clgrad.Generator):
                obj.set_state(st["objects"][name])
            else:
                obj.load_state_dict(st["objects"][name])
        clgrad.set_rng_state(st["rng"]["clgrad"])
        random.setstate(st["rng"]["python"])
        np.random.set_state(st["rng"]["numpy"])
        if self.log is not None:
            self.log.restore(st["metrics"])
        return dict(st["extra"])

    def resume(self, default: dict | None = None) -> dict:
        """With --resume (`resume=True`) and an existing file: load it and return its extras
        (printing where it continues); otherwise return `default` (epoch, batch, step 0)."""
        default = dict(default or {"epoch": 0, "batch": 0, "step": 0})
        if not self.resume_requested:
            return default
        if not self.path.exists():
            print(f"--resume: no checkpoint at {self.path} yet, starting from scratch",
                  flush=True)
            return default
        extra = self.load()
        default.update(extra)
        where = ", ".join(f"{k} {v}" for k, v in extra.items())
        print(f"resumed from {self.path} ({where})", flush=True)
        return default
