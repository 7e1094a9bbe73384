"""Mixed precision: autocast's op lists (against torch.autocast where the lists agree), regions
(nesting, enabled=False, decorators, the 'cuda' and 'cpu' spellings), float32 gradients for
float32 parameters, GradScaler's skip/backoff/growth (against torch's) with one host read per
step, and a CNN and a Transformer training under autocast close to float32."""
import warnings

import numpy as np
import pytest

import clgrad
import clgrad.nn as nn
import clgrad.nn.functional as F
from clgrad import runtime
from clgrad.runtime import lazy

LOW = ["float16", "bfloat16"]


def _inputs(device, low):
    r = np.random.default_rng(0)
    t = lambda *s: clgrad.tensor(r.standard_normal(s).astype(np.float32), device=device)  # noqa
    x, w, b = t(4, 8), t(8, 8), t(8)
    return dict(x=x, w=w, b=b, img=t(1, 2, 6, 6), cw=t(3, 2, 3, 3), xl=x.to(low),
                tgt=clgrad.tensor([0, 1, 2, 3], device=device))


# op -> what autocast makes of it: "low" (the region's dtype), "f32", or "same" (input's dtype)
OPS = {
    "matmul": ("low", lambda v: v["x"] @ v["w"]),
    "mm": ("low", lambda v: v["x"].mm(v["w"])),
    "bmm": ("low", lambda v: clgrad.bmm(v["x"][None], v["w"][None])),
    "linear": ("low", lambda v: F.linear(v["x"], v["w"], v["b"])),
    "addmm": ("low", lambda v: clgrad.addmm(v["b"], v["x"], v["w"])),
    "baddbmm": ("low", lambda v: clgrad.baddbmm(v["x"][None], v["x"][None], v["w"][None])),
    "conv2d": ("low", lambda v: F.conv2d(v["img"], v["cw"])),
    "conv_transpose2d": ("low", lambda v: F.conv_transpose2d(v["img"], v["cw"].transpose(0, 1))),
    "sdpa": ("low", lambda v: F.scaled_dot_product_attention(v["x"][None], v["x"][None],
                                                             v["x"][None])),
    "softmax": ("f32", lambda v: F.softmax(v["xl"], -1)),
    "log_softmax": ("f32", lambda v: F.log_softmax(v["xl"], -1)),
    "Tensor.softmax": ("f32", lambda v: v["xl"].softmax(-1)),
    "layer_norm": ("f32", lambda v: F.layer_norm(v["xl"], (8,))),
    "group_norm": ("f32", lambda v: F.group_norm(v["xl"][None].transpose(1, 2), 2)),
    "batch_norm": ("f32", lambda v: F.batch_norm(v["xl"], None, None, training=True)),
    "cross_entropy": ("f32", lambda v: F.cross_entropy(v["xl"], v["tgt"])),
    "nll_loss": ("f32", lambda v: F.nll_loss(v["xl"], v["tgt"])),
    "mse_loss": ("f32", lambda v: F.mse_loss(v["xl"], v["xl"] * 2)),
    "l1_loss": ("f32", lambda v: F.l1_loss(v["xl"], v["xl"] * 2)),
    "bce": ("f32", lambda v: F.binary_cross_entropy(v["xl"].sigmoid(), v["xl"].sigmoid())),
    "sum": ("f32", lambda v: v["xl"].sum()),
    "mean": ("f32", lambda v: v["xl"].mean(0)),
    "prod": ("f32", lambda v: v["xl"].prod()),
    "cumsum": ("f32", lambda v: v["xl"].cumsum(0)),
    "exp": ("f32", lambda v: v["xl"].exp()),
    "log": ("f32", lambda v: v["xl"].abs().log()),
    "pow": ("f32", lambda v: v["xl"] ** 2),
    "relu": ("same", lambda v: F.relu(v["xl"])),
    "gelu": ("same", lambda v: F.gelu(v["xl"])),
    "max_pool2d": ("same", lambda v: F.max_pool2d(v["img"].to(v["xl"].dtype), 2)),
    "add_mixed": ("f32", lambda v: v["xl"] + v["x"]),
    "cat_mixed": ("f32", lambda v: clgrad.cat([v["xl"], v["x"]])),
    "nn.Linear": ("low", lambda v: nn.Linear(8, 3).to(v["x"].device)(v["x"])),
}


