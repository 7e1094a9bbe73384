"""clgrad.jit: run a training step eagerly twice, record its kernel launches on the second call,
and replay them on later calls with new input data and no Python per op (in the spirit of
tinygrad's TinyJit and CUDA graphs). docs/jit.md says what is captured and what breaks a capture.
"""
from __future__ import annotations

import functools
import warnings

from . import ops
from .runtime import Buffer, capture
from .tensor import Tensor


def jit(fn=None, *, max_captures: int = 1, warmup: int = 1):
    """Capture `fn` (a training step) and replay it.

    Call 1 (and up to `warmup` calls) runs eagerly: kernels build, optimizer state appears.
    The next call runs eagerly while every kernel launch is recorded; later calls with inputs of
    the same shapes, dtypes and devices replay the recording: new input data is copied into the
    captured input buffers, then one enqueue per launch. The learning rate and step counts of
    optimizers and the random draws (dropout) are read anew at each replay.

    Args:
        fn: the function; its Tensor arguments (also inside lists, tuples and dicts) are the
            inputs. Other arguments are part of the signature and frozen into the capture.
        max_captures: how many input signatures get a capture of their own; a call with another
            signature warns, naming what differs, and runs eagerly.
        warmup: eager calls before the recording one. With 0 the first call records: then
            state created lazily inside it (an optimizer's first step) would be created anew
            at every replay; use it only for functions that were already run.

    Returns the Tensors `fn` returned, holding this replay's values. They share storage with
    the capture: the next replay overwrites them (read what you keep, e.g. `loss.item()`).

    Example::

        @clgrad.jit
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
    """
    if fn is None:
        return functools.partial(jit, max_captures=max_captures, warmup=warmup)
    return JitFunction(fn, max_captures=max_captures, warmup=warmup)


class _Entry:
    """One input signature: its eager call count, then its capture (or why it stays eager)."""

    __slots__ = ("calls", "capture", "eager", "inputs", "outputs", "template", "grads")

    def __init__(self):
        self.calls = 0
        self.capture = None
        self.eager = None            # the reason this signature runs eagerly for good
        self.inputs = self.outputs = self.template = self.grads = ()


class JitFunction:
    """`fn` wrapped by clgrad.jit: see `jit`."""

    def __init__(self, fn, *, max_captures: int = 1, warmup: int = 1):
        if max_captures < 1:
            raise ValueError(f"max_captures must be at least 1, got {max_captures}")
        if warmup < 0:
            raise ValueError(f"warmup must be at least 0, got {warmup}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.max_captures = max_captures
        self.warmup = warmup
        self._entries: dict = {}

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self.__call__, obj)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    @property
    def captured(self) -> int:
        """How many signatures have a capture that replays."""
        return sum(e.capture is not None for e in self._entries.values())

    def launches(self) -> int:
        """Kernel launches in the capture(s) (what one replay enqueues)."""
        return sum(e.capture.n_launches for e in self._entries.values() if e.capture is not None)

    def reset(self) -> None:
        """Forget every capture (their buffers return to the pool); the next calls start over.
        Call it after changing what the function does (model.train()/eval(), p.data = ...)."""
        for e in self._entries.values():
            if e.capture is not None:
                e.capture.close()
        self._entries = {}

    def __call__(self, *args, **kwargs):
        if capture.recording():
            # inside another capture: run eagerly, so the outer recording sees the launches
            return self.fn(*args, **kwargs)
        tensors, sig = [], []
        for i, a in enumerate(args):
            _walk(a, f"args[{i}]", tensors, sig)
        for k, v in kwargs.items():
            _walk(v, f"{k}=", tensors, sig)
        sig = tuple(sig)
        entry = self._entries.get(sig)
        if entry is None:
            if len(self._entries) >= self.max_captures:
                warnings.warn(f"clgrad.jit({self.name}): {_differs(sig, self._entries)}; running "
                              f"it eagerly (this function keeps {self.max_captures} capture(s): "
                              "raise max_captures to capture this signature too)", stacklevel=2)
                return self.fn(*args, **kwargs)
            entry = self._entries[sig] = _Entry()
        if entry.capture is not None:
            return self._replay(entry, tensors)
        if entry.eager is not None:
            return self.fn(*args, **kwargs)
        entry.calls += 1
        if entry.calls <= self.warmup:
            return self.fn(*args, **kwargs)
        return self._record(entry, args, kwargs, tensors)

    # ---- capture and replay ----------------------------------------------------------------
    def _record(self, entry: _Entry, args, kwargs, tensors):
        with capture.Recording() as rec:
            out = self.fn(*args, **kwargs)
        h2d, d2h = rec.transfers["h2d"], rec.transfers["d2h"]
        if d2h or h2d:
            rec.close()
            what = []
            if d2h:
                what.append(f"read device data on the host {d2h} time(s) (.item(), .numpy(), "
                            "print, bool() of a tensor, ...)")
            if h2d:
                what.append(f"uploaded host data {h2d} time(s) (clgrad.tensor(...) of Python "
                            "or numpy values)")
            entry.eager = " and ".join(what)
            warnings.warn(f"clgrad.jit({self.name}): the function {entry.eager} while it was "
                          "being captured; a replay cannot repeat host transfers, so it runs "
                          "eagerly from now on. Return tensors and read them outside the "
                          "function instead.", stacklevel=3)
            return out
        # the capture reads its own copy of each input, so the caller's tensors stay theirs;
        # it spans the input views (not a whole dataset an input may be a slice of)
        need = {}
        for t in tensors:
            end = (t._view.extent()[1] + 1) * t.dtype.itemsize
            need[t._buf.raw] = max(need.get(t._buf.raw, 0), end)
        privates, inputs = {}, []
        for t in tensors:
            raw = t._buf.raw
            priv = privates.get(raw)
            if priv is None and rec.uses(raw):
                priv = privates[raw] = Buffer(t.device, need[raw])
                rec.substitute(raw, priv.raw)
            inputs.append(None if priv is None else (priv, t._view, t.dtype))
        outputs = []
        template = _pack(out, outputs, privates)
        grads = [(p, p._grad) for prov in rec.providers()
                 for p in getattr(prov, "params", ())]
        entry.capture = rec.finish()
        entry.inputs, entry.outputs, entry.template, entry.grads = (
            tuple(inputs), tuple(outputs), template, tuple(grads))
        return out

    def _replay(self, entry: _Entry, tensors):
        for slot, t in zip(entry.inputs, tensors):
            if slot is None:
                continue
            priv, view, dtype = slot
            if view.is_contiguous() and t._view.is_contiguous():
                isz = dtype.itemsize
                capture.copy(t.device.queue, priv.raw, view.offset * isz, t._buf.raw,
                             t._view.offset * isz, view.numel * isz)
            else:
                ops.copy_into(Tensor._make(priv, view, dtype), t)
        entry.capture.replay()
        for p, g in entry.grads:
            p._grad = g
        return _unpack(entry.template, entry.outputs)


