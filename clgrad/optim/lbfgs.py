"""L-BFGS over the flat parameter arena (the arena is the flat vector the algorithm needs)."""
from __future__ import annotations

from .. import autograd, ops
from .optimizer import Optimizer


class LBFGS(Optimizer):
    r"""Limited-memory BFGS, PyTorch's formulation without line search.

    Each `step(closure)` runs up to max_iter iterations: the direction is the two-loop recursion
    d = -H g over the last history_size pairs (s = t d, y = g_new - g_old, kept when y.s > 1e-10,
    H0 = y.s / y.y), the first step size is min(1, 1/|g|_1) * lr, then lr; it stops early on
    |g|_inf <= tolerance_grad, g.d > -tolerance_change, |t d|_inf <= tolerance_change, a loss
    change below tolerance_change, or max_eval closure evaluations. The scalar tests read values
    from the device, as PyTorch's do.

    Args: lr (default 1), max_iter (20), max_eval (max_iter * 5 // 4), tolerance_grad (1e-7),
    tolerance_change (1e-9), history_size (100), line_search_fn (None; 'strong_wolfe' is not
    implemented). Only one parameter group, of one dtype on one device.
    """

    _has_step = False

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn is not None:
            raise NotImplementedError("LBFGS: line_search_fn='strong_wolfe' is not implemented "
                                      "in clgrad; use line_search_fn=None")
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
                ops.copy_into(slot, 0.0)
            elif p.grad is not slot:
                ops.copy_into(slot, p.grad.detach())
                p.grad = slot
        return arena.grad.clone()

    def _add(self, t, d):
        arena = self._arenas[0][0]
        ops.optim_update("lbfgs_axpy", "p = p + t * g;", arena.data, d, (), (("t", t),), 0,
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
