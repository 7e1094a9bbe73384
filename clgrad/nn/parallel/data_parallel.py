"""`DataParallel`: one module, several devices of one process. Each forward replicates the module
onto the other devices, splits the batch among them in proportion to their measured speed, runs
the replicas and gathers the outputs on the first device; backward reduces every replica's
gradients onto the first device's parameters (through the `ToCopyBackward0` of each copy)."""
from __future__ import annotations

import copy
import time

from ... import autograd
from ...tensor import Tensor
from ...tensor.shape import cat, stack
from ...tensor.storage import device as _device
from ..modules.module import Module

__all__ = ["DataParallel"]


def _as_device(d):
    return _device(f"cl:{d}" if isinstance(d, int) else d)


class DataParallel(Module):
    """Run `module` on several devices at once, splitting the input batch along `dim`.

    Args:
        module: the module, with its parameters and buffers on `device_ids[0]`.
        device_ids: devices (ints N meaning `cl:N`, specs or `clgrad.device`s); None or one
            device runs the module as is, as PyTorch does with a single GPU.
        output_device: where outputs are gathered (default: `device_ids[0]`).
        dim: the batch dimension of inputs and outputs.
        balance: the share of the batch each device gets. None measures it once, at the first
            forward: no-grad forwards of an equal chunk on each device, in eval mode (so no
            running statistic moves and no random number is drawn), one untimed run that builds
            the kernels, then the fastest of three timed ones; the shares are proportional to
            1 / time. A list of numbers
            fixes the shares; "equal" splits evenly. The shares used are `self.balance`.

    Replicas are rebuilt on every forward from the first device's parameters (copies recorded by
    autograd), so in-place changes to parameters or buffers are seen only on the first device,
    as in PyTorch. The replicas run one after another from Python; the devices' queues overlap
    their work because launches do not wait.

    Example:
        >>> net = nn.DataParallel(model.to("cl:0"), device_ids=[0, 1])
        >>> loss = loss_fn(net(x.to("cl:0")), y.to("cl:0")); loss.backward()
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 balance=None):
        super().__init__()
        self.module = module
        ids = list(device_ids) if device_ids is not None else []
        self.device_ids = ids
        self.dim = dim
        self._devices = [_as_device(d) for d in ids]
        self.output_device = output_device
        self._out = _as_device(output_device) if output_device is not None else (
            self._devices[0] if self._devices else None)
        if balance not in (None, "equal"):
            balance = [float(b) for b in balance]
            if len(balance) != len(ids) or any(b < 0 for b in balance) or sum(balance) <= 0:
                raise ValueError(f"balance must give one non-negative share per device "
                                 f"({len(ids)}), not all zero; got {balance}")
        if balance == "equal":
            balance = [1.0] * len(ids)
        self.balance = _normalise(balance) if balance is not None else None
        self._replicas = None
        if len(self._devices) > 1:
            first = self._devices[0]
            for name, t in _tensors(module):
                if t.device != first:
                    raise RuntimeError(f"module must have its parameters and buffers on device "
                                       f"{first} (device_ids[0]) but found one of them on "
                                       f"device: {t.device} ({name})")

    def forward(self, *inputs, **kwargs):
        if len(self._devices) < 2:
            return self.module(*inputs, **kwargs)
        n = _batch_size((inputs, kwargs), self.dim)
        if n is None:
            raise ValueError("DataParallel needs at least one tensor input to split along "
                             f"dim {self.dim}")
        if self.balance is None:
            self.balance = self._measure(inputs, kwargs, n)
        sizes = _split_sizes(n, self.balance)
        used = [i for i, s in enumerate(sizes) if s > 0]
        replicas = self._replicate([self._devices[i] for i in used])
        chunks = _scatter((inputs, kwargs), [sizes[i] for i in used],
                          [self._devices[i] for i in used], self.dim)
        outs = [rep(*a, **k) for rep, (a, k) in zip(replicas, chunks)]
        return _gather(outs, self._out, self.dim)

    # ---- replicas ------------------------------------------------------------------------------
    def _replicate(self, devices):
        """The module itself on the first device, and on each other device a structural copy
        whose parameters are recorded copies of the originals (gradients flow back to them)."""
        if self._replicas is None or _stale(self._replicas, self.module):
            self._replicas = {}
        out = []
        for dev in devices:
            if dev == self._devices[0]:
                out.append(self.module)
                continue
            rep = self._replicas.get(dev)
            if rep is None:
                rep = self._replicas[dev] = _skeleton(self.module)
            for (src, name, p), (dst, _, _) in zip(_slots(self.module, "_parameters"),
                                                   _slots(rep, "_parameters")):
                dst._parameters[name] = None if p is None else p.to(dev)
            with autograd.no_grad():
                for (src, name, b), (dst, _, _) in zip(_slots(self.module, "_buffers"),
                                                       _slots(rep, "_buffers")):
                    dst._buffers[name] = None if b is None else b.to(dev)
            for src, dst in zip(self.module.modules(), rep.modules()):
                dst.training = src.training
            out.append(rep)
        return out

    def _measure(self, inputs, kwargs, n):
        chunk = -(-n // len(self._devices))
        times = []
        modes = [m.training for m in self.module.modules()]
        self.module.eval()
        try:
            with autograd.no_grad():
                replicas = self._replicate(self._devices)
                for rep, dev in zip(replicas, self._devices):
                    a, k = _cut((inputs, kwargs), 0, chunk, dev, self.dim)
                    rep(*a, **k)           # builds the kernels: not timed
                    dev.synchronize()
                    best = None
                    for _ in range(3):     # the fastest of three: least disturbed by other load
                        t0 = time.perf_counter()
                        rep(*a, **k)
                        dev.synchronize()
                        dt_ = time.perf_counter() - t0
                        best = dt_ if best is None else min(best, dt_)
                    times.append(max(best, 1e-9))
        finally:
            for m, mode in zip(self.module.modules(), modes):
                m.training = mode
        return _normalise([1.0 / t for t in times])


def _normalise(weights):
    total = float(sum(weights))
    return [w / total for w in weights]


def _split_sizes(n, shares):
    """n split in proportion to `shares` (largest remainders; sums to n exactly)."""
    raw = [n * s for s in shares]
    sizes = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - sizes[i], reverse=True)
    for i in order[:n - sum(sizes)]:
        sizes[i] += 1
    return sizes


def _tensors(module):
    for name, p in module.named_parameters():
        yield name, p
    for name, b in module.named_buffers():
        yield name, b


def _slots(module, table):
    for m in module.modules():
        for name, t in getattr(m, table).items():
            yield m, name, t


def _skeleton(module):
    """A deep copy of the module tree that shares no tensor storage (tensors are set later)."""
    memo = {}
    for m in module.modules():
        for t in list(m._parameters.values()) + list(m._buffers.values()):
            if t is not None:
                memo[id(t)] = None
    return copy.deepcopy(module, memo)


def _stale(replicas, module):
    """Whether the module's tree changed (a submodule, parameter or buffer added or removed)."""
    shape = [(tuple(m._parameters), tuple(m._buffers)) for m in module.modules()]
    return any([(tuple(m._parameters), tuple(m._buffers)) for m in rep.modules()] != shape
               for rep in replicas.values())


