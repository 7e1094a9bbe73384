"""L-BFGS over the flat parameter arena (the arena is the flat vector the algorithm needs)."""
from __future__ import annotations

import math

from .. import autograd
from ..tensor import storage
from .optimizer import Optimizer


def _cubic_min(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1, g2, clipped to
    `bounds` (default: between the two points); their midpoint when the cubic has none."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(disc)
    if x1 <= x2:
        m = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        m = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(m, lo), hi)


def _strong_wolfe(evaluate, t, d_norm, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """Line search for a step t meeting the strong Wolfe conditions (Nocedal & Wright, alg.
    3.5/3.6, cubic interpolation), as PyTorch's L-BFGS runs it. `evaluate(t)` returns
    (f, flat grad, directional derivative) at x + t d. Returns (f, grad, t, evaluations)."""
    f_new, g_new, gtd_new = evaluate(t)
    evals, it, done = 1, 0, False
    prev = [0.0, f, g, gtd]                   # [t, f, grad, gtd]
    bracket = None
    # bracketing: grow t until an interval surely holds an acceptable point
    while it < max_ls:
        cur = [t, f_new, g_new, gtd_new]
        if f_new > f + c1 * t * gtd or (it > 1 and f_new >= prev[1]) or gtd_new >= 0:
            bracket = [prev, cur]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = [cur], True
            break
        t_next = _cubic_min(prev[0], prev[1], prev[3], t, f_new, gtd_new,
                            bounds=(t + 0.01 * (t - prev[0]), t * 10))
        prev, t = cur, t_next
        f_new, g_new, gtd_new = evaluate(t)
        evals += 1
        it += 1
    if it == max_ls:
        bracket = [[0.0, f, g, gtd], [t, f_new, g_new, gtd_new]]
    low, high = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    insufficient = False
    # zoom: shrink the bracket until a point meets both conditions
    while not done and it < max_ls:
        a, b = bracket[0][0], bracket[1][0]
        if abs(b - a) * d_norm < tolerance_change:
            break
        t = _cubic_min(a, bracket[0][1], bracket[0][3], b, bracket[1][1], bracket[1][3])
        lo, hi = min(a, b), max(a, b)
        eps = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < eps:
            # too close to an end: step back inside unless the last trial was fine
            if insufficient or t >= hi or t <= lo:
                t = hi - eps if abs(t - hi) < abs(t - lo) else lo + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new, gtd_new = evaluate(t)
        evals += 1
        it += 1
        cur = [t, f_new, g_new, gtd_new]
        if f_new > f + c1 * t * gtd or f_new >= bracket[low][1]:
            bracket[high] = cur
            low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = cur
    t, f_new, g_new, _ = bracket[low]
    return f_new, g_new, t, evals


class LBFGS(Optimizer):
    r"""Limited-memory BFGS, PyTorch's formulation without line search.

    Each `step(closure)` runs up to max_iter iterations: the direction is the two-loop recursion
    d = -H g over the last history_size pairs (s = t d, y = g_new - g_old, kept when y.s > 1e-10,
    H0 = y.s / y.y), the first step size is min(1, 1/|g|_1) * lr, then lr; it stops early on
    |g|_inf <= tolerance_grad, g.d > -tolerance_change, |t d|_inf <= tolerance_change, a loss
    change below tolerance_change, or max_eval closure evaluations. The scalar tests read values
    from the device, as PyTorch's do.

    Args: lr (default 1), max_iter (20), max_eval (max_iter * 5 // 4), tolerance_grad (1e-7),
    tolerance_change (1e-9), history_size (100), line_search_fn (None or 'strong_wolfe': a
    line search for a step meeting the strong Wolfe conditions). Only one parameter group, of
    one dtype on one device.
    """

    _has_step = False

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        if len(self._arenas[0]) != 1:
            raise ValueError("LBFGS needs all parameters in one dtype on one device")
        self._lbfgs: dict = {"func_evals": 0, "n_iter": 0}

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    def _flat_grad(self):
        """A copy of the gradient arena, with zeros for parameters without a gradient."""
        arena = self._arenas[0][0]
        for i, p in enumerate(arena.params):
            arena.rebind(i)
            slot = arena.slots[i]
            if not arena.sizes[i]:
                continue
            if p.grad is None:
                storage.copy_into(slot, 0.0)
            elif p.grad is not slot:
                storage.copy_into(slot, p.grad.detach())
                p.grad = slot
        return arena.grad.clone()

    def _add(self, t, d):
        arena = self._arenas[0][0]
        storage.optim_update("lbfgs_axpy", "p = p + t * g;", arena.data, d, (), (("t", t),), 0,
                             arena.numel)

    def step(self, closure):
        if closure is None:
            raise RuntimeError("LBFGS requires a closure that reevaluates the model and returns "
                               "the loss")
        self._sync_groups()
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history = group["history_size"]
        state = self._lbfgs

        def evaluate():
            with autograd.enable_grad():
                return closure()

        dot = lambda a, b: float((a * b).sum())
        orig_loss = evaluate()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        with autograd.no_grad():
            flat_grad = self._flat_grad()
            opt_cond = float(flat_grad.abs().max()) <= tol_grad
            if opt_cond:
                return orig_loss
            d, t = state.get("d"), state.get("t")
            old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
            H_diag, prev_flat_grad = state.get("H_diag"), state.get("prev_flat_grad")
            prev_loss = state.get("prev_loss")
            n_iter = 0
            while n_iter < max_iter:
                n_iter += 1
                state["n_iter"] += 1
                if state["n_iter"] == 1:
                    d = -flat_grad
                    old_dirs, old_stps, ro, H_diag = [], [], [], 1.0
                else:
                    y = flat_grad - prev_flat_grad
                    s = d * t
                    ys = dot(y, s)
                    if ys > 1e-10:
                        if len(old_dirs) == history:
                            old_dirs.pop(0)
                            old_stps.pop(0)
                            ro.pop(0)
                        old_dirs.append(y)
                        old_stps.append(s)
                        ro.append(1.0 / ys)
                        H_diag = ys / dot(y, y)
                    al = [0.0] * len(old_dirs)
                    q = -flat_grad
                    for i in range(len(old_dirs) - 1, -1, -1):
                        al[i] = dot(old_stps[i], q) * ro[i]
                        q = q - old_dirs[i] * al[i]
                    r = q * H_diag
                    for i in range(len(old_dirs)):
                        be_i = dot(old_dirs[i], r) * ro[i]
                        r = r + old_stps[i] * (al[i] - be_i)
                    d = r
                prev_flat_grad = flat_grad
                prev_loss = loss
                if state["n_iter"] == 1:
                    t = min(1.0, 1.0 / float(flat_grad.abs().sum())) * lr
                else:
                    t = lr
                gtd = dot(flat_grad, d)
                if gtd > -tol_change:
                    break
                ls_func_evals = 0
                if group["line_search_fn"] is not None:
                    if group["line_search_fn"] != "strong_wolfe":
                        raise RuntimeError("only 'strong_wolfe' is supported")
                    loss, flat_grad, t, ls_func_evals = self._line_search(evaluate, t, d, loss,
                                                                          flat_grad, gtd)
                    self._add(t, d)
                    opt_cond = float(flat_grad.abs().max()) <= tol_grad
                else:
                    self._add(t, d)
                    if n_iter != max_iter:
                        loss = float(evaluate())
                        flat_grad = self._flat_grad()
                        opt_cond = float(flat_grad.abs().max()) <= tol_grad
                        ls_func_evals = 1
                current_evals += ls_func_evals
                state["func_evals"] += ls_func_evals
                if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                    break
                if float((d * t).abs().max()) <= tol_change:
                    break
                if abs(loss - prev_loss) < tol_change:
                    break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss

    def _line_search(self, evaluate, t, d, loss, flat_grad, gtd):
        arena = self._arenas[0][0]
        x0 = arena.data.clone()

        def at(step):
            # evaluate at x0 + step d, then put the parameters back
            self._add(step, d)
            f = float(evaluate())
            g = self._flat_grad()
            storage.copy_into(arena.data, x0)
            return f, g, float((g * d).sum())

        return _strong_wolfe(at, t, float(d.abs().max()), loss, flat_grad, gtd)

    def state_dict(self):
        sd = super().state_dict()
        if self._lbfgs["n_iter"]:
            sd["state"][0] = dict(self._lbfgs)
        return sd

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        st = state_dict["state"].get(0)
        self._lbfgs = dict(st) if st else {"func_evals": 0, "n_iter": 0}

    def _param_state(self, group, arena, i):
        return None
