"""Module system: registration, traversal, state_dict keys and loading, hooks, repr, modes."""
import copy

import numpy as np
import pytest

import clgrad
import clgrad.nn as nn

# state_dict keys of every parameterised module, as PyTorch names them
EXPECTED_KEYS = [
    (lambda: nn.Linear(3, 2), ["weight", "bias"]),
    (lambda: nn.Linear(3, 2, bias=False), ["weight"]),
    (lambda: nn.Bilinear(2, 3, 4), ["weight", "bias"]),
    (lambda: nn.BatchNorm1d(3), ["weight", "bias", "running_mean", "running_var",
                                 "num_batches_tracked"]),
    (lambda: nn.BatchNorm2d(3, affine=False), ["running_mean", "running_var",
                                               "num_batches_tracked"]),
    (lambda: nn.BatchNorm2d(3, track_running_stats=False), ["weight", "bias"]),
    (lambda: nn.LayerNorm(4), ["weight", "bias"]),
    (lambda: nn.LayerNorm([2, 3], bias=False), ["weight"]),
    (lambda: nn.LayerNorm(3, elementwise_affine=False), []),
    (lambda: nn.GroupNorm(2, 4), ["weight", "bias"]),
    (lambda: nn.InstanceNorm2d(3), []),
    (lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
     ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]),
    (lambda: nn.RMSNorm(5), ["weight"]),
    (lambda: nn.Embedding(10, 3, padding_idx=0), ["weight"]),
    (lambda: nn.PReLU(3), ["weight"]),
    (lambda: nn.ReLU(), []),
    (lambda: nn.Dropout(0.2), []),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.BatchNorm1d(3), nn.ReLU()),
                           nn.ModuleList([nn.Linear(3, 3)]), nn.ModuleDict({"a": nn.LayerNorm(3)})),
     ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.0.running_mean", "1.0.running_var",
      "1.0.num_batches_tracked", "2.0.weight", "2.0.bias", "3.a.weight", "3.a.bias"]),
    (lambda: nn.ParameterList([nn.Parameter(clgrad.zeros(2)), clgrad.ones(3)]), ["0", "1"]),
    (lambda: nn.ParameterDict({"a": nn.Parameter(clgrad.zeros(2))}), ["a"]),
]


@pytest.mark.parametrize("factory,keys", EXPECTED_KEYS)
def test_state_dict_keys(factory, keys):
    m = factory()
    sd = m.state_dict()
    assert list(sd.keys()) == keys
    assert type(sd).__name__ == "OrderedDict"
    # the round trip through numpy arrays loads everything back
    res = m.load_state_dict({k: v.numpy() for k, v in sd.items()})
    assert res.missing_keys == [] and res.unexpected_keys == []


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2)
        self.register_buffer("steps", clgrad.zeros(()))
        self.register_buffer("scratch", clgrad.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_registration_and_traversal():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight",
                                                      "fc2.bias"]
    assert [n for n, _ in net.named_buffers()] == ["steps", "scratch"]
    assert "scratch" not in net.state_dict() and "steps" in net.state_dict()
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "act", "fc2"]
    assert [n for n, _ in net.named_parameters(prefix="m", recurse=False)] == []
    assert net.get_submodule("fc1") is net.fc1
    assert net.get_parameter("fc2.bias") is net.fc2.bias
    # a shared module is listed once unless remove_duplicate=False
    seq = nn.Sequential(net.fc1, net.fc1)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.named_parameters(remove_duplicate=False))) == 4
    with pytest.raises(TypeError, match="cannot assign"):
        net.fc1.weight = clgrad.zeros(3, 4)
    with pytest.raises(KeyError, match="attribute 'fc1' already exists"):
        net.register_buffer("fc1", clgrad.zeros(1))
    net.fc1 = None
    assert "fc1" not in dict(net.named_children())
    del net.fc2
    with pytest.raises(AttributeError, match="has no attribute 'fc2'"):
        net.fc2


