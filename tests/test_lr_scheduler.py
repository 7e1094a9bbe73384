"""Learning-rate schedulers: each sequence against values computed by hand from the documented
formulas (PyTorch's recursive forms agree with these closed forms when nothing else intervenes)."""
import math

import pytest

import clgrad
from clgrad.optim import SGD, Adam, lr_scheduler as S


def _opt(lr=1.0, momentum=0.0, n_groups=1):
    groups = [{"params": [clgrad.zeros(1, requires_grad=True)]} for _ in range(n_groups)]
    return SGD(groups, lr=lr, momentum=momentum)


def _seq(sched, n):
    """The lr after construction, then after each of n - 1 steps."""
    out = [sched.get_last_lr()[0]]
    for _ in range(n - 1):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out


def _close(a, b):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == pytest.approx(y, rel=1e-12, abs=1e-15), (i, a, b)


def test_step_and_multistep():
    _close(_seq(S.StepLR(_opt(), step_size=3, gamma=0.1), 10),
           [1, 1, 1, .1, .1, .1, .01, .01, .01, .001])
    _close(_seq(S.MultiStepLR(_opt(), milestones=[2, 5, 5], gamma=0.5), 8),
           [1, 1, .5, .5, .5, .125, .125, .125])


def test_constant_linear_exponential_polynomial():
    _close(_seq(S.ConstantLR(_opt(), factor=0.5, total_iters=3), 6), [.5, .5, .5, 1, 1, 1])
    _close(_seq(S.LinearLR(_opt(), start_factor=0.25, end_factor=1.0, total_iters=4), 7),
           [0.25 + 0.75 * min(t, 4) / 4 for t in range(7)])
    _close(_seq(S.ExponentialLR(_opt(2.0), gamma=0.9), 6), [2 * 0.9 ** t for t in range(6)])
    _close(_seq(S.PolynomialLR(_opt(), total_iters=4, power=2.0), 7),
           [1, .5625, .25, .0625, 0, 0, 0])


def test_lambda_and_multiplicative():
    _close(_seq(S.LambdaLR(_opt(0.5), lambda e: 1 / (e + 1)), 5),
           [0.5 / (t + 1) for t in range(5)])
    opt = _opt(n_groups=2)
    sched = S.LambdaLR(opt, [lambda e: 1.0, lambda e: 0.5 ** e])
    for _ in range(3):
        sched.step()
    _close(sched.get_last_lr(), [1.0, 0.125])
    _close(_seq(S.MultiplicativeLR(_opt(), lambda e: 0.9), 5), [0.9 ** t for t in range(5)])
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        S.LambdaLR(_opt(n_groups=2), [lambda e: 1.0])


def test_cosine_annealing_recursive_form():
    T, lo = 10, 0.1
    # the recursive form follows the closed form, through T_max and back up again
    _close(_seq(S.CosineAnnealingLR(_opt(), T_max=T, eta_min=lo), 31),
           [lo + (1 - lo) * (1 + math.cos(math.pi * t / T)) / 2 for t in range(31)])


def test_cosine_warm_restarts():
    lrs, t_cur, t_i = [], 0, 3
    for _ in range(20):
        lrs.append(0.05 + (1 - 0.05) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
        t_cur += 1
        if t_cur >= t_i:
            t_cur, t_i = 0, t_i * 2
    _close(_seq(S.CosineAnnealingWarmRestarts(_opt(), T_0=3, T_mult=2, eta_min=0.05), 20), lrs)
    with pytest.raises(ValueError, match="Expected positive integer T_0, but got 0"):
        S.CosineAnnealingWarmRestarts(_opt(), T_0=0)
    with pytest.raises(ValueError, match="Expected integer T_mult >= 1, but got 0"):
        S.CosineAnnealingWarmRestarts(_opt(), T_0=2, T_mult=0)


def _cos(start, end, pct):
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def test_one_cycle_cos_with_momentum():
    opt = _opt(momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3)
    lo, hi, end = 1 / 25, 1.0, 1 / 25 / 1e4
    expect_lr, expect_m = [], []
    for t in range(10):
        if t <= 2:       # warm-up ends at step pct_start * total - 1 = 2
            expect_lr.append(_cos(lo, hi, t / 2))
            expect_m.append(_cos(0.95, 0.85, t / 2))
        else:
            expect_lr.append(_cos(hi, end, (t - 2) / 7))
            expect_m.append(_cos(0.85, 0.95, (t - 2) / 7))
    got_lr, got_m = [], []
    for t in range(10):
        got_lr.append(opt.param_groups[0]["lr"])
        got_m.append(opt.param_groups[0]["momentum"])
        if t < 9:
            sched.step()
    _close(got_lr, expect_lr)
    _close(got_m, expect_m)
    sched.step()
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        sched.step()


def test_one_cycle_linear_three_phase_adam_betas():
    opt = Adam([clgrad.zeros(1, requires_grad=True)], lr=1e-3)
    sched = S.OneCycleLR(opt, max_lr=2.0, total_steps=20, pct_start=0.25,
                         anneal_strategy="linear", three_phase=True, div_factor=10,
                         final_div_factor=100)
    lo, hi, end = 0.2, 2.0, 0.002
    got = [(opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0])]
    for _ in range(19):
        sched.step()
        got.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]))
    lin = lambda a, b, p: a + (b - a) * p
    for t, (lr, b1) in enumerate(got):
        if t <= 4:                     # phase ends: 5 - 1 = 4, 10 - 2 = 8, 19
            want = (lin(lo, hi, t / 4), lin(0.95, 0.85, t / 4))
        elif t <= 8:
            want = (lin(hi, lo, (t - 4) / 4), lin(0.85, 0.95, (t - 4) / 4))
        else:
            want = (lin(lo, end, (t - 8) / 11), 0.95)
        assert lr == pytest.approx(want[0], rel=1e-12) and b1 == pytest.approx(want[1]), t
    assert opt.param_groups[0]["betas"][1] == 0.999


