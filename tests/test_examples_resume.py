"""examples/mnist_cnn.py killed with SIGKILL after its first checkpoint is on disk, then started
again with --resume, ends with the same weights, bit for bit, and the same logged losses and
accuracies as an uninterrupted run with the same seed (model, SGD momentum, OneCycleLR, dropout
RNG, augmentation RNG and the data order all come back from the checkpoint)."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import clgrad

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "mnist_cnn.py"
# 2 epochs of 12 batches of 32, a checkpoint every 5 steps and after each epoch
FLAGS = ["--train-size", "384", "--epochs", "2", "--batch-size", "32", "--checkpoint-every", "5",
         "--seed", "3", "--no-progress"]


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CLGRAD_TEST_SAVE_PAUSE", None)
    env.update(extra)
    return env


def _run(args, cwd, **env):
    r = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True,
                       text=True, timeout=300, env=_env(**env))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _weights(path, device):
    return {k: v.numpy() for k, v in clgrad.load(str(path), map_location=device).items()}


def _logged(path):
    with open(path, newline="") as f:
        return [(r["step"], r["epoch"], r["loss"], r["accuracy"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_mnist_cnn_sigkill_then_resume_is_bit_identical(device, tmp_path, jit):
    common = ["--device", device.spec, *FLAGS] + ([] if jit else ["--no-jit"])
    _run(common + ["--out", str(tmp_path / "a")], tmp_path)

    out_b, ckpt = tmp_path / "b", tmp_path / "b.ckpt"
    args_b = common + ["--out", str(out_b), "--checkpoint", str(ckpt)]
    # every checkpoint write pauses before its rename, so the kill comes either in training
    # after the first checkpoint or in the middle of a later write, never after the run ended
    p = subprocess.Popen([sys.executable, str(SCRIPT), *args_b], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(CLGRAD_TEST_SAVE_PAUSE="0.3"))
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists():
            assert p.poll() is None, "the run ended before writing a checkpoint: " + \
                p.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint written in 240 s"
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == -signal.SIGKILL
    assert not (out_b / "model.ckpt").exists()          # it did not finish

    out = _run(args_b + ["--resume"], tmp_path)
    assert "resumed from" in out, out

    a, b = _weights(tmp_path / "a" / "model.ckpt", device), _weights(out_b / "model.ckpt", device)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs after the resume"
    assert _logged(tmp_path / "a" / "metrics.csv") == _logged(out_b / "metrics.csv")
    assert np.isfinite([float(r[2]) for r in _logged(out_b / "metrics.csv") if r[2]]).all()
