"""Checks of the generative examples' pieces: the DCGAN's digit-quality check, the text corpus,
top-k sampling and the bits-per-character figure (their dry runs are in test_examples.py)."""
import csv
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import clgrad

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import _corpus  # noqa: E402
import _mnist  # noqa: E402
import dcgan_digits  # noqa: E402


# ---- the GAN quality check -------------------------------------------------------------------

@pytest.fixture(scope="module")
def judged():
    """One judge per device, trained as the example trains it (on the 4,000 training digits)."""
    train_x, train_y, held_x, held_y = _mnist.load(seed=0)
    cache = {}

    def get(device):
        if device.spec not in cache:
            cache[device.spec] = dcgan_digits.train_judge(train_x, train_y, device, seed=0)
        return cache[device.spec], held_x, held_y
    return get


def test_quality_check_passes_on_real_digits(judged, device):
    judge, held_x, _ = judged(device)
    result = dcgan_digits.judge_digits(judge, held_x[:500], device)
    assert result["passed"], dcgan_digits.describe(result)
    assert result["confident"] >= 0.8
    assert result["classes_present"] == 10


def test_class_conditional_check_passes_real_digits_with_their_labels(judged, device):
    judge, held_x, held_y = judged(device)
    result = dcgan_digits.judge_digits(judge, held_x[:500], device, classes=held_y[:500])
    assert result["passed"], dcgan_digits.describe(result)
    assert result["confident"] >= 0.8 and min(result["per_class"]) >= 0.5
    assert "as the digit asked for" in dcgan_digits.describe(result)


def test_class_conditional_check_compares_labels_to_the_requested_classes(judged, device):
    """The same sharp real digits, but asked for as the wrong digit (each label + 1): the judge
    is sure of them, so the plain rule passes them, while the conditional rule counts none."""
    judge, held_x, held_y = judged(device)
    plain = dcgan_digits.judge_digits(judge, held_x[:500], device)
    wrong = dcgan_digits.judge_digits(judge, held_x[:500], device, classes=(held_y[:500] + 1) % 10)
    assert plain["passed"] and plain["confident"] >= 0.8, dcgan_digits.describe(plain)
    assert not wrong["passed"] and wrong["confident"] < 0.02, dcgan_digits.describe(wrong)
    assert wrong["histogram"] == plain["histogram"]      # the labels are the same; the asks differ
    # half right, half asked for the wrong digit: only the right half counts
    half = np.where(np.arange(500) % 2 == 0, held_y[:500], (held_y[:500] + 1) % 10)
    part = dcgan_digits.judge_digits(judge, held_x[:500], device, classes=half)
    assert abs(part["confident"] - plain["confident"] / 2) < 0.06, dcgan_digits.describe(part)
    with pytest.raises(ValueError, match="one digit per image"):
        dcgan_digits.judge_digits(judge, held_x[:10], device, classes=held_y[:9])


def test_class_conditional_check_fails_a_generator_that_ignores_the_class(judged, device):
    """A conditional generator collapsed onto one sharp real digit whatever it is asked for:
    the judge is sure of every image, but at most a tenth are the digit asked for."""
    judge, held_x, _ = judged(device)
    sure = dcgan_digits.judge_probs(judge, held_x[:50], device)[:, :10].max(1).argmax()
    asked = dcgan_digits.requested_classes(500, 10)
    assert np.bincount(asked).tolist() == [50] * 10
    one = dcgan_digits.judge_digits(judge, np.repeat(held_x[sure:sure + 1], 500, 0), device,
                                    classes=asked)
    assert not one["passed"] and one["confident"] <= 0.1, dcgan_digits.describe(one)


def test_mean_spread_measures_variety():
    a = np.zeros((3, 28, 28), np.float32)
    assert dcgan_digits.mean_spread(a) == 0.0                 # copies of one image
    a[1, 0, 0] = 3.0
    a[2, 0, 1] = 4.0                                          # distances 3, 4 and 5
    assert dcgan_digits.mean_spread(a) == pytest.approx(4.0)
    assert math.isnan(dcgan_digits.mean_spread(a[:1]))