def _batch_size(obj, dim):
    if isinstance(obj, Tensor):
        return obj.shape[dim] if obj.ndim > 0 else None
    if isinstance(obj, (tuple, list)):
        for o in obj:
            n = _batch_size(o, dim)
            if n is not None:
                return n
    if isinstance(obj, dict):
        return _batch_size(list(obj.values()), dim)
    return None


def _scatter(obj, sizes, devices, dim):
    """One copy of `obj` per device, each tensor cut to its slice of the batch and moved there
    (recorded, so input gradients flow back); other values are shared."""
    out = []
    start = 0
    for size, dev in zip(sizes, devices):
        out.append(_cut(obj, start, size, dev, dim))
        start += size
    return out


def _cut(obj, start, size, dev, dim):
    if isinstance(obj, Tensor):
        if obj.ndim == 0:
            return obj.to(dev)
        return obj.narrow(dim, start, size).to(dev)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_cut(o, start, size, dev, dim) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_cut(o, start, size, dev, dim) for o in obj)
    if isinstance(obj, dict):
        return type(obj)((k, _cut(v, start, size, dev, dim)) for k, v in obj.items())
    return obj


def _gather(outs, dev, dim):
    first = outs[0]
    if isinstance(first, Tensor):
        moved = [o.to(dev) for o in outs]
        if first.ndim == 0:     # a per-replica scalar (a loss): PyTorch gathers them as a vector
            return stack(moved)
        return cat(moved, dim=dim)
    if first is None:
        return None
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(_gather(list(x), dev, dim) for x in zip(*outs)))
    if isinstance(first, (tuple, list)):
        return type(first)(_gather(list(x), dev, dim) for x in zip(*outs))
    if isinstance(first, dict):
        return type(first)((k, _gather([o[k] for o in outs], dev, dim)) for k in first)
    raise TypeError(f"DataParallel cannot gather outputs of type {type(first).__name__}")