def test_load_state_dict_errors():
    m = nn.Linear(3, 2)
    sd = {"weight": clgrad.zeros(2, 4), "bias": clgrad.zeros(2)}
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(sd)
    assert str(e.value) == (
        "Error(s) in loading state_dict for Linear:\n\tsize mismatch for weight: copying a param "
        "with shape clgrad.Size([4]) from checkpoint, the shape in current model is "
        "clgrad.Size([2, 3]).".replace("clgrad.Size([4])", "clgrad.Size([2, 4])"))
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict({"weight": clgrad.zeros(2, 3), "extra": clgrad.zeros(1)})
    assert str(e.value) == ("Error(s) in loading state_dict for Linear:\n\tMissing key(s) in "
                            "state_dict: \"bias\". \n\tUnexpected key(s) in state_dict: "
                            "\"extra\". ")
    res = m.load_state_dict({"weight": clgrad.ones(2, 3), "extra": 1}, strict=False)
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones((2, 3)))
    # values are copied, not aliased, and numpy arrays are accepted
    w = np.full((2, 3), 7.0)
    m.load_state_dict({"weight": w, "bias": np.zeros(2)})
    w[:] = 0
    assert m.weight.detach().numpy()[0, 0] == 7.0


def test_state_dict_shares_storage_and_keep_vars():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    assert not sd["weight"].requires_grad
    assert isinstance(m.state_dict(keep_vars=True)["weight"], nn.Parameter)
    with clgrad.no_grad():
        m.weight.fill_(3.0)
    assert sd["weight"].numpy()[0, 0] == 3.0


def test_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out + 1)
    out = m(clgrad.ones(3, 2))
    np.testing.assert_allclose(out.detach().numpy(), (m.bias.detach().numpy() + 1)[None]
                               .repeat(3, 0), rtol=1e-6)
    assert calls == [(3, 2)]
    h1.remove()
    h2.remove()
    out = m(clgrad.ones(1, 2))
    assert len(calls) == 1


def test_modes_grad_and_apply():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert net.training and net[1].training
    net.eval()
    assert not net[1].training
    net.train()
    assert net[1].training
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")
    net(clgrad.ones(4, 2)).sum().backward()
    assert net[0].weight.grad is not None
    net.zero_grad(set_to_none=False)
    assert (net[0].weight.grad.numpy() == 0).all()
    net.zero_grad()
    assert net[0].weight.grad is None
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Dropout", "Sequential"]


def test_to_dtype_keeps_parameters():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    w = m[0].weight
    m.double()
    assert m[0].weight is w and w.dtype is clgrad.float64
    assert m[1].running_mean.dtype is clgrad.float64
    assert m[1].num_batches_tracked.dtype is clgrad.int64
    m.to(clgrad.float32)
    assert w.dtype is clgrad.float32
    m.half()
    assert w.dtype is clgrad.float16
    with pytest.raises(TypeError, match="floating point"):
        m.to(clgrad.int32)


def test_containers():
    seq = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2
    seq.append(nn.Tanh())
    assert list(seq._modules) == ["0", "1", "2", "3"]
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"]
    ml = nn.ModuleList([nn.ReLU()])
    ml.extend([nn.Tanh()])
    ml += [nn.Sigmoid()]
    assert len(ml) == 3 and isinstance(ml[-1], nn.Sigmoid)
    md = nn.ModuleDict({"a": nn.ReLU()})
    md["b"] = nn.Tanh()
    assert list(md.keys()) == ["a", "b"] and "a" in md
    pl = nn.ParameterList([clgrad.zeros(2)])
    assert isinstance(pl[0], nn.Parameter) and pl[0].requires_grad
    pd = nn.ParameterDict({"w": clgrad.ones(2)})
    assert isinstance(pd["w"], nn.Parameter)
    assert [n for n, _ in nn.Sequential(pd).named_parameters()] == ["0.w"]