@pytest.mark.parametrize("low", LOW)
def test_op_lists(device, low):
    dt = getattr(clgrad, low)
    v = _inputs(device, dt)
    with clgrad.autocast("cl", dtype=dt):
        got = {name: fn(v).dtype for name, (_, fn) in OPS.items()}
    want = {name: {"low": dt, "f32": clgrad.float32, "same": dt}[k] for name, (k, _) in OPS.items()}
    assert got == want
    # outside the region nothing is cast
    assert (v["x"] @ v["w"]).dtype is clgrad.float32 and v["xl"].sum().dtype is dt


# where PyTorch's CPU lists agree with the CUDA-style lists clgrad follows (PyTorch's CPU autocast
# leaves softmax, the norms and sum/exp/log/pow in the low dtype; its CUDA autocast, like
# clgrad's, runs them in float32)
TORCH_AGREES = ["matmul", "mm", "bmm", "linear", "addmm", "baddbmm", "conv2d",
                "conv_transpose2d", "sdpa", "cross_entropy", "nll_loss", "mse_loss", "l1_loss",
                "bce", "prod", "relu", "gelu", "max_pool2d", "add_mixed", "cat_mixed"]


@pytest.mark.parametrize("low", LOW)
def test_op_lists_match_torch(device, low):
    torch = pytest.importorskip("torch", reason="torch is not installed: parity check skipped")
    tF = torch.nn.functional
    dt = getattr(clgrad, low)
    tdt = getattr(torch, low)
    v = _inputs(device, dt)
    tv = {k: torch.tensor(t.float().numpy()) if k != "tgt" else torch.tensor(t.numpy())
          for k, t in v.items()}
    tv["xl"] = tv["xl"].to(tdt)
    # the same lambdas run on torch (the names match)
    tops = dict(OPS)
    tops["bmm"] = ("low", lambda v: torch.bmm(v["x"][None], v["w"][None]))
    tops["addmm"] = ("low", lambda v: torch.addmm(v["b"], v["x"], v["w"]))
    tops["baddbmm"] = ("low", lambda v: torch.baddbmm(v["x"][None], v["x"][None], v["w"][None]))
    tops["cat_mixed"] = ("f32", lambda v: torch.cat([v["xl"], v["x"]]))
    with clgrad.autocast("cl", dtype=dt):
        ours = {n: OPS[n][1](v).dtype.name for n in TORCH_AGREES}
    global F
    cl_F = F
    try:
        F = tF
        with torch.autocast("cpu", dtype=tdt):
            theirs = {n: str(tops[n][1](tv).dtype).replace("torch.", "") for n in TORCH_AGREES}
    finally:
        F = cl_F
    assert ours == theirs


def test_regions(device):
    x = clgrad.randn(3, 4, device=device)
    w = clgrad.randn(4, 4, device=device)
    assert not clgrad.is_autocast_enabled()
    assert clgrad.get_autocast_dtype("cl") is clgrad.float16
    assert clgrad.get_autocast_dtype("cpu") is clgrad.bfloat16
    with clgrad.autocast("cl", dtype=clgrad.bfloat16):
        assert clgrad.is_autocast_enabled() and clgrad.get_autocast_dtype() is clgrad.bfloat16
        assert (x @ w).dtype is clgrad.bfloat16
        with clgrad.autocast("cl", dtype=clgrad.float16):
            assert (x @ w).dtype is clgrad.float16
            with clgrad.autocast("cl", enabled=False):
                assert not clgrad.is_autocast_enabled()
                assert (x @ w).dtype is clgrad.float32
            assert (x @ w).dtype is clgrad.float16
        assert (x @ w).dtype is clgrad.bfloat16
    assert not clgrad.is_autocast_enabled() and (x @ w).dtype is clgrad.float32
    with pytest.raises(ValueError):
        with clgrad.amp.autocast("cl"):
            raise ValueError("leaves the region")
    assert not clgrad.is_autocast_enabled()

    @clgrad.autocast("cl", dtype=clgrad.bfloat16)
    def f(a, b):
        return a @ b
    assert f(x, w).dtype is clgrad.bfloat16 and (x @ w).dtype is clgrad.float32
    with pytest.warns(UserWarning, match="not supported"):
        with clgrad.autocast("cl", dtype=clgrad.float64):
            assert (x @ w).dtype is clgrad.float32
    with pytest.raises(RuntimeError, match="device_type"):
        clgrad.autocast("tpu")


