"""Optimizers against numpy (float64) implementations of PyTorch's documented update rules."""
import math

import numpy as np
import pytest

import clgrad
from clgrad import optim

SHAPES = [(3, 4), (5,), (2, 1, 3), (), (0, 2), (7,)]
SKIPPY = 5            # this parameter gets no gradient on odd steps (PyTorch leaves it alone)
STEPS = 25


# ---- numpy references (float64), one per optimizer, written from PyTorch's docs --------------
def _dir(hp, p, g):
    d = -g if hp.get("maximize") else g
    return d


def ref_sgd(hp, p, g, st, t):
    lr, mom, damp = hp.get("lr", 1e-3), hp.get("momentum", 0), hp.get("dampening", 0)
    d = _dir(hp, p, g)
    if hp.get("weight_decay", 0):
        d = d + hp["weight_decay"] * p
    if mom:
        st["b"] = d.copy() if t == 1 else mom * st["b"] + (1 - damp) * d
        d = d + mom * st["b"] if hp.get("nesterov") else st["b"]
    return p - lr * d


def ref_adam(hp, p, g, st, t, decoupled=False):
    lr, (b1, b2), eps = hp.get("lr", 1e-3), hp.get("betas", (0.9, 0.999)), hp.get("eps", 1e-8)
    wd = hp.get("weight_decay", 1e-2 if decoupled else 0)
    d = _dir(hp, p, g)
    if wd and decoupled:
        p = p * (1 - lr * wd)
    elif wd:
        d = d + wd * p
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * d
    st["v"] = b2 * st.get("v", 0) + (1 - b2) * d * d
    v = st["v"]
    if hp.get("amsgrad"):
        st["vmax"] = v = np.maximum(st.get("vmax", 0), v)
    mhat = st["m"] / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    return p - lr * mhat / (np.sqrt(vhat) + eps)


def ref_adamw(hp, p, g, st, t):
    return ref_adam(hp, p, g, st, t, decoupled=True)


def ref_rmsprop(hp, p, g, st, t):
    lr, alpha, eps = hp.get("lr", 1e-2), hp.get("alpha", 0.99), hp.get("eps", 1e-8)
    mom = hp.get("momentum", 0)
    d = _dir(hp, p, g)
    if hp.get("weight_decay", 0):
        d = d + hp["weight_decay"] * p
    st["v"] = alpha * st.get("v", 0) + (1 - alpha) * d * d
    if hp.get("centered"):
        st["gbar"] = alpha * st.get("gbar", 0) + (1 - alpha) * d
        avg = np.sqrt(st["v"] - st["gbar"] ** 2)
    else:
        avg = np.sqrt(st["v"])
    avg = avg + eps
    if mom:
        st["b"] = mom * st.get("b", 0) + d / avg
        return p - lr * st["b"]
    return p - lr * d / avg


def ref_adagrad(hp, p, g, st, t):
    lr, decay, eps = hp.get("lr", 1e-2), hp.get("lr_decay", 0), hp.get("eps", 1e-10)
    d = _dir(hp, p, g)
    if hp.get("weight_decay", 0):
        d = d + hp["weight_decay"] * p
    clr = lr / (1 + (t - 1) * decay)
    st["s"] = st.get("s", hp.get("initial_accumulator_value", 0)) + d * d
    return p - clr * d / (np.sqrt(st["s"]) + eps)


def ref_adadelta(hp, p, g, st, t):
    lr, rho, eps = hp.get("lr", 1.0), hp.get("rho", 0.9), hp.get("eps", 1e-6)
    d = _dir(hp, p, g)
    if hp.get("weight_decay", 0):
        d = d + hp["weight_decay"] * p
    st["v"] = rho * st.get("v", 0) + (1 - rho) * d * d
    delta = np.sqrt(st.get("u", 0) + eps) / np.sqrt(st["v"] + eps) * d
    st["u"] = rho * st.get("u", 0) + (1 - rho) * delta * delta
    return p - lr * delta


def ref_adamax(hp, p, g, st, t):
    lr, (b1, b2), eps = hp.get("lr", 2e-3), hp.get("betas", (0.9, 0.999)), hp.get("eps", 1e-8)
    d = _dir(hp, p, g)
    if hp.get("weight_decay", 0):
        d = d + hp["weight_decay"] * p
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * d
    st["u"] = np.maximum(b2 * st.get("u", 0), np.abs(d) + eps)
    return p - lr / (1 - b1 ** t) * st["m"] / st["u"]


