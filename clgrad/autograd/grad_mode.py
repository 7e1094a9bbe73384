"""Grad modes (no_grad, enable_grad, inference_mode, set_grad_enabled) and anomaly detection:
thread-local switches the tape reads before recording."""
from __future__ import annotations

import functools
import inspect
import sys
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def _set_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


def is_inference_mode_enabled() -> bool:
    return getattr(_state, "inference", False)


class _GradMode:
    """Base of the grad-mode context managers; each also works as a decorator (also on
    generator functions, where the mode holds while the generator runs, not between yields)."""

    _bare_ok = True

    def __new__(cls, *args):
        # `@no_grad` without parentheses hands the decorated function in directly
        if (cls._bare_ok and len(args) == 1 and callable(args[0])
                and not isinstance(args[0], bool)):
            return cls()(args[0])
        return super().__new__(cls)

    def __init__(self, *args):
        self._args = args

    def _target(self) -> bool:
        raise NotImplementedError

    def clone(self):
        return self.__class__(*self._args)

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set_enabled(self._target())
        return None

    def __exit__(self, *exc):
        _set_enabled(self._prev)
        return False

    def __call__(self, fn):
        if inspect.isclass(fn):
            raise RuntimeError(f"{self.__class__.__name__} cannot decorate a class")
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with self.clone():
                return fn(*a, **k)
        return wrapper

    def _wrap_generator(self, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            gen = fn(*a, **k)
            try:
                with self.clone():
                    response = gen.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with self.clone():
                            gen.close()
                        raise
                    except BaseException:
                        with self.clone():
                            response = gen.throw(*sys.exc_info())
                    else:
                        with self.clone():
                            response = gen.send(request)
            except StopIteration as e:
                return e.value
        return wrapper


class no_grad(_GradMode):
    """Disable gradient recording inside the block (or the decorated function).

    Example::

        with clgrad.no_grad():
            w -= lr * w.grad
    """

    def _target(self):
        return False


class enable_grad(_GradMode):
    """Enable gradient recording inside the block, even within no_grad."""

    def _target(self):
        return True


class inference_mode(_GradMode):
    """Like no_grad, and `is_inference_mode_enabled()` reports it (clgrad keeps no separate
    inference tensors); `inference_mode(False)` leaves the grad mode as it is."""

    def __init__(self, mode: bool = True):
        self._args = (mode,)
        self.mode = bool(mode)

    def _target(self):
        return False if self.mode else is_grad_enabled()

    def __enter__(self):
        self._prev_inf = is_inference_mode_enabled()
        _state.inference = self.mode
        return super().__enter__()

    def __exit__(self, *exc):
        _state.inference = self._prev_inf
        return super().__exit__(*exc)


class set_grad_enabled(_GradMode):
    """Turn gradient recording on or off: immediately when called, and back to the previous
    mode at the end of a `with` block (or around each call of a decorated function)."""

    _bare_ok = False

    def __init__(self, mode: bool):
        self._args = (mode,)
        self.mode = bool(mode)
        self._prev = is_grad_enabled()
        _set_enabled(self.mode)

    def _target(self):
        return self.mode

    def __enter__(self):
        return None

    def __call__(self, fn):
        # used as a decorator: construction switched the mode, which must not leak out
        _set_enabled(self._prev)
        return super().__call__(fn)

    def clone(self):
        return _Switch(self.mode)


class _Switch(_GradMode):
    _bare_ok = False

    def __init__(self, mode):
        self._args = (mode,)
        self.mode = mode

    def _target(self):
        return self.mode


# ---- anomaly detection --------------------------------------------------------------------------
_anomaly = {"enabled": False, "check_nan": True}


def set_detect_anomaly(mode: bool, check_nan: bool = True) -> None:
    """Record each forward op's traceback, and check every backward's result for NaN/Inf."""
    _anomaly["enabled"] = bool(mode)
    _anomaly["check_nan"] = bool(check_nan)


def is_anomaly_enabled() -> bool:
    return _anomaly["enabled"]


def is_anomaly_check_nan_enabled() -> bool:
    return _anomaly["check_nan"]


class detect_anomaly:
    """Context manager (and decorator) form of `set_detect_anomaly(True)`."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = dict(_anomaly)
        set_detect_anomaly(True, self.check_nan)

    def __exit__(self, *exc):
        _anomaly.update(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            with detect_anomaly(self.check_nan):
                return fn(*a, **k)
        return wrapper