def test_variety_rule_fails_one_image_per_digit(judged, device):
    """Sharp real digits, each the one asked for, but only one image per digit repeated 50 times:
    every label is right and sure, so only the within-digit variety rule can fail it."""
    judge, held_x, held_y = judged(device)
    train_x, train_y = _mnist.load(seed=0)[:2]
    reference = (train_x[:1000], train_y[:1000])
    asked = dcgan_digits.requested_classes(500, 10)
    probs = dcgan_digits.judge_probs(judge, held_x, device)
    picks = [np.flatnonzero((held_y == c) & (probs[:, c] > 0.95)) for c in range(10)]
    sure, other = (np.array([p[i] for p in picks]) for i in (0, 1))   # two sure digits of each
    copies = held_x[sure[asked]]
    stale = dcgan_digits.judge_digits(judge, copies, device, classes=asked, real=reference)
    assert stale["confident"] > 0.95 and stale["classes_present"] == 10
    assert stale["min_spread"] == 0.0 and not stale["passed"], dcgan_digits.describe(stale)
    assert "variety within a digit" in dcgan_digits.describe(stale)
    # two images per digit: still far less varied than handwriting
    two = held_x[np.where(np.arange(500) % 20 < 10, sure[asked], other[asked])]
    pair = dcgan_digits.judge_digits(judge, two, device, classes=asked, real=reference)
    assert pair["min_spread"] < dcgan_digits.MIN_SPREAD and not pair["passed"]
    # real held-out digits against the training digits: as varied as they are
    fine = dcgan_digits.judge_digits(judge, held_x[:500], device, classes=held_y[:500],
                                     real=reference)
    assert fine["passed"] and 0.9 < fine["min_spread"] < 1.1, dcgan_digits.describe(fine)
    # without class labels the groups are the judge's labels: one image per digit fails too
    plain = dcgan_digits.judge_digits(judge, copies, device, real=reference)
    assert plain["min_spread"] == 0.0 and not plain["passed"]


@pytest.mark.parametrize("classes", [0, 10])
def test_quality_check_fails_on_an_untrained_generator(judged, device, classes):
    judge, _, _ = judged(device)
    clgrad.manual_seed(5)
    G = dcgan_digits.Generator(dcgan_digits.NZ, 32, device, classes)
    dcgan_digits.dcgan_init(G)
    fake = dcgan_digits.generate(G, 500, device, seed=5)
    assert fake.shape == (500, 28, 28) and 0.0 <= fake.min() and fake.max() <= 1.0
    asked = dcgan_digits.requested_classes(500, classes) if classes else None
    result = dcgan_digits.judge_digits(judge, fake, device, classes=asked)
    assert not result["passed"], dcgan_digits.describe(result)
    assert result["confident"] < 0.2


@pytest.mark.parametrize("kind", ["uniform", "salt", "mean"])
def test_quality_check_fails_on_noise(judged, device, kind):
    judge, held_x, _ = judged(device)
    rng = np.random.default_rng(11)
    if kind == "uniform":
        fake = rng.random((500, 28, 28))
    elif kind == "salt":
        fake = rng.random((500, 28, 28)) < 0.15
    else:
        fake = np.clip(held_x.mean(0) + rng.normal(0, 0.3, (500, 28, 28)), 0, 1)
    result = dcgan_digits.judge_digits(judge, fake.astype(np.float32), device)
    assert not result["passed"], dcgan_digits.describe(result)


def test_quality_check_fails_on_mode_collapse(judged, device):
    """Sharp real digits, but only one (or three) of them: confident, yet collapsed."""
    judge, held_x, held_y = judged(device)
    sure = dcgan_digits.judge_probs(judge, held_x[:50], device)[:, :10].max(1).argmax()
    one = dcgan_digits.judge_digits(judge, np.repeat(held_x[sure:sure + 1], 500, 0), device)
    assert one["confident"] > 0.5 and not one["passed"], dcgan_digits.describe(one)
    few = np.concatenate([held_x[held_y == c][:40] for c in (1, 7, 9)])
    three = dcgan_digits.judge_digits(judge, np.resize(few, (500, 28, 28)), device)
    assert three["classes_present"] <= 4 and not three["passed"], dcgan_digits.describe(three)


def test_not_digits_are_seeded_and_in_range():
    images = _mnist.load(seed=0)[0][:200]
    a = dcgan_digits.not_digits(images, 50, np.random.default_rng(4))
    b = dcgan_digits.not_digits(images, 50, np.random.default_rng(4))
    assert a.shape == (50, 28, 28) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0


# ---- the GAN's pieces ---------------------------------------------------------------------