def ref_nadam(hp, p, g, st, t):
    lr, (b1, b2), eps = hp.get("lr", 2e-3), hp.get("betas", (0.9, 0.999)), hp.get("eps", 1e-8)
    psi, wd = hp.get("momentum_decay", 4e-3), hp.get("weight_decay", 0)
    d = _dir(hp, p, g)
    if wd and hp.get("decoupled_weight_decay"):
        p = p * (1 - lr * wd)
    elif wd:
        d = d + wd * p
    mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    st["prod"] = st.get("prod", 1.0) * mu
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * d
    st["v"] = b2 * st.get("v", 0) + (1 - b2) * d * d
    denom = np.sqrt(st["v"] / (1 - b2 ** t)) + eps
    return (p - lr * (1 - mu) / (1 - st["prod"]) * d / denom
            - lr * mu_next / (1 - st["prod"] * mu_next) * st["m"] / denom)


def ref_radam(hp, p, g, st, t):
    lr, (b1, b2), eps = hp.get("lr", 1e-3), hp.get("betas", (0.9, 0.999)), hp.get("eps", 1e-8)
    wd = hp.get("weight_decay", 0)
    d = _dir(hp, p, g)
    if wd and hp.get("decoupled_weight_decay"):
        p = p * (1 - lr * wd)
    elif wd:
        d = d + wd * p
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * d
    st["v"] = b2 * st.get("v", 0) + (1 - b2) * d * d
    mhat = st["m"] / (1 - b1 ** t)
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
    if rho_t > 5:
        r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        return p - lr * mhat * r * math.sqrt(1 - b2 ** t) / (np.sqrt(st["v"]) + eps)
    return p - lr * mhat


def ref_rprop(hp, p, g, st, t):
    lr, (em, ep), (lo, hi) = hp.get("lr", 1e-2), hp.get("etas", (0.5, 1.2)), \
        hp.get("step_sizes", (1e-6, 50))
    d = _dir(hp, p, g)
    prev, size = st.get("prev", np.zeros_like(p)), st.get("size", np.full_like(p, lr))
    s = np.sign(d * prev)
    size = np.clip(size * np.where(s > 0, ep, np.where(s < 0, em, 1.0)), lo, hi)
    d = np.where(s < 0, 0.0, d)
    st["prev"], st["size"] = d, size
    return p - np.sign(d) * size


def ref_asgd(hp, p, g, st, t):
    lr, lambd, alpha, t0 = hp.get("lr", 1e-2), hp.get("lambd", 1e-4), hp.get("alpha", 0.75), \
        hp.get("t0", 1e6)
    d = _dir(hp, p, g)
    if hp.get("weight_decay", 0):
        d = d + hp["weight_decay"] * p
    eta, mu = st.get("eta", lr), st.get("mu", 1.0)
    p = p * (1 - lambd * eta) - eta * d
    st["ax"] = st.get("ax", 0) + (p - st.get("ax", 0)) * mu if mu != 1 else p
    st["eta"] = lr / (1 + lambd * lr * t) ** alpha
    st["mu"] = 1 / max(1, t - t0)
    return p


REFS = {"SGD": ref_sgd, "Adam": ref_adam, "AdamW": ref_adamw, "RMSprop": ref_rmsprop,
        "Adagrad": ref_adagrad, "Adadelta": ref_adadelta, "Adamax": ref_adamax,
        "NAdam": ref_nadam, "RAdam": ref_radam, "Rprop": ref_rprop, "ASGD": ref_asgd}

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    # lerp weight 1 - beta1 >= 0.5: clg_lerp's second formula, b - (b - a) * (1 - w)
    ("Adam", dict(lr=0.05, betas=(0.5, 0.999))),
    ("Adam", dict(lr=0.05, betas=(0.0, 0.99), amsgrad=True)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), maximize=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.05, betas=(0.3, 0.999))),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.1)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.05)),
    ("Adamax", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.05)),
    ("RAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Rprop", dict(lr=0.05)),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2), maximize=True)),
    ("ASGD", dict(lr=0.05)),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=5, weight_decay=0.1)),
]


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    coefs = [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS + 10)]
    return init, coefs


