"""Recurrent layers: RNN, LSTM, GRU and their single-step cells, with PyTorch's parameters."""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ...autograd import Function, is_grad_enabled
from ...tensor import creation, nn_ops
from ...tensor.shape import cat, stack
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ..utils.rnn import PackedSequence, _pack, pad_packed_sequence
from .module import Module

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _step(mode, gi, gh, h, c):
    """One time step on (B, G*H) pre-activations; returns (h, c) (c is None but for LSTM)."""
    if mode == "LSTM":
        return nn_ops.lstm_cell(gi, gh, c)
    if mode == "GRU":
        return nn_ops.gru_cell(gi, gh, h), None
    return nn_ops.rnn_cell(gi, gh, mode == "RNN_RELU"), None


class _Held:
    """The inputs h_{t-1} of every step, known once the forward loop has made them: stacked
    (`h_in`, with masks), or the layer's outputs (T, B, P), which are the next steps' inputs,
    and the first step's input (`first`, None for zeros), read in time order or reversed."""

    __slots__ = ("h_in", "out", "first", "reverse", "gout")

    def __init__(self, first, reverse: bool):
        self.h_in = self.out = self.gout = None
        self.first, self.reverse = first, reverse

    def weight_grad(self, g):
        """sum_t g_t^T h_{t-1} for g (T, B, G*H): (G*H, P)."""
        def gemm(gs, hs):
            return gs.reshape(-1, gs.shape[-1]).t().matmul(
                hs.to(gs.dtype).reshape(-1, hs.shape[-1]))
        if self.h_in is not None:
            return gemm(g, self.h_in)
        if self.reverse:                                   # step t reads the output of t + 1
            dw = gemm(g[:-1], self.out[1:])
            edge = g[-1]
        else:
            dw = gemm(g[1:], self.out[:-1])
            edge = g[0]
        if self.first is not None:
            dw = dw + edge.t().matmul(self.first.to(g.dtype))
        return dw


class _DeferredWeightGrad(Function):
    """Identity on the input pre-activations gi (T, B, G*H) whose backward also gives W_hh's
    gradient: the steps multiply by a detached W_hh, and since each step's gh gets the same
    gradient as its gi (LSTM, Elman), dW_hh = sum_t dgi_t^T h_{t-1} is one GEMM over the
    stacked steps instead of T small GEMMs and T accumulations into W_hh.grad. It also gives
    the gradient of the bias b_ih + b_hh that gi's GEMM added (detached there)."""

    @staticmethod
    def forward(ctx, gi, w_hh, bias, held):
        ctx.held, ctx.w_dtype = held, w_hh.dtype
        ctx.b_dtype = bias.dtype if bias is not None else None
        return gi

    @staticmethod
    def backward(ctx, g):
        dw = db = None
        if ctx.needs_input_grad[1]:
            # under autocast the steps' products (and g) are in the low dtype, as each step's
            # own linear was; the gradient goes back to W_hh's dtype, as through its cast
            dw = ctx.held.weight_grad(g).to(ctx.w_dtype)              # (G*H, real_h)
        if ctx.needs_input_grad[2]:
            # the bias's gradient, sum over T*B rows of g, as a (1, T*B) @ (T*B, G*H) product:
            # a GEMM reads the rows in order, a reduction over the first axis walks columns
            g2 = g.reshape(-1, g.shape[-1])
            ones = creation.ones(1, g2.shape[0], dtype=g.dtype, device=g.device)
            db = ones.matmul(g2).reshape(-1).to(ctx.b_dtype)          # (G*H,)
        return g, dw, db, None


class _StepProduct(Function):
    """gh = h W^T of one step (W detached) whose backward adds the step output's share of the
    layer output's gradient in the same GEMM: dh = gout[src] + dgh W, one launch where autograd
    would add the two contributions to h by a launch of its own (see _LayerOutput)."""

    @staticmethod
    def forward(ctx, h, w, held, src, last_reader):
        ctx.w, ctx.held, ctx.src, ctx.last_reader = w, held, src, last_reader
        ctx.h_dtype = h.dtype
        return h.matmul(w.t())

    @staticmethod
    def backward(ctx, g):
        gout = ctx.held.gout
        if ctx.last_reader:
            ctx.held.gout = None    # a later backward through h_n alone must not see it
        w = ctx.w.to(g.dtype)       # under autocast g is in the low dtype, as the product was
        if ctx.src is None or gout is None:
            dh = g.matmul(w)
        else:
            dh = nn_ops.addmm(gout[ctx.src].to(g.dtype), g, w)
        return dh.to(ctx.h_dtype), None, None, None, None


