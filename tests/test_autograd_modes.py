"""Grad modes (no_grad, enable_grad, set_grad_enabled, inference_mode) as context managers and
decorators, their nesting and thread-locality; anomaly detection."""
import threading
import warnings

import numpy as np
import pytest

import clgrad
from clgrad import autograd


def _x(device):
    return clgrad.ones(3, device=device, requires_grad=True)


def test_no_grad_context(device):
    x = _x(device)
    with clgrad.no_grad():
        y = x * 2
        assert not clgrad.is_grad_enabled()
    assert clgrad.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_decorators(device):
    x = _x(device)

    @clgrad.no_grad()
    def f(t):
        return t * 2

    @clgrad.no_grad
    def g(t):
        """doc of g"""
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    assert g.__name__ == "g" and g.__doc__ == "doc of g"
    assert clgrad.is_grad_enabled()
    assert (x * 2).requires_grad


def test_enable_grad_inside_no_grad(device):
    x = _x(device)
    with clgrad.no_grad():
        with clgrad.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad

    @clgrad.enable_grad()
    def f(t):
        return t * 2

    @clgrad.enable_grad
    def g(t):
        return t * 2

    with clgrad.no_grad():
        assert f(x).requires_grad and g(x).requires_grad
        assert not clgrad.is_grad_enabled()


def test_set_grad_enabled(device):
    x = _x(device)
    with clgrad.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with clgrad.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not clgrad.is_grad_enabled()
    assert clgrad.is_grad_enabled()
    # as a plain call it switches the mode until switched back
    clgrad.set_grad_enabled(False)
    try:
        assert not clgrad.is_grad_enabled() and not (x * 2).requires_grad
    finally:
        clgrad.set_grad_enabled(True)
    assert clgrad.is_grad_enabled()

    @clgrad.set_grad_enabled(False)
    def f(t):
        return t * 2

    assert clgrad.is_grad_enabled()          # decorating did not switch the mode
    assert not f(x).requires_grad
    assert clgrad.is_grad_enabled()


def test_inference_mode(device):
    x = _x(device)
    assert not autograd.is_inference_mode_enabled()
    with clgrad.inference_mode():
        assert autograd.is_inference_mode_enabled()
        assert not (x * 2).requires_grad
        with clgrad.inference_mode(False):
            assert not autograd.is_inference_mode_enabled()
    assert not autograd.is_inference_mode_enabled()

    @clgrad.inference_mode()
    def f(t):
        return t * 2

    @clgrad.inference_mode
    def g(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    assert (x * 2).requires_grad


def test_modes_restore_after_exception(device):
    with pytest.raises(ValueError):
        with clgrad.no_grad():
            raise ValueError
    assert clgrad.is_grad_enabled()

    @clgrad.no_grad()
    def boom():
        raise KeyError

    with pytest.raises(KeyError):
        boom()
    assert clgrad.is_grad_enabled()


def test_decorated_generator_keeps_mode_per_step(device):
    x = _x(device)

    @clgrad.no_grad()
    def gen():
        for _ in range(2):
            yield (x * 2).requires_grad, clgrad.is_grad_enabled()

    it = gen()
    assert next(it) == (False, False)
    assert clgrad.is_grad_enabled()           # not leaked to the caller between steps
    assert next(it) == (False, False)
    with pytest.raises(StopIteration):
        next(it)


def test_grad_mode_is_thread_local(device):
    x = _x(device)
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        seen["start"] = clgrad.is_grad_enabled()      # a new thread starts enabled
        with clgrad.no_grad():
            seen["worker"] = (x * 2).requires_grad
            inside.set()
            release.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    main_sees = (x * 2).requires_grad and clgrad.is_grad_enabled()
    release.set()
    t.join()
    assert main_sees and seen == {"start": True, "worker": False}
    with clgrad.no_grad():
        t = threading.Thread(target=lambda: seen.__setitem__("child", clgrad.is_grad_enabled()))
        t.start()
        t.join()
    assert seen["child"] is True


def test_backward_under_no_grad_still_works(device):
    x = _x(device)
    y = (x * x).sum()
    with clgrad.no_grad():
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])


# ---- anomaly detection ------------------------------------------------------------------------
def _sqrt_of_clamped(device):
    x = clgrad.tensor([4.0, -1.0], device=device, requires_grad=True)
    y = x * (x > 0)         # masks -1 to 0: forward is fine
    z = y.sqrt()            # d sqrt/dy at 0 is inf, times the mask's 0 gives nan
    return x, z.sum()


def test_anomaly_names_backward_and_forward_trace(device):
    x, loss = None, None
    with autograd.detect_anomaly():
        x, loss = _sqrt_of_clamped(device)
        with pytest.raises(RuntimeError) as err:
            loss.backward()
    msg = str(err.value)
    # PyTorch checks NaN only and would name MulBackward0 (inf * 0); clgrad also stops at Inf,
    # which names the op where it starts
    assert "Function 'SqrtBackward0' returned inf values in its 0th output." in msg
    assert "Traceback of forward call that caused the error" in msg
    assert "_sqrt_of_clamped" in msg and msg.rstrip().splitlines()[-1].strip().startswith(
        "z = y.sqrt()")
    assert not autograd.is_anomaly_enabled()


def test_anomaly_inf_times_zero(device):
    autograd.set_detect_anomaly(True)
    try:
        a = clgrad.tensor([0.0, 1.0], device=device, requires_grad=True)
        b = (a.log() * 0).sum()          # log's backward at 0 gets 0 / 0
        with pytest.raises(RuntimeError, match="Function 'LogBackward0' returned nan values in "
                                               "its 0th output"):
            b.backward()
    finally:
        autograd.set_detect_anomaly(False)


def test_anomaly_off_gives_nan_silently(device):
    x, loss = _sqrt_of_clamped(device)
    loss.backward()
    assert np.isnan(x.grad.numpy()[1])


def test_anomaly_warns_with_forward_trace_on_backward_error(device):
    class Bad(autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 1

        @staticmethod
        def backward(ctx, g):
            raise ValueError("broken backward")

    with autograd.detect_anomaly():
        y = Bad.apply(_x(device)).sum()
        with pytest.warns(UserWarning, match="Error detected in BadBackward"):
            with pytest.raises(ValueError, match="broken backward"):
                y.backward()


def test_anomaly_check_nan_off_and_decorator(device):
    @autograd.detect_anomaly(check_nan=False)
    def run():
        assert autograd.is_anomaly_enabled()
        x, loss = _sqrt_of_clamped(device)
        loss.backward()
        return x.grad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = run()
    assert np.isnan(g.numpy()[1])
    assert not autograd.is_anomaly_enabled()