def _loss(ps, coefs, t):
    """sum(c * p) + 0.05 * sum(p^2) over the parameters that take part at step t:
    the gradient is c + 0.1 p, and parameter SKIPPY sits out odd steps."""
    total = None
    for i, (p, c) in enumerate(zip(ps, coefs[t])):
        if i == SKIPPY and t % 2:
            continue
        term = (p * clgrad.tensor(c, dtype=p.dtype)).sum() + (p * p).sum() * 0.05
        total = term if total is None else total + term
    return total


def _run_clgrad(name, hp, ps, coefs, t0, t1, opt=None, dtype=clgrad.float32):
    opt = opt or getattr(optim, name)(ps, **hp)
    for t in range(t0, t1):
        opt.zero_grad()
        _loss(ps, coefs, t).backward()
        opt.step()
    return opt


@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}-{'-'.join(h)}" for n, h in CASES])
def test_matches_reference(name, hp):
    init, coefs = _problem()
    ps = [clgrad.tensor(a, dtype=clgrad.float32, requires_grad=True) for a in init]
    opt = _run_clgrad(name, hp, ps, coefs, 0, STEPS)
    ref = [a.copy() for a in init]
    states = [{} for _ in init]
    counts = [0] * len(init)
    for t in range(STEPS):
        for i in range(len(ref)):
            if i == SKIPPY and t % 2:
                continue
            counts[i] += 1
            g = coefs[t][i] + 0.1 * ref[i]
            ref[i] = REFS[name](hp, ref[i], g, states[i], counts[i])
    for p, r in zip(ps, ref):
        # float32 arithmetic against a float64 reference over 25 steps
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=2e-5, atol=2e-5)
    if name == "ASGD":        # the running average is part of ASGD's result
        for p, st in zip(ps, states):
            np.testing.assert_allclose(opt.state[p]["ax"].numpy(), st["ax"], rtol=2e-5,
                                       atol=2e-5)


def test_float64_tight(fp64):
    init, coefs = _problem(1)
    hp = dict(lr=0.05, weight_decay=0.1, amsgrad=True)
    ps = [clgrad.tensor(a, dtype=clgrad.float64, requires_grad=True) for a in init]
    _run_clgrad("Adam", hp, ps, coefs, 0, STEPS)
    ref, states, counts = [a.copy() for a in init], [{} for _ in init], [0] * len(init)
    for t in range(STEPS):
        for i in range(len(ref)):
            if i == SKIPPY and t % 2:
                continue
            counts[i] += 1
            ref[i] = ref_adam(hp, ref[i], coefs[t][i] + 0.1 * ref[i], states[i], counts[i])
    for p, r in zip(ps, ref):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,hp", [("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("Adam", dict(lr=0.05, amsgrad=True)),
                                     ("NAdam", dict(lr=0.05)),
                                     ("Adagrad", dict(lr=0.1, lr_decay=0.1))])
def test_state_dict_resumes_bit_identically(name, hp):
    init, coefs = _problem(2)
    a = [clgrad.tensor(x, dtype=clgrad.float32, requires_grad=True) for x in init]
    b = [clgrad.tensor(x, dtype=clgrad.float32, requires_grad=True) for x in init]
    opt_a = _run_clgrad(name, hp, a, coefs, 0, 6)
    _run_clgrad(name, hp, b, coefs, 0, 6)
    sd = opt_a.state_dict()
    assert sorted(sd["state"]) == list(range(len(init)))
    assert sd["param_groups"][0]["params"] == list(range(len(init)))
    # a fresh optimizer over copies of the parameters resumes from the saved state
    c = [clgrad.tensor(p.detach().numpy(), requires_grad=True) for p in b]
    opt_c = getattr(optim, name)(c, lr=123.0)
    opt_c.load_state_dict(sd)
    assert opt_c.param_groups[0]["lr"] == hp["lr"]
    _run_clgrad(name, hp, a, coefs, 6, 12, opt=opt_a)
    _run_clgrad(name, hp, c, coefs, 6, 12, opt=opt_c)
    for x, y in zip(a, c):
        np.testing.assert_array_equal(x.detach().numpy(), y.detach().numpy())


