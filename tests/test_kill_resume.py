"""A training process killed with SIGKILL at random moments (during start-up, between steps and
in the middle of a checkpoint write) always leaves a loadable newest checkpoint, and the run
resumed from it ends bit-identical to an uninterrupted seeded run: model, AdamW, OneCycleLR,
dropout RNG and the shuffled data order all come back from the checkpoint.

CLGRAD_KILL_RESUME_KILLS sets the number of kills (default 20)."""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import clgrad

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kill_resume_train.py")
EPOCHS = 50                              # 300 steps
PAUSE = 0.4                              # seconds the mid-save processes sleep before renaming


def _start(out, device, env_extra=None):
    env = dict(os.environ)
    env.pop("CLGRAD_TEST_SAVE_PAUSE", None)
    env.update(env_extra or {})
    # unbuffered binary pipes: a buffered reader reads ahead, and the lines it had taken from the
    # pipe but not yet handed out would be lost to communicate() after the kill (a "begin K"
    # missed that way made the step check fail under load)
    p = subprocess.Popen([sys.executable, SCRIPT, str(out), device.spec, str(EPOCHS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env)
    watchdog = threading.Timer(120, p.kill)   # never hang the suite
    watchdog.daemon = True
    watchdog.start()
    return p, watchdog


def _lines(p):
    """The child's stdout lines, read a byte at a time (nothing read ahead)."""
    for raw in iter(p.stdout.readline, b""):
        yield raw.decode()


def _finish(p, watchdog):
    out, err = p.communicate()
    watchdog.cancel()
    return out.decode(), err.decode()


def _temps(folder):
    return [f for f in os.listdir(folder) if f.startswith(".tmp-ckpt.pt")]


def _wait_for_temp(folder, stale, limit=PAUSE * 0.75):
    """Wait until the save in progress has created its temp file (the script then pauses
    PAUSE seconds before the rename); True if it appeared in time."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if set(_temps(folder)) - stale:
            time.sleep(0.01)
            return True
        time.sleep(0.002)
    return False


def _weights(path, device):
    return {k: v.numpy() for k, v in clgrad.load(path, map_location=device).items()}


def test_sigkill_anywhere_resumes_bit_identically(tmp_path, device):
    kills = int(os.environ.get("CLGRAD_KILL_RESUME_KILLS", "20"))
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()
    p, w = _start(ref, device)
    out, err = _finish(p, w)
    assert p.returncode == 0, err
    assert out.split()[-1] == "done"
    expected = _weights(ref / "final.pt", device)

    rnd = random.Random(16)
    ckpt = run / "ckpt.pt"
    last_saved, mid_save_kills, done = 0, 0, False
    for i in range(kills):
        mode = ("mid-save", "between-steps", "any-time")[i % 3]
        p, w = _start(run, device, {"CLGRAD_TEST_SAVE_PAUSE": str(PAUSE)}
                      if mode == "mid-save" else None)
        begun, in_save = last_saved, False
        stale = set(_temps(run))
        if mode == "any-time":
            time.sleep(rnd.uniform(0.0, 0.8))
        else:
            saves_first = rnd.randint(0, 1)
            for line in _lines(p):
                word, _, k = line.strip().partition(" ")
                if word == "done":
                    break
                if word == "begin":
                    begun = int(k)
                    if mode == "mid-save" and saves_first == 0:
                        in_save = _wait_for_temp(run, stale)
                        break
                if word == "saved":
                    last_saved = int(k)
                    saves_first -= 1
                    if mode == "between-steps" and saves_first < 0:
                        time.sleep(rnd.uniform(0.0, 0.02))
                        break
        p.send_signal(signal.SIGKILL)
        out, err = _finish(p, w)
        if p.returncode == 0:                        # it finished before the kill landed
            done = True
            break
        assert p.returncode == -signal.SIGKILL, err
        for line in out.splitlines():                # lines printed after we stopped reading
            word, _, k = line.partition(" ")
            if word == "begin":
                begun = max(begun, int(k))
            elif word == "saved":
                last_saved = max(last_saved, int(k))
        if in_save:
            mid_save_kills += 1
            assert begun > last_saved, "the kill meant for the middle of a save came after it"
        if last_saved == 0 and begun == 0:
            assert not ckpt.exists()
            continue
        # the newest checkpoint on disk loads, and it is the last completed save (or the one
        # whose rename had just happened when the kill landed)
        st = clgrad.load(ckpt, map_location=device)
        assert last_saved <= st["step"] <= max(begun, last_saved), (i, mode, st["step"])
        last_saved = st["step"]
    killed = i if done else kills
    assert killed >= kills // 2, f"the run finished after only {killed} kills"
    assert mid_save_kills >= killed // 6, "too few kills landed inside a save"
    if not done:
        p, w = _start(run, device)
        out, err = _finish(p, w)
        assert p.returncode == 0, err
    got = _weights(run / "final.pt", device)
    assert got.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


@pytest.mark.parametrize("flip", [False, True])
def test_resume_check_is_sensitive(tmp_path, device, flip):
    """The comparison above can fail: a resume that forgets the RNG state (dropout masks) or the
    data order ends with different weights."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()
    p, w = _start(ref, device)
    assert _finish(p, w) and p.returncode == 0
    p, w = _start(run, device)
    for line in _lines(p):
        if line.strip() == "saved 8":
            break
    p.send_signal(signal.SIGKILL)
    _finish(p, w)
    st = clgrad.load(run / "ckpt.pt", map_location=device)
    if flip:
        st["epoch_gen"] = (st["epoch_gen"][0] + 1, st["epoch_gen"][1])
    else:
        st["rng"] = (st["rng"][0], st["rng"][1] + 1)
    clgrad.save(st, run / "ckpt.pt")
    p, w = _start(run, device)
    _, err = _finish(p, w)
    assert p.returncode == 0, err
    a, b = _weights(ref / "final.pt", device), _weights(run / "final.pt", device)
    assert any(not np.array_equal(a[k], b[k]) for k in a)
