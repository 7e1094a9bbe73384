"""Fused recurrent cell steps (LSTM, GRU, Elman RNN): one kernel per step forward and one per
step backward, each a forward for Tensor._apply over the step's gate pre-activations."""
from __future__ import annotations

from ..runtime import codegen
from .nn_fused import _fused_guard

_I, _L = "int", "long"


def _flat(t):
    """(buffer, element offset) of t laid out densely, copying only when t is not."""
    if not t._view.is_contiguous():
        t = t.contiguous()
    return t, t._view.offset


def _dense0(t):
    """t dense from element 0 of its buffer (what the backward kernels read)."""
    return t if t._view.is_contiguous() and t._view.offset == 0 else t.clone()


def _real(t):
    c = t.dtype.ctype
    if c not in ("float", "double"):
        raise RuntimeError(f"recurrent cells expect float32 or float64 inputs, got "
                           f"{t.dtype.name}")
    return c


def _k(t, name, args):
    return codegen.seq_kernel(t.device, "rnn", name, _real(t), args)


def _cells(k, B, H, *args):
    """Launch an LSTM or GRU cell kernel: one work-item per (hidden unit, batch row), a 2-D
    range so that no work-item divides its index (see kernels_cl/rnn.cl)."""
    if B * H > 0:
        k(*k.fixed_group((H, B, 1), (64, 1, 1)), *args)


def lstm_cell(ctx, gi, gh, c0):
    """(h, c) of one LSTM step from gi = x W_ih^T + b_ih (B, 4H), gh = h W_hh^T + b_hh (B, 4H)
    and the previous cell state c0 (B, H)."""
    T = gi._plain
    B, H = c0.shape
    gi, gio = _flat(gi)
    gh, gho = _flat(gh)
    c0, c0o = _flat(c0)
    h = T._empty((B, H), c0.dtype, c0.device)
    c = T._empty((B, H), c0.dtype, c0.device)
    _cells(_k(c0, "clg_lstm_fwd", [None, None, None, _L, None, _L, None, _L, _I, _I]), B, H,
           h._buf.raw, c._buf.raw, gi._buf.raw, gio, gh._buf.raw, gho, c0._buf.raw, c0o, B, H)
    if ctx is not None:
        ctx.save_for_backward(gi, gh, c0, c)

    def backward(ctx, dh, dc):
        _fused_guard(ctx, "LSTM")
        sgi, sgh, sc0, sc = ctx.saved_tensors
        dh, dc = _dense0(dh), _dense0(dc)
        dg = T._empty((B, 4 * H), sc.dtype, sc.device)
        dc0 = T._empty((B, H), sc.dtype, sc.device)
        _cells(_k(sc, "clg_lstm_bwd", [None] * 4 + [None, _L, None, _L, None, _L, None, _I, _I]),
               B, H, dg._buf.raw, dc0._buf.raw, dh._buf.raw, dc._buf.raw,
               sgi._buf.raw, gio, sgh._buf.raw, gho, sc0._buf.raw, c0o, sc._buf.raw, B, H)
        n = ctx.needs_input_grad
        return (dg if n[0] else None, dg if n[1] else None, dc0 if n[2] else None)
    return (h, c), "LstmCellBackward0", backward


def gru_cell(ctx, gi, gh, h0):
    """h of one GRU step from gi = x W_ih^T + b_ih (B, 3H), gh = h0 W_hh^T + b_hh (B, 3H) and
    h0 (B, H); gh's n part is gated by r, as in PyTorch."""
    T = gi._plain
    B, H = h0.shape
    gi, gio = _flat(gi)
    gh, gho = _flat(gh)
    h0, h0o = _flat(h0)
    h = T._empty((B, H), h0.dtype, h0.device)
    _cells(_k(h0, "clg_gru_fwd", [None, None, _L, None, _L, None, _L, _I, _I]), B, H,
           h._buf.raw, gi._buf.raw, gio, gh._buf.raw, gho, h0._buf.raw, h0o, B, H)
    if ctx is not None:
        ctx.save_for_backward(gi, gh, h0)

    def backward(ctx, dh):
        _fused_guard(ctx, "GRU")
        sgi, sgh, sh0 = ctx.saved_tensors
        dh = _dense0(dh)
        dgi = T._empty((B, 3 * H), sh0.dtype, sh0.device)
        dgh = T._empty((B, 3 * H), sh0.dtype, sh0.device)
        dh0 = T._empty((B, H), sh0.dtype, sh0.device)
        _cells(_k(sh0, "clg_gru_bwd", [None] * 4 + [None, _L, None, _L, None, _L, _I, _I]),
               B, H, dgi._buf.raw, dgh._buf.raw, dh0._buf.raw, dh._buf.raw,
               sgi._buf.raw, gio, sgh._buf.raw, gho, sh0._buf.raw, h0o, B, H)
        n = ctx.needs_input_grad
        return (dgi if n[0] else None, dgh if n[1] else None, dh0 if n[2] else None)
    return h, "GruCellBackward0", backward


def rnn_cell(ctx, gi, gh, relu: bool):
    """h = tanh(gi + gh) (or relu) of one Elman step; gi, gh (B, H)."""
    T = gi._plain
    B, H = gh.shape
    gi, gio = _flat(gi)
    gh, gho = _flat(gh)
    h = T._empty((B, H), gh.dtype, gh.device)
    _k(gh, "clg_rnn_fwd", [None, None, _L, None, _L, _I, _L]).launch_1d(
        B * H, h._buf.raw, gi._buf.raw, gio, gh._buf.raw, gho, int(relu), B * H)
    if ctx is not None:
        ctx.save_for_backward(h)

    def backward(ctx, dh):
        _fused_guard(ctx, "RNN")
        (sh,) = ctx.saved_tensors
        dh = _dense0(dh)
        da = T._empty((B, H), sh.dtype, sh.device)
        _k(sh, "clg_rnn_bwd", [None, None, None, _I, _L]).launch_1d(
            B * H, da._buf.raw, dh._buf.raw, sh._buf.raw, int(relu), B * H)
        n = ctx.needs_input_grad
        return (da if n[0] else None, da if n[1] else None)
    return h, "RnnReluCellBackward0" if relu else "RnnTanhCellBackward0", backward