def test_state_dict_layout():
    p = clgrad.zeros(3, requires_grad=True)
    q = clgrad.zeros(2, requires_grad=True)
    opt = optim.Adam([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    assert opt.state_dict()["state"] == {}
    (p.sum() + q.sum()).backward()
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.5]
    assert list(sd["state"][0]) == ["step", "exp_avg", "exp_avg_sq"]
    assert float(sd["state"][1]["step"]) == 1.0
    np.testing.assert_allclose(sd["state"][1]["exp_avg"].numpy(), [0.1, 0.1], rtol=1e-6)
    assert set(opt.state) == {p, q}
    sgd = optim.SGD([p], lr=0.1)
    p.grad = clgrad.ones(3)
    sgd.step()
    assert sgd.state_dict()["state"] == {0: {"momentum_buffer": None}}
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(sgd.state_dict())


def test_launches_per_step_constant():
    """A step of a 100-parameter model is one launch per arena, as for a 3-parameter one."""
    rng = np.random.default_rng(3)
    for n in (3, 100):
        ps = [clgrad.tensor(rng.standard_normal((4, 3)).astype(np.float32),
                            requires_grad=True) for _ in range(n)]
        for name in ("SGD", "Adam", "RMSprop"):
            opt = getattr(optim, name)(ps, lr=0.01, **({"momentum": 0.9} if name == "SGD" else {}))
            for p in ps:
                p.grad = None
            sum(p.sum() for p in ps).backward()
            opt.step()                       # the first step allocates state arenas
            clgrad.runtime.reset_stats()
            opt.step()
            assert clgrad.runtime.stats()["launches"] == 1, (name, n)
            clgrad.runtime.reset_stats()
            opt.zero_grad(set_to_none=False)
            assert clgrad.runtime.stats()["launches"] == 1
            assert all(float(p.grad.abs().sum()) == 0 for p in ps[:3])
            clgrad.runtime.reset_stats()
            opt.zero_grad()
            assert clgrad.runtime.stats()["launches"] == 0
            assert all(p.grad is None for p in ps)


def test_grads_land_in_arena_and_none_skips():
    p = clgrad.tensor([1.0, 2.0], requires_grad=True)
    q = clgrad.tensor([3.0], requires_grad=True)
    r = clgrad.tensor([4.0], requires_grad=True)
    opt = optim.SGD([p, q, r], lr=0.5, weight_decay=1.0)
    assert p._buf is q._buf                      # parameters now live in one arena
    (p.sum() * 2).backward()
    assert p.grad._buf is p._grad_slot._buf
    # r's gradient is assigned by hand, outside the arena; q has none and must not move
    r.grad = clgrad.tensor([1.0])
    clgrad.runtime.reset_stats()
    opt.step()
    assert clgrad.runtime.stats()["launches"] == 3    # copy r.grad in, then runs [p] and [r]
    np.testing.assert_allclose(p.detach().numpy(), [1 - 0.5 * (2 + 1), 2 - 0.5 * (2 + 2)])
    np.testing.assert_allclose(q.detach().numpy(), [3.0])
    np.testing.assert_allclose(r.detach().numpy(), [4 - 0.5 * (1 + 4)])
    # replacing a parameter's storage is noticed and folded back into the arena
    q.data = clgrad.tensor([10.0])
    q.grad = clgrad.tensor([1.0])
    opt.step()
    np.testing.assert_allclose(q.detach().numpy(), [10 - 0.5 * 11])
    assert q._buf is p._buf


def test_closure_and_groups():
    p = clgrad.tensor([1.0, -1.0], requires_grad=True)
    q = clgrad.tensor([2.0], requires_grad=True)
    opt = optim.SGD([{"params": [p]}], lr=0.1)
    opt.add_param_group({"params": q, "lr": 1.0})
    assert opt.param_groups[1]["momentum"] == 0

    def closure():
        opt.zero_grad()
        loss = (p * p).sum() + (q * q).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == pytest.approx(6.0)
    np.testing.assert_allclose(p.detach().numpy(), [0.8, -0.8], rtol=1e-6)
    np.testing.assert_allclose(q.detach().numpy(), [-2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})


@pytest.mark.parametrize("ctor,msg", [
    (lambda ps: optim.SGD(ps, lr=-1), "Invalid learning rate: -1"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "Nesterov momentum requires a momentum"),
    (lambda ps: optim.Adam(ps, eps=-1.0), "Invalid epsilon value: -1.0"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (lambda ps: optim.AdamW(ps, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda ps: optim.Adam(ps, weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda ps: optim.RMSprop(ps, alpha=-1), "Invalid alpha value: -1"),
    (lambda ps: optim.Adagrad(ps, lr_decay=-1), "Invalid lr_decay value: -1"),
    (lambda ps: optim.Adagrad(ps, initial_accumulator_value=-1),
     "Invalid initial_accumulator_value value: -1"),
    (lambda ps: optim.Adadelta(ps, rho=1.5), "Invalid rho value: 1.5"),
    (lambda ps: optim.NAdam(ps, momentum_decay=-1), "Invalid momentum_decay value: -1"),
    (lambda ps: optim.RAdam([]), "optimizer got an empty parameter list"),
])
def test_hyperparameter_errors(ctor, msg):
    ps = [clgrad.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        ctor(ps)


def test_bad_params():
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(clgrad.zeros(2, requires_grad=True), lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {clgrad.zeros(2, requires_grad=True)}}], lr=0.1)
    x = clgrad.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([x * 2], lr=0.1)


def _ref_lbfgs(x, f_and_g, steps, lr=1.0, max_iter=5, history=3, tol_grad=1e-7,
               tol_change=1e-9):
    """numpy transcription of PyTorch's documented L-BFGS loop (no line search)."""
    st = {"n_iter": 0}
    max_eval = max_iter * 5 // 4
    for _ in range(steps):
        loss, g = f_and_g(x)
        evals = 1
        if np.abs(g).max() <= tol_grad:
            continue
        n = 0
        while n < max_iter:
            n += 1
            st["n_iter"] += 1
            if st["n_iter"] == 1:
                d, dirs, stps, ro, H = -g, [], [], [], 1.0
            else:
                d, dirs, stps, ro, H = st["d"], st["dirs"], st["stps"], st["ro"], st["H"]
                y, s = g - st["pg"], d * st["t"]
                ys = y @ s
                if ys > 1e-10:
                    if len(dirs) == history:
                        dirs.pop(0), stps.pop(0), ro.pop(0)
                    dirs.append(y), stps.append(s), ro.append(1 / ys)
                    H = ys / (y @ y)
                q, al = -g, [0.0] * len(dirs)
                for i in reversed(range(len(dirs))):
                    al[i] = (stps[i] @ q) * ro[i]
                    q = q - al[i] * dirs[i]
                d = q * H
                for i in range(len(dirs)):
                    d = d + stps[i] * (al[i] - (dirs[i] @ d) * ro[i])
            st["pg"], prev = g, loss
            t = min(1.0, 1.0 / np.abs(g).sum()) * lr if st["n_iter"] == 1 else lr
            st.update(d=d, dirs=dirs, stps=stps, ro=ro, H=H, t=t)
            if g @ d > -tol_change:
                break
            x = x + t * d
            if n != max_iter:
                loss, g = f_and_g(x)
                evals += 1
            if n == max_iter or evals >= max_eval or np.abs(g).max() <= tol_grad:
                break
            if np.abs(d * t).max() <= tol_change or abs(loss - prev) < tol_change:
                break
    return x


def test_lbfgs_matches_reference(fp64):
    rng = np.random.default_rng(4)
    m = rng.standard_normal((7, 7))
    A, b = m @ m.T + 7 * np.eye(7), rng.standard_normal(7)
    x0 = rng.standard_normal(7)
    f_and_g = lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b)
    ref = _ref_lbfgs(x0.copy(), f_and_g, steps=3)
    x1 = clgrad.tensor(x0[:3], requires_grad=True)
    x2 = clgrad.tensor(x0[3:].reshape(2, 2), requires_grad=True)
    At, bt = clgrad.tensor(A), clgrad.tensor(b)
    opt = optim.LBFGS([x1, x2], max_iter=5, history_size=3)

    def closure():
        opt.zero_grad()
        # the flat vector (7,) assembled through matmuls with selection matrices
        v = x1 @ clgrad.tensor(np.eye(3, 7)) + x2.reshape(4) @ clgrad.tensor(np.eye(7)[3:])
        loss = 0.5 * (v @ At @ v) - (bt * v).sum()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    got = np.concatenate([x1.detach().numpy(), x2.detach().numpy().reshape(4)])
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="per-parameter options"):
        optim.LBFGS([{"params": [x1]}, {"params": [x2]}])


def test_split_arenas_match_reference(monkeypatch):
    """Groups larger than the device's largest allocation are split into several arenas."""
    monkeypatch.setattr(optim.Optimizer, "_max_bytes", staticmethod(lambda params: 40))
    init, coefs = _problem(5)
    hp = dict(lr=0.05, amsgrad=True)
    ps = [clgrad.tensor(a, dtype=clgrad.float32, requires_grad=True) for a in init]
    opt = _run_clgrad("Adam", hp, ps, coefs, 0, 4)
    assert len(opt._arenas[0]) == 4           # 12 | 5 | 6 + 1 + 0 | 7 elements (10-float cap)
    ref, states = [a.copy() for a in init], [{} for _ in init]
    counts = [0] * len(init)
    for t in range(4):
        for i in range(len(ref)):
            if i == SKIPPY and t % 2:
                continue
            counts[i] += 1
            ref[i] = ref_adam(hp, ref[i], coefs[t][i] + 0.1 * ref[i], states[i], counts[i])
    for p, r in zip(ps, ref):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=2e-5, atol=2e-5)


