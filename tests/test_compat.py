"""Device plumbing a PyTorch script reaches for: `accelerator`, `cuda`, `backends`, `onnx`.

Where torch is installed, names and CPU-machine answers are compared with it."""
import pytest

import clgrad

import numpy as np

try:
    import torch
except ImportError:          # pragma: no cover - torch is a dev extra
    torch = None


def test_accelerator_is_the_default_device():
    acc = clgrad.accelerator
    assert acc.is_available() is True
    assert acc.device_count() == len(clgrad.device_list()) >= 1
    dev = acc.current_accelerator()
    assert dev == clgrad.get_default_device()
    assert dev.type == "cl"
    assert acc.current_accelerator(check_available=True) == dev
    assert acc.current_device_index() == dev.index
    acc.synchronize()


def test_bare_type_resolves_to_the_default_device():
    # the idiom: device = accelerator.current_accelerator().type if ... else "cpu"
    kind = clgrad.accelerator.current_accelerator().type
    assert clgrad.device(kind) == clgrad.get_default_device()
    x = clgrad.arange(6, dtype=clgrad.float32).to(kind)
    assert x.device == clgrad.get_default_device()
    m = clgrad.nn.Linear(3, 2).to(kind)
    assert m.weight.device == clgrad.get_default_device()
    np.testing.assert_array_equal(x.numpy(), np.arange(6, dtype=np.float32))


def test_set_device_index_changes_where_new_tensors_go():
    acc = clgrad.accelerator
    before = clgrad.get_default_device()
    try:
        for d in clgrad.device_list():
            acc.set_device_index(d.index)
            assert acc.current_device_index() == d.index
            assert clgrad.zeros(2).device == d
    finally:
        clgrad.runtime.set_default_device(before)


def test_cuda_answers_like_a_machine_without_cuda():
    c = clgrad.cuda
    assert c.is_available() is False
    assert c.device_count() == 0
    assert c.is_initialized() is False
    c.manual_seed(0)
    c.manual_seed_all(0)
    c.empty_cache()
    for fn in (c.current_device, c.synchronize, lambda: c.set_device(0),
               lambda: c.get_device_name(0)):
        with pytest.raises(RuntimeError, match="OpenCL"):
            fn()
    with pytest.raises(RuntimeError, match="CUDA"):
        clgrad.ones(2).cuda()


def test_backends_flags_can_be_set_and_say_unavailable():
    b = clgrad.backends
    b.cudnn.benchmark = True
    b.cudnn.deterministic = True
    b.cuda.matmul.allow_tf32 = False
    assert b.cudnn.benchmark is True and b.cudnn.is_available() is False
    assert b.mps.is_available() is False and b.mps.is_built() is False
    assert b.opencl.is_available() is True and b.opencl.is_built() is True


def test_onnx_export_says_it_is_not_implemented():
    with pytest.raises(NotImplementedError, match="ONNX"):
        clgrad.onnx.export(clgrad.nn.Linear(2, 2), clgrad.zeros(1, 2), "m.onnx")


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_names_exist_in_torch_and_answer_the_same_on_this_machine():
    for mod, tmod in ((clgrad.cuda, torch.cuda), (clgrad.accelerator, torch.accelerator)):
        for name in mod.__all__:
            assert hasattr(tmod, name), f"{tmod.__name__}.{name} does not exist in torch"
    if not torch.cuda.is_available():
        assert clgrad.cuda.is_available() == torch.cuda.is_available()
        assert clgrad.cuda.device_count() == torch.cuda.device_count()
    for name in ("cudnn", "cuda", "mps"):
        assert hasattr(torch.backends, name)
    if not torch.backends.mps.is_available():
        assert clgrad.backends.mps.is_available() is False


def test_multihead_attention_out_proj_has_pytorchs_class_name():
    mha = clgrad.nn.MultiheadAttention(8, 2)
    cls = clgrad.nn.modules.linear.NonDynamicallyQuantizableLinear
    assert type(mha.out_proj) is cls and isinstance(mha.out_proj, clgrad.nn.Linear)
    if torch is not None:
        assert type(torch.nn.MultiheadAttention(8, 2).out_proj).__name__ == cls.__name__


def test_data_parallel_runs_the_module_with_module_prefixed_keys():
    clgrad.manual_seed(0)
    inner = clgrad.nn.Linear(3, 2)
    dp = clgrad.nn.DataParallel(inner)
    assert dp.module is inner
    assert list(dp.state_dict()) == ["module.weight", "module.bias"]
    x = clgrad.randn(4, 3)
    np.testing.assert_array_equal(dp(x).detach().numpy(), inner(x).detach().numpy())
    dp(x).sum().backward()
    assert inner.weight.grad is not None
    if torch is not None:
        keys = list(torch.nn.DataParallel(torch.nn.Linear(3, 2)).state_dict())
        assert keys == list(dp.state_dict())


def test_format_of_a_0d_tensor_formats_its_value():
    x = clgrad.tensor(1.2345)
    assert f"{x:.2f}" == "1.23" and f"{x:>8.3f}" == "   1.235"   # float32 1.2345000505...
    assert f"{clgrad.tensor(7):03d}" == "007"
    assert f"{clgrad.arange(3)}" == str(clgrad.arange(3))
    with pytest.raises(TypeError):
        f"{clgrad.arange(3):.2f}"
    if torch is not None:
        t = torch.tensor(1.2345)
        assert f"{x:.3e}" == f"{t:.3e}"
        with pytest.raises(TypeError):
            f"{torch.arange(3):.2f}"


def test_indexing_with_a_range_is_indexing_with_its_list(device):
    a = np.arange(20, dtype=np.float32).reshape(10, 2)
    x = clgrad.tensor(a, device=device)
    for r in (range(2, 5), range(8, 2, -2), range(0), range(-3, 0)):
        np.testing.assert_array_equal(x[r].numpy(), a[list(r)])
        np.testing.assert_array_equal(x[r, 1].numpy(), a[list(r), 1])
    x[range(0, 3)] = -1.0
    a[[0, 1, 2]] = -1.0
    np.testing.assert_array_equal(x.numpy(), a)
    if torch is not None:
        t = torch.arange(20.0).reshape(10, 2)
        np.testing.assert_array_equal(t[range(8, 2, -2)].numpy(),
                                      clgrad.arange(20.0).reshape(10, 2)[range(8, 2, -2)].numpy())


def test_randint_forms():
    clgrad.manual_seed(0)
    for t, lo, hi, shape in ((clgrad.randint(10, (50,)), 0, 10, (50,)),
                             (clgrad.randint(10, size=(5, 10)), 0, 10, (5, 10)),
                             (clgrad.randint(3, 10, (50,)), 3, 10, (50,)),
                             (clgrad.randint(-4, 4, size=(50,)), -4, 4, (50,))):
        v = t.numpy()
        assert v.shape == shape and t.dtype == clgrad.int64
        assert v.min() >= lo and v.max() < hi


def test_device_kind_flags_are_false():
    x = clgrad.zeros(2)
    assert (x.is_cuda, x.is_xpu, x.is_mps, x.is_meta, x.is_sparse, x.is_quantized) == (False,) * 6