def _tri(t, half):
    cycle = math.floor(1 + t / (2 * half))
    x = abs(t / half - 2 * cycle + 1)
    return cycle, max(0.0, 1 - x)


def test_cyclic_modes():
    for mode in ("triangular", "triangular2", "exp_range"):
        opt = _opt(momentum=0.9)
        sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=2, mode=mode, gamma=0.9)
        for t in range(13):
            cycle, h = _tri(t, 2)
            scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1),
                     "exp_range": 0.9 ** t}[mode]
            assert opt.param_groups[0]["lr"] == pytest.approx(0.1 + 0.9 * h * scale), (mode, t)
            assert opt.param_groups[0]["momentum"] == pytest.approx(0.9 - 0.1 * h * scale)
            sched.step()
    # asymmetric cycle: 1 step up, 3 down
    sched = S.CyclicLR(_opt(), 0.0, 1.0, step_size_up=1, step_size_down=3, cycle_momentum=False)
    _close(_seq(sched, 9), [0, 1, 2 / 3, 1 / 3, 0, 1, 2 / 3, 1 / 3, 0])
    with pytest.raises(ValueError, match="mode is invalid"):
        S.CyclicLR(_opt(), 0.1, 1.0, mode="square")


def test_sequential_and_chained():
    opt = _opt()
    sched = S.SequentialLR(opt, [S.ConstantLR(opt, factor=0.1, total_iters=2),
                                 S.ExponentialLR(opt, gamma=0.9)], milestones=[2])
    _close(_seq(sched, 6), [0.1, 0.1, 1.0, 0.9, 0.81, 0.729])
    opt = _opt()
    sched = S.ChainedScheduler([S.ConstantLR(opt, factor=0.1, total_iters=2),
                                S.ExponentialLR(opt, gamma=0.9)])
    # the constant factor is lifted when ConstantLR reaches epoch 2, then 0.9 per step
    _close(_seq(sched, 6), [0.1, 0.09, 0.81, 0.729, 0.6561, 0.59049])
    with pytest.raises(ValueError, match="number of milestone points"):
        S.SequentialLR(opt, [S.ExponentialLR(opt, 0.9)], milestones=[3])


def test_reduce_on_plateau():
    opt = _opt(n_groups=2)
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.1, cooldown=1,
                                min_lr=[0.1, 0.0])
    metrics = [10, 9.5, 9.2, 9.1, 9.0] + [5] * 16
    want = [1, 1, 1, .5, .5, .5, .5, .5, .25, .25, .25, .25, .125, .125, .125, .125,
            .1, .1, .1, .1, .1]
    got = []
    for m in metrics:
        sched.step(clgrad.tensor(m) if m == 5 else m)
        got.append(sched.get_last_lr())
    _close([g[0] for g in got], want)
    assert got[-1][1] == pytest.approx(0.03125)
    opt = _opt()
    sched = S.ReduceLROnPlateau(opt, mode="max", threshold_mode="abs", threshold=0.5,
                                patience=0, factor=0.1)
    for m in (1.0, 1.4, 2.0, 2.2):
        sched.step(m)
    _close(sched.get_last_lr(), [0.01])    # 1.4 and 2.2 do not beat best + 0.5
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown!"):
        S.ReduceLROnPlateau(opt, mode="avg")


def test_state_dict_round_trip():
    a = S.CosineAnnealingWarmRestarts(_opt(), T_0=2, T_mult=2)
    for _ in range(5):
        a.step()
    sd = a.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 5
    opt_b = _opt()
    b = S.CosineAnnealingWarmRestarts(opt_b, T_0=2, T_mult=2)
    b.load_state_dict(sd)
    opt_b.param_groups[0]["lr"] = a.get_last_lr()[0]
    _close(_seq(a, 6), _seq(b, 6))
    opt = _opt()
    s = S.SequentialLR(opt, [S.LinearLR(opt, total_iters=2), S.StepLR(opt, 2)], milestones=[3])
    sd = s.state_dict()
    assert len(sd["_schedulers"]) == 2 and "optimizer" not in sd["_schedulers"][0]


def test_resume_requires_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_opt(), step_size=2, last_epoch=3)


def test_resume_keeps_current_rate():
    """Built with last_epoch=k (resuming), a recursive scheduler's constructor step keeps the
    current rate; the next step continues the schedule from there."""
    opt = _opt(0.5)
    opt.param_groups[0]["initial_lr"] = 1.0
    sched = S.ExponentialLR(opt, gamma=0.5, last_epoch=0)
    assert sched.get_last_lr() == [0.5] and sched.last_epoch == 1
    sched.step()
    assert sched.get_last_lr() == [0.25]
    with pytest.raises(TypeError, match="lr_lambda should be a function"):
        S.MultiplicativeLR(_opt(), 0.9)