def test_zero_grad_keeps_accumulating_in_slots():
    p = clgrad.tensor([1.0, 2.0], requires_grad=True)
    q = clgrad.tensor([3.0], requires_grad=True)
    opt = optim.SGD([p, q], lr=1.0)
    for _ in range(2):
        (p.sum() * 3 + q.sum()).backward()      # the second backward accumulates in the arena
    np.testing.assert_allclose(p.grad.numpy(), [6.0, 6.0])
    q.grad = clgrad.tensor([5.0])               # a user tensor outside the arena
    opt.zero_grad(set_to_none=False)
    np.testing.assert_allclose(p.grad.numpy(), [0.0, 0.0])
    np.testing.assert_allclose(q.grad.numpy(), [0.0])
    (p.sum()).backward()
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), [0.0, 1.0])
    np.testing.assert_allclose(q.detach().numpy(), [3.0])


def test_end_to_end_regression_with_loader_and_scheduler():
    from clgrad.utils.data import DataLoader, TensorDataset
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    w_true = np.array([[1.5], [-2.0], [0.5]], np.float32)
    y = x @ w_true + 0.25
    w = clgrad.zeros((3, 1), requires_grad=True)
    b = clgrad.zeros(1, requires_grad=True)
    opt = optim.AdamW([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=0.1,
                      weight_decay=1e-4)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=8 * 15)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=0)
    for _ in range(15):
        for xb, yb in loader:
            opt.zero_grad()
            loss = ((xb @ w + b - yb) * (xb @ w + b - yb)).mean()
            loss.backward()
            opt.step()
            sched.step()
    np.testing.assert_allclose(w.detach().numpy(), w_true, atol=2e-2)
    np.testing.assert_allclose(b.detach().numpy(), [0.25], atol=2e-2)