def test_repr():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.ModuleList([nn.Linear(3, 3)] * 2))
    assert repr(seq) == ("Sequential(\n"
                         "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
                         "  (1): ReLU()\n"
                         "  (2): ModuleList(\n"
                         "    (0-1): 2 x Linear(in_features=3, out_features=3, bias=True)\n"
                         "  )\n"
                         ")")
    assert repr(nn.BatchNorm2d(4)) == ("BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, "
                                       "bias=True, track_running_stats=True)")
    assert repr(nn.Embedding(10, 3, padding_idx=0)) == "Embedding(10, 3, padding_idx=0)"
    assert repr(nn.LayerNorm(4)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"
    assert repr(nn.Parameter(clgrad.zeros(1))).startswith("Parameter containing:\ntensor(")


def test_parameter():
    p = nn.Parameter(clgrad.zeros(2, 3))
    assert p.requires_grad and p.is_leaf and isinstance(p, clgrad.Tensor)
    assert not nn.Parameter(clgrad.zeros(1), requires_grad=False).requires_grad
    assert p.shape == (2, 3)


def test_forward_missing():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_batchnorm_module_running_stats_and_eval(device):
    bn = nn.BatchNorm1d(3, momentum=None).to(device)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5, 3)) for _ in range(3)]
    for x in xs:
        bn(clgrad.tensor(x, dtype=clgrad.float32, device=device))
    # momentum=None keeps the cumulative average of the batch statistics
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(),
                               np.mean([x.var(0, ddof=1) for x in xs], 0), rtol=1e-5)
    assert bn.num_batches_tracked.item() == 3
    bn.eval()
    x = rng.standard_normal((2, 3))
    y = bn(clgrad.tensor(x, dtype=clgrad.float32, device=device)).detach().numpy()
    ref = (x - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_instance_norm_unbatched_and_embedding_pretrained(device):
    m = nn.InstanceNorm2d(2)
    y = m(clgrad.randn(2, 3, 3, device=device))
    assert y.shape == (2, 3, 3)
    w = clgrad.randn(4, 2, device=device)
    e = nn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad
    np.testing.assert_array_equal(e(clgrad.tensor([3], device=device)).numpy(),
                                  w.numpy()[[3]])
    assert nn.Flatten()(clgrad.zeros(2, 3, 4)).shape == (2, 12)
    assert nn.Unflatten(1, (2, 2))(clgrad.zeros(3, 4)).shape == (3, 2, 2)


def test_deepcopy():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    m2 = copy.deepcopy(m)
    assert m2[0].weight is not m[0].weight and isinstance(m2[0].weight, nn.Parameter)
    np.testing.assert_array_equal(m2[0].weight.detach().numpy(), m[0].weight.detach().numpy())
    with clgrad.no_grad():
        m2[0].weight.fill_(0)
        m2[1].running_mean.fill_(5)
    assert (m[0].weight.detach().numpy() != 0).any() and (m[1].running_mean.numpy() == 0).all()


def test_fused_cross_entropy_launches(device):
    from clgrad.runtime import memory
    x = clgrad.randn(8, 5, device=device, requires_grad=True)
    t = clgrad.tensor([0, 1, 2, 3, 4, 0, 1, 2], device=device)
    nn.functional.cross_entropy(x, t).backward()            # warm: builds the kernels
    memory.reset_stats()
    x.grad = None
    nn.functional.cross_entropy(x, t).backward()
    st = memory.stats()
    # one fused forward, two sums and a divide, their gradients, one fused backward; no reads
    assert st["launches"] <= 12, st
    assert st["d2h"] == 0 and st["h2d"] == 0, st


def test_double_backward_through_fused_kernel_raises(device):
    x = clgrad.randn(3, 4, dtype=clgrad.float64, device=device, requires_grad=True)
    h = nn.functional.layer_norm(x, (4,))
    y = (h * h).sum()
    with pytest.raises(NotImplementedError, match="double backward"):
        clgrad.autograd.grad(y, x, create_graph=True)