class _LayerOutput(Function):
    """Identity on a layer's stacked outputs (T, B, P), built from detached steps: its backward
    keeps the output gradient for the steps' _StepProduct backwards and passes the last
    step's share to that step's h."""

    @staticmethod
    def forward(ctx, out, last, held, idx):
        ctx.held, ctx.idx = held, idx
        return out

    @staticmethod
    def backward(ctx, g):
        ctx.held.gout = g
        return None, g[ctx.idx], None, None


def _uniform_by_hidden_size(m) -> None:
    # PyTorch's recurrent init: every weight and bias U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))
    stdv = 1.0 / math.sqrt(m.hidden_size) if m.hidden_size > 0 else 0
    for w in m.parameters():
        init.uniform_(w, -stdv, stdv)


class RNNBase(Module):
    """The shared machinery of RNN, LSTM and GRU.

    The input projection x W_ih^T + b_ih of a whole layer is one GEMM over all time steps; each
    step then runs the recurrent GEMM h W_hh^T + b_hh and one fused cell kernel (gates and state
    update), recorded for autograd as one node whose backward is one fused kernel."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if (not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1
                or isinstance(dropout, bool)):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          f"non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: "
                            f"{type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        D = 2 if bidirectional else 1
        G = _GATES[mode] * hidden_size
        real_h = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for d in range(D):
                in_size = input_size if layer == 0 else real_h * D
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes = [("weight_ih", (G, in_size)), ("weight_hh", (G, real_h))]
                if bias:
                    shapes += [("bias_ih", (G,)), ("bias_hh", (G,))]
                if proj_size > 0:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                for name, shape in shapes:
                    setattr(self, name + sfx,
                            Parameter(creation.empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + sfx)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_by_hidden_size(self)

    def flatten_parameters(self) -> None:
        """Kept for PyTorch compatibility: parameters are already separate buffers here."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        per = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        w = self._flat_weights
        return [w[i:i + per] for i in range(0, len(w), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    def _layer_params(self, layer, d):
        sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
        get = lambda n: getattr(self, n + sfx, None)  # noqa: E731
        return (get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"),
                get("weight_hr"))

    def _check_hidden(self, h, shape, what):
        if tuple(h.shape) != shape:
            raise RuntimeError(f"Expected {what} size {tuple(shape)}, got {tuple(h.shape)}")

    def _run(self, input, hx):
        """The stacked recurrence. input (B, T, I) or (T, B, I) or a PackedSequence; hx:
        (h0, c0) or h0 or None."""
        if isinstance(input, PackedSequence):
            return self._run_packed(input, hx)
        return self._run_padded(input, hx)

    def _run_packed(self, packed, hx):
        # the padded batch in its original order; a step past a sequence's end keeps its state
        # and outputs zeros, so h_n is each sequence's state after its own last step
        padded, lengths = pad_packed_sequence(packed)                  # (T, B, I)
        lengths = [int(n) for n in lengths.tolist()]
        T_ = padded.shape[0]
        steps = np.arange(T_)[:, None] < np.asarray(lengths)[None, :]  # (T, B)
        alive = creation.tensor(steps[:, :, None], device=padded.device)
        masks = nn_ops.time_steps(alive)
        out, state = self._run_padded(padded, hx, masks, batch_first=False)
        order = None if packed.sorted_indices is None else \
            [int(i) for i in packed.sorted_indices.tolist()]
        return _pack(out, lengths, order), state

    def _run_padded(self, input, hx, masks=None, batch_first=None):
        cls = type(self).__name__
        bf = self.batch_first if batch_first is None else batch_first
        if input.ndim not in (2, 3):
            raise ValueError(f"{cls}: Expected input to be 2D or 3D, got {input.ndim}D tensor "
                             "instead")
        batched = input.ndim == 3
        if not batched:
            input = input.unsqueeze(0 if bf else 1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) \
                    else hx.unsqueeze(1)
        x = input.transpose(0, 1) if bf else input                    # (T, B, I)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {x.shape[-1]}")
        T_, B = x.shape[0], x.shape[1]
        D = 2 if self.bidirectional else 1
        H = self.hidden_size
        real_h = self.proj_size if self.proj_size > 0 else H
        lstm = self.mode == "LSTM"
        if hx is None:
            h0 = creation.zeros(self.num_layers * D, B, real_h, dtype=x.dtype, device=x.device)
            c0 = creation.zeros(self.num_layers * D, B, H, dtype=x.dtype, device=x.device) \
                if lstm else None
        elif lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise RuntimeError("LSTM expects hx as a tuple (h_0, c_0)")
            h0, c0 = hx
            self._check_hidden(h0, (self.num_layers * D, B, real_h), "hidden[0]")
            self._check_hidden(c0, (self.num_layers * D, B, H), "hidden[1]")
        else:
            h0, c0 = hx, None
            self._check_hidden(h0, (self.num_layers * D, B, H), "hidden")
        hn, cn = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, d)
                deferred, h_in = False, None
                if self.mode != "GRU":
                    # gh and gi enter the cell alike, so b_hh joins b_ih in one GEMM epilogue
                    # and W_hh's gradient is one GEMM over all steps (_DeferredWeightGrad)
                    bias = b_ih + b_hh if b_ih is not None else None
                    deferred = T_ > 0 and w_hh.requires_grad and is_grad_enabled()
                    if deferred:
                        # the bias's gradient comes from _DeferredWeightGrad too (measured 6%
                        # off the bench LSTM step against the reduction after the GEMM)
                        gi_all = F.linear(x, w_ih, None if bias is None else bias.detach())
                        held = _Held(None if hx is None else h0[layer * D + d].detach(),
                                     d == 1)
                        gi_all = _DeferredWeightGrad.apply(gi_all, w_hh, bias, held)
                        h_in = [None] * T_ if masks is not None else None
                    else:
                        gi_all = F.linear(x, w_ih, bias)             # (T, B, I) -> (T, B, G*H)
                    # W_hh^T made contiguous once: each step's product (nn) and its backward
                    # (nt, K = G*H, which the nn kernels would split into 256-deep launches)
                    # are one launch each on the CPU GEMM; measured 7% off the bench LSTM step
                    w_step, b_step = w_hh.detach().t().contiguous().t(), None
                else:
                    gi_all = F.linear(x, w_ih, b_ih)                 # (T, B, I) -> (T, B, G*H)
                    w_step, b_step = w_hh, b_hh
                gis = nn_ops.time_steps(gi_all)                        # T x (B, G*H)
                h = h0[layer * D + d]                                # (B, real_h)
                c = c0[layer * D + d] if lstm else None              # (B, H)
                steps = [None] * T_
                fold = deferred and masks is None
                for t in (range(T_ - 1, -1, -1) if d == 1 else range(T_)):
                    if h_in is not None:
                        h_in[t] = h.detach()
                    if fold:
                        # h is the output of step t -/+ 1 (none at the first step)
                        src = t - 1 if d == 0 else t + 1
                        src = src if 0 <= src < T_ else None
                        gh = _StepProduct.apply(h, w_step, held, src,  # (B, G*H)
                                                src == (T_ - 1 if d == 1 else 0))
                    else:
                        gh = F.linear(h, w_step, b_step)             # (B, G*H)
                    hp, cp = h, c
                    h, c = _step(self.mode, gis[t], gh, h, c)
                    if w_hr is not None:
                        h = F.linear(h, w_hr)                        # (B, H) -> (B, P)
                    if masks is not None:
                        steps[t] = h.where(masks[t], 0)
                        h = h.where(masks[t], hp)
                        c = c.where(masks[t], cp) if lstm else None
                    else:
                        steps[t] = h.detach() if fold else h
                if fold:
                    outs.append(_LayerOutput.apply(stack(steps, 0), h, held,
                                                   0 if d == 1 else T_ - 1))
                else:
                    outs.append(stack(steps, 0) if T_ else
                                creation.empty(0, B, real_h, dtype=x.dtype, device=x.device))
                if deferred:
                    if h_in is not None:
                        held.h_in = stack(h_in, 0)                   # (T, B, real_h)
                    else:
                        held.out = outs[-1].detach()                 # (T, B, real_h)
                hn.append(h)
                if lstm:
                    cn.append(c)
            x = outs[0] if D == 1 else cat(outs, 2)                  # (T, B, D*real_h)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        out = x.transpose(0, 1) if bf else x
        h_n = stack(hn, 0)                                           # (L*D, B, real_h)
        c_n = stack(cn, 0) if lstm else None
        if not batched:
            out = out.squeeze(0 if bf else 1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        return out, ((h_n, c_n) if lstm else h_n)


def _no_proj(kwargs):
    if "proj_size" in kwargs:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if kwargs:
        raise TypeError(f"unexpected keyword argument {next(iter(kwargs))!r}")


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.

    Args: input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False.

    Shape: input (L, N, H_in) ((N, L, H_in) if batch_first, or (L, H_in) unbatched), h_0
    (D*num_layers, N, H_out) -> output (L, N, D*H_out), h_n (D*num_layers, N, H_out).

    Example: ``out, h = nn.RNN(10, 20, 2)(clgrad.randn(5, 3, 10))``
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 **kwargs):
        _no_proj(kwargs)
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._run(input, hx)


class LSTM(RNNBase):
    """Long short-term memory with PyTorch's gate order i, f, g, o:
    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t) (then h_t W_hr^T when proj_size > 0).

    Args: input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0.

    Shape: input (L, N, H_in) -> output (L, N, D*H_out), (h_n, c_n) with h_n
    (D*num_layers, N, H_out) and c_n (D*num_layers, N, H_cell); H_out = proj_size or
    hidden_size.

    Example: ``out, (h, c) = nn.LSTM(10, 20)(clgrad.randn(5, 3, 10))``
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._run(input, hx)


class GRU(RNNBase):
    """Gated recurrent unit with PyTorch's gate order r, z, n:
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.

    Args: input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False.

    Shape: as RNN.

    Example: ``out, h = nn.GRU(10, 20)(clgrad.randn(5, 3, 10))``
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, **kwargs):
        _no_proj(kwargs)
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._run(input, hx)


