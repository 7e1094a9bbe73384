"""Optimizer: parameter groups packed into flat device arenas, updated by one fused kernel each.

At construction every parameter group's tensors are copied into one flat buffer per dtype (split
where a buffer would pass the device's largest allocation) and each parameter is rebound to a view
of it (`p.data = view`), so the module that owns it sees the same tensor object. Each parameter's
`_grad_slot` is a view of a twin gradient arena: autograd writes a parameter's first gradient of a
backward there, so after backward a group's gradients lie in one flat buffer. State (exp_avg, ...)
lives in arenas of the same layout. A step is then one kernel launch per arena, with the
hyperparameters and step-dependent bias corrections passed as scalar arguments: no host sync and
no per-parameter launches. Parameters whose grad is None are skipped (the arena is updated in
contiguous runs of parameters that have one), as PyTorch skips them.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict, defaultdict

import numpy as np

from .. import autograd
from ..dtypes import float32
from ..tensor import Tensor, storage
from ..view import View


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


class _Arena:
    """Flat buffers of one (param group, dtype, device) chunk: parameters, gradients, state."""

    def __init__(self, params, dtype, device):
        self.params = list(params)
        self.dtype, self.device = dtype, device
        self.offsets, total = [], 0
        for p in self.params:
            self.offsets.append(total)
            total += p.numel()
        self.numel = total
        self.data = Tensor._empty((total,), dtype, device)
        self.grad = Tensor._zeros((total,), dtype, device)
        self.state: dict[str, Tensor] = {}
        self.steps = [0] * len(self.params)      # per-parameter step counts (host ints)
        self.host: dict[str, list] = {}          # per-parameter host scalars (NAdam's mu_product)
        self.views, self.slots = [], []
        self.sizes = [p.numel() for p in self.params]
        for p, off in zip(self.params, self.offsets):
            v = View.contiguous(tuple(p.shape), off)
            view = Tensor._make(self.data._buf, v, dtype)
            slot = Tensor._make(self.grad._buf, v, dtype)
            self.views.append(v)
            self.slots.append(slot)
            if view.numel():
                storage.copy_into(view, p)
            old = p.grad
            p.data = view
            p._grad_slot = slot
            if old is not None:
                if slot.numel():
                    storage.copy_into(slot, old)
                p.grad = slot

    def view(self, name: str, i: int) -> Tensor:
        return Tensor._make(self.state[name]._buf, self.views[i], self.dtype)

    def ensure(self, name: str, init=0.0) -> Tensor:
        t = self.state.get(name)
        if t is None:
            t = self.state[name] = Tensor._full((self.numel,), init, self.dtype, self.device)
        return t

    def rebind(self, i: int) -> None:
        """Bring a parameter whose storage the user replaced (p.data = ...) back into the arena."""
        p = self.params[i]
        if p._buf is self.data._buf and p._view == self.views[i]:
            p._view = self.views[i]
            return
        if p.dtype is not self.dtype or p.device != self.device:
            raise RuntimeError(f"a parameter of the optimizer changed from {self.dtype} on "
                               f"{self.device} to {p.dtype} on {p.device}; convert or move the "
                               "model before constructing its optimizer")
        view = Tensor._make(self.data._buf, self.views[i], self.dtype)
        if tuple(p.shape) != self.views[i].shape:
            raise RuntimeError(f"a parameter of shape {list(self.views[i].shape)} was replaced by "
                               f"one of shape {list(p.shape)} after the optimizer was built")
        if view.numel():
            storage.copy_into(view, p)
        p.data = view


def _chunks(params, max_bytes):
    """Split a group's parameters by (device, dtype), then into runs within `max_bytes`."""
    by_kind: dict = OrderedDict()
    for p in params:
        by_kind.setdefault((p.device, p.dtype), []).append(p)
    for (device, dtype), ps in by_kind.items():
        chunk, size = [], 0
        for p in ps:
            nb = p.numel() * dtype.itemsize
            if chunk and size + nb > max_bytes:
                yield device, dtype, chunk
                chunk, size = [], 0
            chunk.append(p)
            size += nb
        if chunk:
            yield device, dtype, chunk


