"""Gradient clipping against numpy: the total norm of every order and the scaled gradients, for
gradients of their own and for gradients lying in an optimizer's arena (clipped as flat runs)."""
import math

import numpy as np
import pytest

import clgrad
from clgrad import nn, runtime
from clgrad.nn.utils import clip_grad_norm_, clip_grad_value_, get_total_norm

SHAPES = [(3, 4), (5,), (2, 3, 2), (1,)]


def _params(device, arena: bool, skip=None):
    """Parameters with gradients; in an Adam arena when `arena` (one step builds it); the
    parameter `skip` has no gradient."""
    rng = np.random.default_rng(0)
    ps = [nn.Parameter(clgrad.tensor(rng.standard_normal(s, dtype=np.float32), device=device))
          for s in SHAPES]
    if arena:
        opt = clgrad.optim.Adam(ps, lr=0.0)
        sum((p * p).sum() for p in ps).backward()
        opt.step()
        opt.zero_grad()
    grads = [rng.standard_normal(s, dtype=np.float32) * 3 for s in SHAPES]
    loss = sum((p * clgrad.tensor(g, device=device)).sum()
               for i, (p, g) in enumerate(zip(ps, grads)) if i != skip)
    loss.backward()
    return ps, [None if i == skip else g for i, g in enumerate(grads)]


def _np_norm(grads, p):
    flat = np.concatenate([g.ravel() for g in grads if g is not None]).astype(np.float64)
    if p == math.inf:
        return np.abs(flat).max()
    return (np.abs(flat) ** p).sum() ** (1 / p)


@pytest.mark.parametrize("arena", [False, True], ids=["own", "arena"])
@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_matches_numpy(device, arena, p):
    ps, grads = _params(device, arena, skip=1)
    if arena:   # the gradients share the arena, with a gap where ps[1] has none
        assert ps[0].grad._buf is ps[2].grad._buf
    want = _np_norm(grads, p)
    total = clip_grad_norm_(ps, 1.5, norm_type=p)
    assert total.shape == () and ps[1].grad is None
    np.testing.assert_allclose(total.item(), want, rtol=1e-5)
    coef = min(1.0, 1.5 / (want + 1e-6))
    for q, g in zip(ps, grads):
        if g is not None:
            np.testing.assert_allclose(q.grad.numpy(), g * coef, rtol=1e-5, atol=1e-6)


def test_arena_gradients_clip_in_one_launch_each(device):
    """Back-to-back gradients are one run: one norm reduction and one scaling for all of them."""
    own, _ = _params(device, False)
    runtime.reset_stats()
    clip_grad_norm_(own, 1.0).item()
    per_param = runtime.stats()["launches"]
    ps, grads = _params(device, True)
    runtime.reset_stats()
    clip_grad_norm_(ps, 1.0).item()
    assert runtime.stats()["launches"] < per_param
    assert runtime.stats()["launches"] <= 6
    np.testing.assert_allclose(get_total_norm([q.grad for q in ps]).item(),
                               min(_np_norm(grads, 2), 1.0), rtol=1e-5)


def test_clip_grad_value_matches_numpy(device):
    ps, grads = _params(device, True)
    clip_grad_value_(ps, 0.5)
    for q, g in zip(ps, grads):
        np.testing.assert_allclose(q.grad.numpy(), np.clip(g, -0.5, 0.5))