class _SignSGD(optim.Optimizer):
    """A PyTorch-style subclass: its own step() over param_groups and self.state."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))

    def step(self, closure=None):
        with clgrad.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    st = self.state[p]
                    st["n"] = st.get("n", 0) + 1
                    p.sub_(p.grad.sign() * group["lr"])


def test_pytorch_style_subclass_and_hooks():
    p = clgrad.tensor([1.0, -1.0], requires_grad=True)
    opt = _SignSGD([p], lr=0.25)
    (p * clgrad.tensor([2.0, -3.0])).sum().backward()
    opt.step()
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), [0.5, -0.5])
    assert opt.state[p]["n"] == 2
    sd = opt.state_dict()
    assert sd["state"] == {0: {"n": 2}}
    opt2 = _SignSGD([clgrad.zeros(2, requires_grad=True)])
    opt2.load_state_dict(sd)
    assert list(opt2.state.values()) == [{"n": 2}]
    calls = []
    sgd = optim.SGD([p], lr=0.1)
    h = sgd.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    sgd.register_step_post_hook(lambda o, a, k: calls.append("post"))
    sgd.step()
    h.remove()
    sgd.step()
    assert calls == ["pre", "post", "post"]


def test_lbfgs_strong_wolfe_rosenbrock(fp64):
    xy = clgrad.tensor([-1.5, 2.0], dtype=clgrad.float64, requires_grad=True)
    opt = optim.LBFGS([xy], max_iter=100, line_search_fn="strong_wolfe")
    losses = []

    def closure():
        opt.zero_grad()
        x, y = xy[0], xy[1]
        loss = (1 - x) * (1 - x) + 100 * (y - x * x) * (y - x * x)
        loss.backward()
        losses.append(float(loss))
        return loss

    opt.step(closure)
    np.testing.assert_allclose(xy.detach().numpy(), [1.0, 1.0], atol=1e-5)
    assert losses[-1] < 1e-10 and len(losses) < 150
    xy.data = clgrad.tensor([0.0, 0.0], dtype=clgrad.float64)
    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        optim.LBFGS([xy], line_search_fn="armijo").step(closure)