def test_cuda_and_cpu_spellings(device):
    x = clgrad.randn(3, 4, device=device)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        region = clgrad.autocast("cuda")
    with region:
        assert (x @ x.t()).dtype is clgrad.float32
    with pytest.warns(UserWarning, match="CUDA"):
        ctx = clgrad.cuda.amp.autocast()
    with ctx:
        assert not clgrad.is_autocast_enabled()
    with pytest.warns(UserWarning, match="CUDA"):
        scaler = clgrad.cuda.amp.GradScaler()
    assert not scaler.is_enabled() and scaler.scale(x) is x and scaler.get_scale() == 1.0
    assert not clgrad.cuda.is_available()
    # clgrad.cpu.amp targets CPU OpenCL devices, bfloat16 by default as PyTorch's
    with clgrad.cpu.amp.autocast():
        want = clgrad.bfloat16 if clgrad.device(device).is_cpu else clgrad.float32
        assert (x @ x.t()).dtype is want


def test_recurrent_and_attention_modules(device):
    clgrad.manual_seed(0)
    x = clgrad.randn(2, 3, 4, device=device)
    for cls in (nn.RNN, nn.GRU, nn.LSTM):
        m = cls(4, 8, batch_first=True).to(device)
        with clgrad.autocast("cl", dtype=clgrad.float16):
            y, _ = m(x)
        # the input projections run in float16; the fused cells in float32
        y.float().sum().backward()
        assert m.weight_ih_l0.grad.dtype is clgrad.float32
    mha = nn.MultiheadAttention(8, 2, batch_first=True).to(device)
    q = clgrad.randn(2, 3, 8, device=device)
    with clgrad.autocast("cl", dtype=clgrad.bfloat16):
        y, _ = mha(q, q, q)
    assert y.dtype is clgrad.bfloat16


def test_float32_parameters_get_float32_grads(device):
    clgrad.manual_seed(0)
    lin = nn.Linear(8, 8).to(device)
    x = clgrad.randn(5, 8, device=device)
    ref = nn.Linear(8, 8).to(device)
    ref.load_state_dict(lin.state_dict())
    with clgrad.autocast("cl", dtype=clgrad.float16):
        y = lin(lin(x).relu())             # the weight is used twice: cast once (cached)
        loss = y.float().pow(2).mean()
    assert y.dtype is clgrad.float16 and loss.dtype is clgrad.float32
    loss.backward()
    ref(ref(x).relu()).pow(2).mean().backward()
    for p, q in zip(lin.parameters(), ref.parameters()):
        assert p.dtype is clgrad.float32 and p.grad.dtype is clgrad.float32
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=2e-2, atol=2e-3)


def _scaler_run(lib, device, schedule, **kw):
    """Scales, skipped steps and final weights of SGD on p with a loss whose gradient holds an
    inf or NaN on the steps the schedule marks."""
    p = lib.tensor([1.0, 2.0, 3.0], requires_grad=True,
                   **({"device": device} if lib is clgrad else {}))
    opt = lib.optim.SGD([p], lr=0.1)
    scaler = (lib.amp.GradScaler(**kw) if lib is clgrad else lib.amp.GradScaler("cpu", **kw))
    scales, steps = [], []
    for bad in schedule:
        opt.zero_grad()
        c = [0.5, -1.0, bad if bad is not None else 2.0]
        c = lib.tensor(c, **({"device": device} if lib is clgrad else {}))
        before = p.detach().numpy().copy()
        scaler.scale((p * c).sum()).backward()
        scaler.step(opt)
        scaler.update()
        steps.append(not np.array_equal(before, p.detach().numpy()))
        scales.append(scaler.get_scale())
    return scales, steps, p.detach().numpy()


SCHEDULE = [None, None, float("inf"), None, None, None, float("nan"), None, None, float("-inf")]


def test_grad_scaler_behaviour(device):
    scales, steps, w = _scaler_run(clgrad, device, SCHEDULE, init_scale=2.0 ** 10,
                                   growth_interval=2)
    assert steps == [s is None for s in SCHEDULE]
    assert scales == [2.0 ** 10, 2.0 ** 11, 2.0 ** 10, 2.0 ** 10, 2.0 ** 11, 2.0 ** 11,
                      2.0 ** 10, 2.0 ** 10, 2.0 ** 11, 2.0 ** 10]
    n_ok = sum(s is None for s in SCHEDULE)
    np.testing.assert_allclose(w, np.array([1.0, 2.0, 3.0]) - 0.1 * n_ok * np.array(
        [0.5, -1.0, 2.0]), rtol=1e-6)


def test_grad_scaler_matches_torch(device):
    torch = pytest.importorskip("torch", reason="torch is not installed: parity check skipped")
    kw = dict(init_scale=2.0 ** 12, growth_factor=4.0, backoff_factor=0.25, growth_interval=3)
    ours = _scaler_run(clgrad, device, SCHEDULE, **kw)
    theirs = _scaler_run(torch, device, SCHEDULE, **kw)
    assert ours[0] == theirs[0] and ours[1] == theirs[1]
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-6)