def test_minibatch_std_appends_the_mean_batch_std(device):
    x = np.random.default_rng(2).normal(0, 1, (6, 3, 4, 4)).astype(np.float32)
    t = clgrad.tensor(x, device=device, requires_grad=True)
    y = dcgan_digits.MinibatchStd()(t)
    assert tuple(y.shape) == (6, 4, 4, 4)
    out = y.detach().numpy()
    np.testing.assert_array_equal(out[:, :3], x)
    want = np.sqrt(x.var(0) + 1e-8).mean()
    np.testing.assert_allclose(out[:, 3], np.full((6, 4, 4), want), rtol=1e-5)
    # d(sum of the std channel)/dx = 16 * 6 / (3*4*4) * (x - mean) / (6 * std) + 1 (identity part)
    y.sum().backward()
    std = np.sqrt(x.var(0) + 1e-8)
    grad = 1.0 + (6 * 16) / (3 * 16) * (x - x.mean(0)) / (6 * std)
    np.testing.assert_allclose(t.grad.numpy(), grad, rtol=1e-4, atol=1e-5)


def test_truncated_noise_is_truncated_seeded_and_plain_without_a_limit():
    z = dcgan_digits.truncated_normal(np.random.default_rng(3), (4000, 16), 0.7)
    assert z.shape == (4000, 16) and z.dtype == np.float32
    assert np.abs(z).max() <= 0.7
    # entries are redrawn, not clipped: no pile-up at the limit, and the spread of a normal
    # truncated at +-0.7 (variance 1 - 2 * 0.7 * phi(0.7) / (2 * Phi(0.7) - 1) = 0.1529)
    assert (np.abs(z) > 0.69).mean() < 0.02
    np.testing.assert_allclose(z.var(), 0.1529, rtol=0.03)
    np.testing.assert_array_equal(
        z, dcgan_digits.truncated_normal(np.random.default_rng(3), (4000, 16), 0.7))
    # no limit (None or 0): exactly the plain normal the script drew before the flag existed
    plain = np.random.default_rng(3).standard_normal((50, 16)).astype(np.float32)
    for off in (None, 0.0):
        np.testing.assert_array_equal(
            dcgan_digits.truncated_normal(np.random.default_rng(3), (50, 16), off), plain)
    with pytest.raises(ValueError, match="truncation"):
        dcgan_digits.truncated_normal(np.random.default_rng(3), (2, 2), -1.0)


def test_generate_uses_the_truncated_noise(device):
    """generate() with a truncation draws from the truncated noise: it equals G on that noise."""
    clgrad.manual_seed(6)
    G = dcgan_digits.Generator(dcgan_digits.NZ, 4, device)
    dcgan_digits.dcgan_init(G)
    G.eval()
    got = dcgan_digits.generate(G, 20, device, seed=9, truncation=0.5)
    z = dcgan_digits.truncated_normal(np.random.default_rng(9), (20, dcgan_digits.NZ), 0.5)
    G.eval()
    with clgrad.no_grad():
        want = (G(clgrad.tensor(z, device=device)).numpy()[:, 0] + 1) / 2
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plain = dcgan_digits.generate(G, 20, device, seed=9)
    assert np.abs(plain - got).max() > 1e-3


def test_conditional_generate_asks_for_each_digit_in_turn(device):
    clgrad.manual_seed(6)
    G = dcgan_digits.Generator(dcgan_digits.NZ, 4, device, classes=10)
    dcgan_digits.dcgan_init(G)
    got = dcgan_digits.generate(G, 30, device, seed=9)
    z = clgrad.tensor(np.random.default_rng(9).standard_normal((30, dcgan_digits.NZ))
                      .astype(np.float32), device=device)
    G.eval()
    with clgrad.no_grad():
        want = (G(z, clgrad.tensor(np.arange(30) % 10, device=device)).numpy()[:, 0] + 1) / 2
        other = G(z, clgrad.tensor((np.arange(30) + 3) % 10, device=device)).numpy()
    other = (other[:, 0] + 1) / 2
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(other - got).max() > 1e-4                 # the class changes the image
    with pytest.raises(ValueError, match="requested classes"):
        G(z)


def test_projection_discriminator_adds_the_class_embedding_term(device):
    """D(x, y) = head(features(x)) + <embed[y], features(x)>: the logit of one image moves by
    exactly the change in that inner product when its class changes."""
    clgrad.manual_seed(7)
    D = dcgan_digits.Discriminator(4, device, classes=10)
    dcgan_digits.dcgan_init(D)
    D.eval()
    x = np.random.default_rng(1).uniform(-1, 1, (6, 1, 28, 28)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 4, 5])
    with clgrad.no_grad():
        xt = clgrad.tensor(x, device=device)
        h = D.features(xt)
        out = D(xt, clgrad.tensor(y, device=device)).numpy()
        base = D.head(h).numpy().reshape(-1)
        hf = h.numpy().reshape(6, -1)
    emb = D.embed.weight.detach().numpy()
    np.testing.assert_allclose(out, base + (emb[y] * hf).sum(1), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="classes"):
        D(clgrad.tensor(x, device=device))