class RNNCellBase(Module):
    """Parameters weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh of one cell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device=None, dtype=None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        G = num_chunks * hidden_size
        self.weight_ih = Parameter(creation.empty(G, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(creation.empty(G, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(creation.empty(G, device=device, dtype=dtype))
            self.bias_hh = Parameter(creation.empty(G, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_by_hidden_size(self)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _prep(self, input, hx, n_states):
        cls = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{cls}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} "
                               f"expected {self.input_size}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            z = lambda: creation.zeros(x.shape[0], self.hidden_size, dtype=x.dtype,  # noqa
                                       device=x.device)
            hx = tuple(z() for _ in range(n_states))
        else:
            hx = tuple(hx) if n_states > 1 else (hx,)
            hx = tuple(h if batched else h.unsqueeze(0) for h in hx)
        for h in hx:
            if tuple(h.shape) != (x.shape[0], self.hidden_size):
                raise RuntimeError(f"hidden has inconsistent size: got {tuple(h.shape)}, "
                                   f"expected {(x.shape[0], self.hidden_size)}")
        gi = F.linear(x, self.weight_ih, self.bias_ih)                # (B, G*H)
        gh = F.linear(hx[0], self.weight_hh, self.bias_hh)            # (B, G*H)
        return batched, gi, gh, hx


class RNNCell(RNNCellBase):
    """One Elman step h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh). input (N, H_in) or (H_in,)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        batched, gi, gh, _ = self._prep(input, hx, 1)
        h = nn_ops.rnn_cell(gi, gh, self.nonlinearity == "relu")
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step; forward(input, (h, c)) -> (h', c'). Gate order i, f, g, o."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        batched, gi, gh, (h0, c0) = self._prep(input, hx, 2)
        h, c = nn_ops.lstm_cell(gi, gh, c0)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step; gate order r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        batched, gi, gh, (h0,) = self._prep(input, hx, 1)
        h = nn_ops.gru_cell(gi, gh, h0)
        return h if batched else h.squeeze(0)