def test_grad_scaler_one_host_read_per_step(device):
    clgrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 4)).to(device)
    opt = clgrad.optim.Adam(model.parameters(), lr=1e-3)
    scaler = clgrad.amp.GradScaler()
    x = clgrad.randn(32, 8, device=device)
    y = clgrad.randint(0, 4, (32,), device=device)
    for i in range(3):
        opt.zero_grad()
        with clgrad.autocast("cl", dtype=clgrad.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        runtime.reset_stats()
        scaler.step(opt)
        scaler.update()
        s = runtime.stats()
        # the flag read of step(); the six gradients lie in one arena: one unscale launch (plus
        # the flag's fill, Adam's update and the scale update; Adam's first step also fills
        # its state; with fusion on, the fills launch together, and elementwise work that
        # backward left pending launches here, fused)
        assert s["d2h"] == 1 and s["h2d"] == 0
        if lazy.enabled:
            assert 1 <= s["launches"] <= (4 if i else 6)
        else:
            assert s["launches"] == (4 if i else 6)


def test_grad_scaler_state_and_errors(device):
    p = clgrad.tensor([1.0, 2.0], device=device, requires_grad=True)
    opt = clgrad.optim.SGD([p], lr=0.1)
    scaler = clgrad.amp.GradScaler(init_scale=8.0, growth_interval=5)
    with pytest.raises(RuntimeError, match="scale"):
        scaler.step(opt)
    scaler.scale(p.sum()).backward()
    scaler.unscale_(opt)
    np.testing.assert_array_equal(p.grad.numpy(), [1.0, 1.0])
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.step(opt)
    scaler.update()
    state = scaler.state_dict()
    assert state == {"scale": 8.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                     "growth_interval": 5, "_growth_tracker": 1}
    other = clgrad.amp.GradScaler()
    other.load_state_dict(state)
    assert other.state_dict() == state
    assert other.scale(clgrad.tensor(1.0, device=device)).item() == 8.0
    scaler.update(3.0)
    assert scaler.get_scale() == 3.0
    with pytest.raises(ValueError):
        clgrad.amp.GradScaler(growth_factor=0.9)
    h = clgrad.tensor([1.0], dtype=clgrad.float16, device=device, requires_grad=True)
    hopt = clgrad.optim.SGD([h], lr=0.1)
    scaler.scale(h.float().sum()).backward()
    with pytest.raises(ValueError, match="FP16"):
        scaler.unscale_(hopt)


# ---- training under autocast ---------------------------------------------------------------------
def _train(make_model, data, device, low, steps, lr):
    clgrad.manual_seed(0)
    model = make_model().to(device)
    opt = clgrad.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scaler = clgrad.amp.GradScaler(enabled=low is clgrad.float16)
    x, y = data
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        with clgrad.autocast("cl", dtype=low or clgrad.float32, enabled=low is not None):
            out = model(x)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert all(p.dtype is clgrad.float32 for p in model.parameters())
    return np.array(losses)


def _check_close(device, make_model, data, steps, lr, tol):
    ref = _train(make_model, data, device, None, steps, lr)
    assert ref[-1] < 0.5 * ref[0]
    for low in (clgrad.float16, clgrad.bfloat16):
        got = _train(make_model, data, device, low, steps, lr)
        # mixed precision rounds activations to 8 (bfloat16) or 11 (float16) significant bits:
        # the curve follows float32's within a fraction of the starting loss
        assert got[-1] < 0.5 * got[0], (low, got)
        assert np.max(np.abs(got - ref)) < tol * ref[0], (low, got, ref)


def test_lenet_trains_under_autocast(device):
    r = np.random.default_rng(0)
    x = clgrad.tensor(r.standard_normal((16, 1, 28, 28)).astype(np.float32), device=device)
    y = clgrad.tensor(r.integers(0, 10, 16), device=device)
    _check_close(device, clgrad.vision.models.LeNet, (x, y), steps=30, lr=0.05, tol=0.1)


class TinyTransformer(nn.Module):
    def __init__(self, vocab=16, d=32):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens):                    # (B, T) -> (B, T, vocab)
        return self.head(self.layer(self.emb(tokens)))


def test_transformer_trains_under_autocast(device):
    r = np.random.default_rng(1)
    tokens = r.integers(0, 16, (8, 12))
    x = clgrad.tensor(tokens, device=device)
    y = clgrad.tensor((tokens + 1) % 16, device=device)     # learn "next symbol"
    _check_close(device, TinyTransformer, (x, y), steps=30, lr=0.05, tol=0.1)