@pytest.mark.parametrize("unconditional", [False, True])
def test_dry_run_says_which_check_it_ran(device, capsys, tmp_path, unconditional):
    """The default run is conditional and checks labels against the digits asked for;
    --unconditional trains the plain DCGAN and counts any confident digit label."""
    flags = ["--dry-run", "--device", device.spec, "--out", str(tmp_path), "--no-progress"]
    dcgan_digits.main(flags + (["--unconditional"] if unconditional else []))
    out = capsys.readouterr().out
    check = re.search(r"quality check on 500 generated digits .*", out).group(0)
    if unconditional:
        assert "; unconditional;" in out and "asked for" not in check, out
    else:
        assert "; conditional on the digit;" in out, out
        assert "labelled as the digit asked for" in check and "per digit asked for: 0:" in check
    assert (tmp_path / "samples_epoch_01.png").exists()


def test_ema_update_is_a_lerp(device):
    clgrad.manual_seed(1)
    a = dcgan_digits.Generator(dcgan_digits.NZ, 4, device)
    b = dcgan_digits.Generator(dcgan_digits.NZ, 4, device)
    before = [p.detach().numpy().copy() for p in a.parameters()]
    dcgan_digits.update_ema(a, b, 0.9)
    for pa, pb, old in zip(a.parameters(), b.parameters(), before):
        np.testing.assert_allclose(pa.detach().numpy(), 0.9 * old + 0.1 * pb.detach().numpy(),
                                   rtol=1e-5, atol=1e-7)


def test_calibrated_batchnorm_holds_the_generators_own_statistics(device):
    """The averaged generator's BatchNorm statistics are the mean over the calibration batches
    of its first layer's batch mean and (unbiased) variance; its momentum comes back."""
    clgrad.manual_seed(2)
    G = dcgan_digits.Generator(dcgan_digits.NZ, 4, device)
    dcgan_digits.dcgan_init(G)
    dcgan_digits.calibrate_batchnorm(G, device, seed=5, batches=3, batch=20)
    assert not G.training
    bn = G.net[1]
    assert bn.momentum == 0.1
    rng = np.random.default_rng([5, 4])
    means, vars_ = [], []
    with clgrad.no_grad():
        for _ in range(3):
            z = rng.standard_normal((20, dcgan_digits.NZ)).astype(np.float32)
            h = G.net[0](clgrad.tensor(z, device=device).view(20, -1, 1, 1)).numpy()
            means.append(h.mean((0, 2, 3)))
            vars_.append(h.var((0, 2, 3), ddof=1))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean(means, 0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean(vars_, 0), rtol=1e-4, atol=1e-6)


# ---- the text corpus -------------------------------------------------------------------------

def test_stdlib_corpus_is_deterministic_and_sized():
    t1, d1 = _corpus.stdlib_text(50_000)
    t2, d2 = _corpus.stdlib_text(50_000)
    assert t1 == t2 and d1 == d2
    assert len(t1.encode("utf-8", errors="replace")) >= 40_000
    assert "standard library" in d1 and "50,000 bytes" in d1
    assert "def " in t1                                 # it is Python source


def test_corpus_split_is_fixed_by_seed():
    a = _corpus.load(max_bytes=80_000, seed=3)
    b = _corpus.load(max_bytes=80_000, seed=3)
    c = _corpus.load(max_bytes=80_000, seed=4)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)
    assert a.chars == b.chars and a.digest == b.digest
    assert not np.array_equal(a.val, c.val)             # another seed holds out other pieces
    assert len(a.train) + len(a.val) == len(a.text)
    assert 0.05 < len(a.val) / len(a.text) < 0.15
    assert a.decode(a.encode("import os")) == "import os"


def test_corpus_reads_a_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcab" * 2000, encoding="utf-8")
    c = _corpus.load(str(path), seed=0)
    assert c.chars == ["a", "b", "c"] and c.vocab_size == 3
    assert str(path) in c.description
    x, y = _corpus.batch(c.train, 8, 5, np.random.default_rng(0))
    assert x.shape == y.shape == (5, 8)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x shifted by one


# ---- sampling and the loss figures -----------------------------------------------------------

def test_top_k_1_is_greedy():
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(0, 3, 40)
        for temperature in (0.5, 1.0, 2.0):
            assert _corpus.sample_next(logits, temperature, 1, rng) == int(np.argmax(logits))
    assert _corpus.sample_next(np.array([0.0, 5.0, 1.0]), 0.0, None, rng) == 1