# ---- signatures and output structure --------------------------------------------------------
def _walk(obj, path: str, tensors: list, sig: list) -> None:
    if isinstance(obj, Tensor):
        tensors.append(obj)
        sig.append((path, "tensor", tuple(obj.shape), obj.dtype, obj.device,
                    obj.requires_grad))
    elif isinstance(obj, (list, tuple)):
        sig.append((path, type(obj), len(obj)))
        for i, x in enumerate(obj):
            _walk(x, f"{path}[{i}]", tensors, sig)
    elif isinstance(obj, dict):
        sig.append((path, dict, tuple(obj)))
        for k, v in obj.items():
            _walk(v, f"{path}[{k!r}]", tensors, sig)
    else:
        try:
            hash(obj)
            sig.append((path, "value", obj))
        except TypeError:
            sig.append((path, "object", id(obj)))


def _describe(item) -> str:
    path, kind, *rest = item
    if kind == "tensor":
        shape, dtype, device, rg = rest
        return (f"{path} is a tensor of shape {list(shape)}, {dtype} on {device.spec}"
                + (", requires_grad" if rg else ""))
    if kind == "value":
        return f"{path} is {rest[0]!r}"
    if kind == "object":
        return f"{path} is another object"
    if kind is dict:
        return f"{path} is a dict with keys {list(rest[0])}"
    return f"{path} is a {kind.__name__} of length {rest[0]}"


def _differs(sig, entries) -> str:
    """Say how `sig` differs from the nearest captured signature."""
    best = None
    for other in entries:
        diffs = [(a, b) for a, b in zip(sig, other) if a != b]
        if len(sig) != len(other):
            diffs.append((("arguments", "value", len(sig)), ("arguments", "value", len(other))))
        if best is None or len(diffs) < len(best):
            best = diffs
    a, b = best[0]
    return f"this call's {_describe(a)}, but the captured call's {_describe(b)}"


def _pack(out, outputs: list, privates: dict):
    if isinstance(out, Tensor):
        buf = privates.get(out._buf.raw, out._buf)
        outputs.append((buf, out._view, out.dtype))
        return _Out(len(outputs) - 1)
    if isinstance(out, (list, tuple)):
        items = [_pack(x, outputs, privates) for x in out]
        return type(out)(*items) if hasattr(out, "_fields") else type(out)(items)
    if isinstance(out, dict):
        return type(out)((k, _pack(v, outputs, privates)) for k, v in out.items())
    return out


class _Out:
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _unpack(template, outputs):
    if isinstance(template, _Out):
        buf, view, dtype = outputs[template.index]
        return Tensor._make(buf, view, dtype)
    if isinstance(template, (list, tuple)):
        items = [_unpack(x, outputs) for x in template]
        return type(template)(*items) if hasattr(template, "_fields") else type(template)(items)
    if isinstance(template, dict):
        return type(template)((k, _unpack(v, outputs)) for k, v in template.items())
    return template