class Optimizer:
    """Base class: holds `param_groups` (dicts of params and hyperparameters) and `defaults`.

    Subclasses describe their update with `_state_names(group)` (the state buffers a step reads
    and writes, with initial values), `_update(group)` (C statements over `p`, `g`, the state
    variables and scalar names) and `_scalars(group, step, arena, i)` (the scalar values for a
    run of parameters whose step count is `step` after this step)."""

    _has_step = True          # whether the state dict carries 'step' (SGD's does not)
    _eager_state = False      # whether state exists before the first step (Adagrad)

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.param_groups: list[dict] = []
        # a PyTorch-style subclass (its own step() over self.state) keeps a plain state dict
        self._custom_state = defaultdict(dict)
        self._step_pre_hooks: dict = OrderedDict()
        self._step_post_hooks: dict = OrderedDict()
        self._arenas: list[list[_Arena]] = []
        self._group_lists: list = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got " + type(params).__name__)
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ---- groups and arenas ---------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            param_group["params"] = list(params)
        plist = param_group["params"]
        for p in plist:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + type(p).__name__)
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if not p.dtype.is_floating:
                raise ValueError(f"optimizer can only optimize floating point Tensors, got "
                                 f"{p.dtype}")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        if len({id(p) for p in plist}) != len(plist):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error", stacklevel=3)
            seen, uniq = set(), []
            for p in plist:
                if id(p) not in seen:
                    seen.add(id(p))
                    uniq.append(p)
            param_group["params"] = plist = uniq
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in plist):
            raise ValueError("some parameters appear in more than one parameter group")
        self._check_group(param_group)
        self.param_groups.append(param_group)
        self._arenas.append(self._build(param_group))
        self._group_lists.append((plist, len(plist)))

    def _check_group(self, group: dict) -> None:
        """Hook for subclasses: validate a group's hyperparameters (ValueError)."""

    def _build(self, group) -> list:
        arenas = []
        for device, dtype, chunk in _chunks(group["params"], self._max_bytes(group["params"])):
            arena = _Arena(chunk, dtype, device)
            for name, init in self._state_names(group).items():
                if self._eager_state:
                    arena.ensure(name, init)
            arenas.append(arena)
        return arenas

    @staticmethod
    def _max_bytes(params) -> int:
        if not params:
            return 1
        # the pool rounds allocations up by at most 1/8; stay clear of the device's limit
        return max(1, params[0].device.max_alloc_size * 7 // 8)

    def _sync_groups(self) -> None:
        """Rebuild a group's arenas if its params list was replaced or resized by the user."""
        for gi, group in enumerate(self.param_groups):
            plist, n = self._group_lists[gi]
            if group["params"] is not plist or len(plist) != n:
                group["params"] = list(group["params"])
                self._arenas[gi] = self._build(group)
                self._group_lists[gi] = (group["params"], len(group["params"]))

    # ---- the subclass interface ----------------------------------------------------------------
    def _state_names(self, group) -> dict:
        """{state name: initial value} of the state buffers this group's update uses."""
        return {}

    def _update(self, group) -> tuple:
        """(variant name, C statements, scalar names) of this group's fused update."""
        raise NotImplementedError

    def _scalars(self, group, step: int, arena: _Arena, i: int) -> dict:
        raise NotImplementedError

    def _run_key(self, arena: _Arena, i: int):
        """Parameters may share one launch only when this key agrees (their step-dependent
        scalars are then equal)."""
        return arena.steps[i]

    def _after_step(self, group, arena: _Arena, i: int) -> None:
        """Hook: advance per-parameter host state once parameter i took a step."""

    # ---- step ----------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients: to None (the arena slot stays for the next backward), or to zero with
        one launch per arena."""
        self._sync_groups()
        for arenas in self._arenas:
            for arena in arenas:
                if not set_to_none and arena.numel:
                    storage.copy_into(arena.grad, 0.0)
                for p, slot in zip(arena.params, arena.slots):
                    if p.grad is None:
                        continue
                    if set_to_none:
                        p.grad = None
                    elif p.grad is not slot:
                        if p.grad._ctx is not None:
                            p.grad = p.grad.detach()
                        else:
                            p.grad.requires_grad_(False)
                        storage.copy_into(p.grad, 0.0)

    def register_step_pre_hook(self, hook):
        """hook(optimizer, args, kwargs) runs before each fused step()."""
        return _register(self._step_pre_hooks, hook)

    def register_step_post_hook(self, hook):
        """hook(optimizer, args, kwargs) runs after each fused step()."""
        return _register(self._step_post_hooks, hook)

    def step(self, closure=None):
        """Perform a single optimization step; `closure` re-evaluates the model and returns the
        loss (it runs with gradients enabled)."""
        for hook in list(self._step_pre_hooks.values()):
            hook(self, (closure,), {})
        loss = self._fused_step(closure)
        for hook in list(self._step_post_hooks.values()):
            hook(self, (closure,), {})
        return loss

    def _fused_step(self, closure):
        loss = None
        if closure is not None:
            with autograd.enable_grad():
                loss = closure()
        self._sync_groups()
        with autograd.no_grad():
            for group, arenas in zip(self.param_groups, self._arenas):
                for arena in arenas:
                    self._step_arena(group, arena)
        return loss

    def _step_arena(self, group, arena: _Arena) -> None:
        runs, cur = [], None
        data_buf, views, slots, sizes = arena.data._buf, arena.views, arena.slots, arena.sizes
        run_key = self._run_key
        after = self._after_step if type(self)._after_step is not Optimizer._after_step else None
        for i, p in enumerate(arena.params):
            if p._buf is not data_buf or p._view is not views[i]:
                arena.rebind(i)
            g = p.grad
            if g is None:
                cur = None
                continue
            if sizes[i] == 0:
                # nothing to launch, but the step still counts, as in PyTorch
                if after is not None:
                    after(group, arena, i)
                arena.steps[i] += 1
                continue
            slot = slots[i]
            if g is not slot:
                # a gradient outside the arena (assigned by the user, or built with
                # create_graph): move it into its slot, where the fused kernel reads it
                storage.copy_into(slot, g.detach())
                p.grad = slot
                p._grad_slot = slot
            elif p._grad_slot is not slot:
                p._grad_slot = slot
            key = run_key(arena, i)
            if cur is not None and cur[0] == key:
                cur[2] = i
            else:
                cur = [key, i, i]
                runs.append(cur)
        if not runs:
            return
        name, update, scalar_names = self._update(group)
        names = tuple(self._state_names(group).items())
        states = tuple((n, arena.ensure(n, init)) for n, init in names)
        steps = arena.steps
        for _, first, last in runs:
            values = self._scalars(group, steps[first] + 1, arena, first)
            start = arena.offsets[first]
            end = arena.offsets[last] + sizes[last]
            storage.optim_update(name, update, arena.data, arena.grad, states,
                                 tuple((s, values[s]) for s in scalar_names), start, end - start,
                                 replay=_Replay(self, group, arena, first, last, scalar_names))
            self._advance(group, arena, first, last)

    def _advance(self, group, arena: _Arena, first: int, last: int) -> None:
        """Parameters first..last took a step: their step counts and host state move on."""
        after = self._after_step if type(self)._after_step is not Optimizer._after_step else None
        steps, sizes = arena.steps, arena.sizes
        for i in range(first, last + 1):
            if sizes[i]:
                if after is not None:
                    after(group, arena, i)
                steps[i] += 1

    # ---- state ---------------------------------------------------------------------------------
    def _state_keys(self, group) -> list:
        """Names of this group's state entries in PyTorch's order (besides 'step')."""
        return list(self._state_names(group))

    def _param_state(self, group, arena: _Arena, i: int) -> dict | None:
        if arena.steps[i] == 0 and not self._eager_state:
            return None
        st = {}
        if self._has_step:
            st["step"] = Tensor._full((), float(arena.steps[i]), _float32(), arena.device)
        for name in self._state_keys(group):
            if name in arena.host:
                st[name] = Tensor._full((), float(arena.host[name][i]), _float32(),
                                        arena.device)
            elif name in arena.state:
                st[name] = arena.view(name, i)
            else:
                st[name] = None
        return st

    def _locate(self):
        """(group index, arena, index in arena) for each parameter, in param_groups order."""
        self._sync_groups()
        where = {}
        for gi, arenas in enumerate(self._arenas):
            for arena in arenas:
                for i, p in enumerate(arena.params):
                    where[id(p)] = (gi, arena, i)
        out = []
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                out.append(where[id(p)])
        return out

    def _is_custom(self) -> bool:
        return type(self)._update is Optimizer._update

    @property
    def state(self) -> dict:
        """Per-parameter state, keyed by parameter: views into the state arenas (writes to them
        reach the optimizer); 'step' is a fresh 0-d tensor. A subclass that writes its own
        step() gets a plain persistent dict, as in PyTorch."""
        if self._is_custom():
            return self._custom_state
        out = defaultdict(dict)
        groups = self.param_groups
        for gi, arena, i in self._locate():
            st = self._param_state(groups[gi], arena, i)
            if st is not None:
                out[arena.params[i]] = st
        return out

    @state.setter
    def state(self, value) -> None:
        self._custom_state = value

    def state_dict(self) -> dict:
        """PyTorch's layout: 'state' keyed by parameter index (counting through all groups) and
        'param_groups' whose 'params' are those indices."""
        state, groups, idx = {}, [], 0
        if self._is_custom():
            params = [p for g in self.param_groups for p in g["params"]]
            state = {i: dict(self._custom_state[p]) for i, p in enumerate(params)
                     if p in self._custom_state}
        locs = self._locate()
        for group in self.param_groups:
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = list(range(idx, idx + len(group["params"])))
            groups.append(g)
            idx += len(group["params"])
        for k, (gi, arena, i) in enumerate(locs if not self._is_custom() else ()):
            st = self._param_state(self.param_groups[gi], arena, i)
            if st is not None:
                state[k] = st
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for mine, theirs in zip(self.param_groups, groups):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
        index = {}
        for mine, theirs in zip(self.param_groups, groups):
            for k, v in theirs.items():
                if k != "params":
                    mine[k] = v
            for pid in theirs["params"]:
                index[pid] = len(index)
        saved = state_dict["state"]
        if self._is_custom():
            params = [p for g in self.param_groups for p in g["params"]]
            self._custom_state = defaultdict(dict)
            for pid, k in index.items():
                st = saved.get(pid, saved.get(str(pid)))
                if st is not None:
                    self._custom_state[params[k]] = {
                        name: v.clone() if isinstance(v, Tensor) else v for name, v in st.items()}
            return
        locs = self._locate()
        for pid, k in index.items():
            gi, arena, i = locs[k]
            st = saved.get(pid, saved.get(str(pid)))
            self._load_param_state(self.param_groups[gi], arena, i, st)

    def _load_param_state(self, group, arena: _Arena, i: int, st) -> None:
        if st is None:
            arena.steps[i] = 0
            for name, init in self._state_names(group).items():
                if name in arena.state and arena.views[i].numel:
                    storage.copy_into(arena.view(name, i), init)
            return
        arena.steps[i] = int(_as_float(st["step"])) if "step" in st else self._implied_step(st)
        for name, value in st.items():
            if name == "step":
                continue
            if name in arena.host:
                arena.host[name][i] = _as_float(value)
            elif value is not None:
                dst = arena.view(name, i) if name in arena.state else None
                if dst is None:
                    arena.ensure(name, self._state_names(group).get(name, 0.0))
                    dst = arena.view(name, i)
                if dst.numel():
                    storage.copy_into(dst, _as_tensor(value, arena))

    def _implied_step(self, st) -> int:
        return 1

    def __repr__(self) -> str:
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        lines.append(")")
        return "\n".join(lines)


class _Replay:
    """What a captured step (clgrad.jit) asks of one fused update at each replay: its scalars
    now (a scheduler's learning rate, this step's bias corrections), with the step taken."""

    __slots__ = ("opt", "group", "arena", "first", "last", "names")

    def __init__(self, opt, group, arena, first, last, names):
        self.opt, self.group, self.arena = opt, group, arena
        self.first, self.last, self.names = first, last, names

    def __call__(self) -> tuple:
        arena = self.arena
        values = self.opt._scalars(self.group, arena.steps[self.first] + 1, arena, self.first)
        self.opt._advance(self.group, arena, self.first, self.last)
        return tuple(values[s] for s in self.names)

    @property
    def params(self) -> list:
        return self.arena.params[self.first:self.last + 1]


class _Handle:
    def __init__(self, table, key):
        self.table, self.key = table, key

    def remove(self):
        self.table.pop(self.key, None)


def _register(table, hook):
    key = object()
    table[key] = hook
    return _Handle(table, key)


def _float32():
    return float32


def _as_float(v) -> float:
    if isinstance(v, Tensor):
        return float(v.item())
    return float(v)


def _as_tensor(v, arena: _Arena) -> Tensor:
    if isinstance(v, Tensor):
        return v if v.device == arena.device else v.to(arena.device)
    return Tensor._from_numpy(np.asarray(v), arena.dtype, arena.device)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


_TAGS = {"maximize": "max", "weight_decay": "wd", "momentum": "mom", "nesterov": "nest",
         "amsgrad": "ams", "centered": "ctr", "decoupled_weight_decay": "dwd"}


def _flags(group, *keys) -> str:
    """A kernel-name suffix listing the switches that select this update variant."""
    return "_".join(_TAGS[k] for k in keys if group.get(k)) or "plain"


def _grad_lines(group, decoupled: bool = False) -> str:
    """C statements turning the gradient `g` into the direction `d` (sign for maximize, L2
    weight decay unless it is decoupled, when the parameter shrinks first instead)."""
    lines = ["clg_t d = -g;" if group.get("maximize") else "clg_t d = g;"]
    if group.get("weight_decay", 0) != 0:
        lines.append("p = p * decay;" if decoupled else "d = d + weight_decay * p;")
    return "\n".join(lines)