def test_top_k_keeps_only_the_k_largest():
    rng = np.random.default_rng(1)
    logits = np.array([0.0, 3.0, 2.9, -1.0, 2.8, 1.0])
    draws = {_corpus.sample_next(logits, 5.0, 3, rng) for _ in range(300)}
    assert draws == {1, 2, 4}
    everything = {_corpus.sample_next(logits, 5.0, None, rng) for _ in range(600)}
    assert everything == set(range(6))


def test_bits_per_char_is_nats_over_ln2():
    assert _corpus.bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert _corpus.bits_per_char(math.log(96)) == pytest.approx(math.log2(96))


@pytest.mark.parametrize("script", ["gpt_char", "char_lstm"])
def test_printed_bits_per_char_match_the_nats(script, device, capsys, tmp_path):
    module = __import__(script)
    module.main(["--dry-run", "--device", device.spec, "--out", str(tmp_path),
                 "--no-progress"])
    out = capsys.readouterr().out
    lines = re.findall(r"val loss ([0-9.]+) nats = ([0-9.]+) bits/char", out)
    assert lines, out
    for nats, bits in lines:
        assert float(bits) == pytest.approx(float(nats) / math.log(2), abs=2e-3)
    # an untrained model is close to uniform over the characters: about log2(V) bits
    vocab = int(re.search(r"(\d+) distinct characters", out).group(1))
    assert abs(float(lines[0][1]) - math.log2(vocab)) < 1.0


# ---- kill and resume -------------------------------------------------------------------------

TINY = {
    "gpt_char": ["--max-bytes", "60000", "--block", "16", "--n-embd", "16", "--n-head", "2",
                 "--n-layer", "1", "--batch-size", "4", "--steps", "12", "--eval-every", "6",
                 "--sample-chars", "8"],
    "char_lstm": ["--max-bytes", "60000", "--block", "16", "--embed", "8", "--hidden", "16",
                  "--layers", "2", "--batch-size", "4", "--steps", "12", "--eval-every", "6",
                  "--sample-chars", "8"],
    "dcgan_digits": ["--train-size", "48", "--width", "4", "--batch-size", "8", "--epochs", "2",
                     "--judge-epochs", "1", "--truncation", "0.8", "--lr-d", "3e-4"],
}
WEIGHTS = {"gpt_char": "model.ckpt", "char_lstm": "model.ckpt", "dcgan_digits": "generator.ckpt"}
TIMING = {"chars_per_s", "samples_per_s", "time_s"}     # wall-clock columns differ run to run


def _run_example(script, args, cwd, **env):
    r = subprocess.run([sys.executable, str(EXAMPLES / f"{script}.py"), *args], cwd=cwd,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(EXAMPLES.parent), **env})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _metrics(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


@pytest.mark.parametrize("script", sorted(TINY))
def test_sigkill_then_resume_is_bit_identical(script, device, tmp_path):
    """Killed after its first checkpoint (written every 2 steps), the run resumed with --resume
    ends with the same weights and logged losses as an uninterrupted one."""
    flags = ["--device", device.spec, "--seed", "3", "--no-progress", *TINY[script]]
    _run_example(script, flags + ["--out", str(tmp_path / "a")], tmp_path)

    out_b, ckpt = tmp_path / "b", tmp_path / "b.ckpt"
    args_b = flags + ["--out", str(out_b), "--checkpoint", str(ckpt), "--checkpoint-every", "2"]
    p = subprocess.Popen([sys.executable, str(EXAMPLES / f"{script}.py"), *args_b], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "PYTHONPATH": str(EXAMPLES.parent),
                              "CLGRAD_TEST_SAVE_PAUSE": "0.3"})
    try:
        deadline = time.monotonic() + 300
        while not ckpt.exists():
            assert p.poll() is None, "ended before its first checkpoint: " + \
                p.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint in 300 s"
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == -signal.SIGKILL
    assert not (out_b / WEIGHTS[script]).exists()

    out = _run_example(script, args_b + ["--resume"], tmp_path)
    assert "resumed from" in out, out
    if script == "dcgan_digits":                      # the check line names its noise
        assert "quality check on 500 generated digits (noise truncated at 0.8)" in out, out
    a = clgrad.load(str(tmp_path / "a" / WEIGHTS[script]), map_location=device)
    b = clgrad.load(str(out_b / WEIGHTS[script]), map_location=device)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].numpy().tobytes() == b[k].numpy().tobytes(), f"{k} differs after the resume"
    assert _metrics(tmp_path / "a" / "metrics.csv") == _metrics(out_b / "metrics.csv")
