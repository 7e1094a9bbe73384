"""Every example script (examples/*.py but the private _modules) runs top to bottom with
--dry-run on each test device, from a foreign working directory: it exits 0, prints the device
first, and writes a metrics CSV whose losses are finite numbers."""
import argparse
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
# every example is on examples/_common.py (the common flags, --out, the CSV); the set stays so
# that a script written without it is named by the test below
LEGACY = {p.stem for p in EXAMPLES if "import _common" not in p.read_text()}


def test_every_example_uses_the_toolkit():
    assert not LEGACY, f"{sorted(LEGACY)} do not use examples/_common.py"


def _losses(csv_path):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = [c for c in (rows[0].keys() if rows else []) if "loss" in c]
    return [float(r[c]) for r in rows for c in cols if r[c] not in (None, "")]


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_dry_run(script, device, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, str(script), "--dry-run", "--device", device.spec]
    if script.stem not in LEGACY:
        args += ["--out", str(out), "--no-progress"]
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines and lines[0].startswith("device "), r.stdout
    if script.stem in LEGACY:
        return
    assert lines[0].startswith(f"device {device.spec}: {device.name.strip()}"), lines[0]
    csvs = sorted(out.glob("*.csv"))
    assert csvs, f"{script.name} wrote no CSV into --out: {sorted(out.iterdir())}"
    losses = [v for p in csvs for v in _losses(p)]
    assert losses, f"no loss column with values in {[p.name for p in csvs]}"
    assert all(math.isfinite(v) for v in losses), losses
    assert not (tmp_path / "runs").exists(), "--out was not honoured"


# ---- examples/_common.py's pieces, without a device -------------------------------------------

@pytest.fixture
def common():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import _common
        yield _common
    finally:
        sys.path.remove(str(ROOT / "examples"))


def _args(common, *argv):
    p = common.add_common_args(argparse.ArgumentParser(), epochs=3, batch_size=8, lr=0.1)
    return p.parse_args(list(argv))


def test_common_args_and_plan(common):
    a = _args(common)
    assert (a.default_epochs, a.steps, a.batch_size, a.lr, a.seed) == (3, None, 8, 0.1, 0)
    assert not (a.dry_run or a.resume or a.no_jit or a.no_progress)
    assert common.plan(a, 10) == (3, 30)
    assert common.plan(_args(common, "--steps", "25"), 10) == (3, 25)
    assert common.plan(_args(common, "--steps", "50"), 10) == (5, 50)     # beats default epochs
    assert common.plan(_args(common, "--epochs", "1", "--steps", "25"), 10) == (1, 10)
    only_steps = common.add_common_args(argparse.ArgumentParser(), batch_size=8)
    assert common.plan(only_steps.parse_args(["--steps", "25"]), 10) == (3, 25)
    assert common.plan(_args(common, "--dry-run"), 10) == (1, common.DRY_RUN_STEPS)
    with pytest.raises(ValueError, match="batch"):
        common.plan(a, 0)


def test_epoch_sampler_order_is_a_function_of_seed_and_epoch(common):
    s = common.EpochSampler(50, 8, seed=7)
    assert s.batches_per_epoch == len(s) == 6
    s.set_epoch(2)
    full = list(s)
    assert [len(b) for b in full] == [8] * 6 and len(set(sum(full, []))) == 48
    again = common.EpochSampler(50, 8, seed=7)
    again.set_epoch(2, skip=4)
    assert len(again) == 2 and list(again) == full[4:]
    s.set_epoch(3)
    assert list(s) != full
    assert common.EpochSampler(50, 8, seed=8).order(2).tolist() != s.order(2).tolist()
    halves = [common.EpochSampler(50, 8, seed=7, num_replicas=2, rank=r) for r in (0, 1)]
    a, b = (set(h.order(2).tolist()) for h in halves)
    assert len(a) == len(b) == 25 and not a & b
    last = common.EpochSampler(50, 8, shuffle=False, drop_last=False)
    assert list(last)[-1] == [48, 49]


def test_progress_prints_lines_when_not_a_tty(common):
    import io
    buf = io.StringIO()
    bar = common.Progress(4, "epoch 1/1", stream=buf, interval=0.0)
    for _ in range(4):
        bar.update(samples=10, loss=0.5)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in buf.getvalue()
    assert lines[-1].startswith("epoch 1/1  [") and "4/4" in lines[-1]
    assert "loss 0.5" in lines[-1] and "samples/s" in lines[-1] and " in 0:00" in lines[-1]
    assert "ETA" in lines[0]
    quiet = io.StringIO()
    off = common.Progress(4, stream=quiet, enabled=False)
    off.update(4)
    off.close()
    assert quiet.getvalue() == ""


def test_metrics_log_csv_and_restore(common, tmp_path):
    log = common.MetricsLog(tmp_path / "m.csv", ["step", "loss", "accuracy"])
    log.write(step=1, loss=2.5)
    log.write(step=2, loss=1.5, accuracy=0.5)
    with pytest.raises(ValueError, match="no column"):
        log.write(step=3, los=1.0)
    assert common.read_csv(tmp_path / "m.csv") == [{"step": 1, "loss": 2.5},
                                                   {"step": 2, "loss": 1.5, "accuracy": 0.5}]
    saved = list(log.rows)
    log.write(step=3, loss=1.0)
    log.restore(saved)                         # a resume drops rows logged after the checkpoint
    log.write(step=3, loss=0.75)
    log.close()
    assert [r["loss"] for r in common.read_csv(tmp_path / "m.csv")] == [2.5, 1.5, 0.75]
    assert log.column("accuracy") == ([2], [0.5])


def test_confusion_matrix_and_pngs(common, tmp_path):
    import numpy as np
    cm = common.confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    paths = common.save_confusion_matrix(cm, tmp_path)
    rows = (tmp_path / "confusion.csv").read_text().splitlines()
    assert rows[0] == "true\\pred,0,1,2" and rows[3] == "2,0,1,1"
    log = common.MetricsLog(tmp_path / "m.csv", ["step", "loss", "accuracy"])
    for i in range(1, 30):
        log.write(step=i, loss=1.0 / i)
    log.write(step=29, accuracy=0.9)
    png = common.plot_metrics(log, tmp_path / "loss.png", smooth=5)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert png is None and len(paths) == 1
        return
    for p in (png, tmp_path / "confusion.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mnist_loader_reads_idx_files_and_splits_with_the_seed(common, tmp_path):
    import gzip
    import struct

    import numpy as np
    import _mnist
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 4)          # sorted, like the bundle
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, 3) + struct.pack(">III", 40, 28, 28) + images.tobytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 40) + labels.tobytes())
    xtr, ytr, xte, yte = _mnist.load(str(tmp_path), seed=5)
    assert xtr.shape == (36, 28, 28) and xte.shape == (4, 28, 28) and xtr.dtype == np.float32
    assert ytr.dtype == np.int64 and sorted(np.concatenate([ytr, yte])) == sorted(labels)
    assert list(ytr) != sorted(ytr)                                 # shuffled before the split
    back = np.round(xte[0] * 255).astype(np.uint8).reshape(-1)
    i = int(np.flatnonzero((images.reshape(40, -1) == back).all(1))[0])
    assert yte[0] == labels[i]                                      # images keep their labels
    again = _mnist.load(str(tmp_path), seed=5)
    assert all((a == b).all() for a, b in zip(again, (xtr, ytr, xte, yte)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        _mnist.load(str(tmp_path))
    bundled = _mnist.load(seed=0)
    assert [len(a) for a in bundled] == [4500, 4500, 500, 500]
