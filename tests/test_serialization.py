"""clgrad.save/load checkpoints and the safetensors reader/writer."""
import io
import json
import os
import struct
from collections import OrderedDict

import numpy as np
import pytest

import clgrad
import clgrad.nn as nn
from clgrad import safetensors as st
from clgrad.serialization import CheckpointError

DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def _arr(dtype, shape=(2, 3), seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(-5 if dtype != "uint8" else 0, 100, shape).astype(dtype)


def test_round_trip_nested(tmp_path, device):
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).to(device)
    tensors = {d: clgrad.tensor(_arr(d), device=device) for d in DTYPES}
    obj = {"model": model.state_dict(), "tensors": tensors, "step": 12, "lr": 1e-3,
           "nan": float("nan"), "name": "run", "flags": [True, None, (1, 2.5)],
           "state": {0: {"exp_avg": clgrad.zeros(2, device=device)}}, "blob": b"\x00\x01",
           "empty": clgrad.zeros(0, 4, device=device), "scalar": clgrad.tensor(3.5),
           "np": np.arange(4), "dtype": clgrad.float16}
    path = tmp_path / "ck.pt"
    clgrad.save(obj, path)
    out = clgrad.load(path, map_location=device)
    assert isinstance(out["model"], OrderedDict) and list(out["model"]) == list(obj["model"])
    for d in DTYPES:
        t = out["tensors"][d]
        assert t.dtype is clgrad.dtypes.to_dtype(d) and t.device == device
        np.testing.assert_array_equal(t.numpy(), _arr(d))
    assert out["step"] == 12 and out["lr"] == 1e-3 and np.isnan(out["nan"])
    assert out["flags"] == [True, None, (1, 2.5)] and out["blob"] == b"\x00\x01"
    assert out["state"][0]["exp_avg"].shape == (2,)
    assert out["empty"].shape == (0, 4) and out["scalar"].item() == 3.5
    np.testing.assert_array_equal(out["np"], np.arange(4))
    assert out["dtype"] is clgrad.float16
    model2 = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model2.load_state_dict(out["model"])
    np.testing.assert_array_equal(model2[0].weight.detach().numpy(),
                                  model[0].weight.detach().numpy())
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_across_devices(tmp_path):
    devs = clgrad.runtime.devices()
    path = tmp_path / "x.pt"
    clgrad.save({"w": clgrad.arange(6, device=devs[0]).reshape(2, 3)}, path)
    for d in devs:
        w = clgrad.load(path, map_location=d)["w"]
        assert w.device == d
        np.testing.assert_array_equal(w.numpy(), np.arange(6).reshape(2, 3))


def test_file_object_and_parameters():
    buf = io.BytesIO()
    p = nn.Parameter(clgrad.ones(2))
    clgrad.save({"p": p}, buf)
    buf.seek(0)
    q = clgrad.load(buf)["p"]
    assert isinstance(q, nn.Parameter) and q.requires_grad


def test_truncated_and_corrupt(tmp_path):
    path = tmp_path / "ck.pt"
    clgrad.save({"w": clgrad.arange(100, dtype=clgrad.float32)}, path)
    data = path.read_bytes()
    for cut in (0, 10, 60, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            clgrad.load(path)
    bad = bytearray(data)
    bad[-5] ^= 0xFF                                   # a flipped bit in the tensor data
    path.write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match="payload checksum"):
        clgrad.load(path)
    bad = bytearray(data)
    bad[60] ^= 0x01                                   # inside the JSON header
    path.write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match="header checksum"):
        clgrad.load(path)
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a clgrad checkpoint"):
        clgrad.load(path)


def test_unsupported_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot store"):
        clgrad.save({"f": lambda: 0}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "ck.pt"
    clgrad.save({"v": 1}, path)
    with pytest.raises(TypeError):
        clgrad.save({"v": lambda: 0}, path)        # not picklable
    assert clgrad.load(path) == {"v": 1}


def test_safetensors_round_trip(tmp_path, device):
    tensors = {f"t_{d}": clgrad.tensor(_arr(d, (3, 2)), device=device) for d in DTYPES}
    tensors["scalar"] = clgrad.tensor(2.0, device=device)
    path = tmp_path / "w.safetensors"
    st.save_file(tensors, path, metadata={"format": "pt"})
    out = st.load_file(path, device=device)
    assert set(out) == set(tensors)
    for k, t in tensors.items():
        assert out[k].dtype is t.dtype and out[k].shape == t.shape
        np.testing.assert_array_equal(out[k].numpy(), t.numpy())
    assert st.load_metadata(path) == {"format": "pt"}
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    assert json.loads(raw[8:8 + n])["t_int64"]["dtype"] == "I64"


def test_safetensors_hand_built():
    a = np.array([[1.5, -2.0], [0.25, 8.0]], dtype="<f4")
    b = np.array([7, -1, 3], dtype="<i8")
    header = {"b": {"dtype": "I64", "shape": [3], "data_offsets": [0, 24]},
              "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [24, 40]},
              "__metadata__": {"who": "hand"}}
    hb = json.dumps(header).encode()
    data = struct.pack("<Q", len(hb)) + hb + b.tobytes() + a.tobytes()
    out = st.load(data)
    np.testing.assert_array_equal(out["a"].numpy(), a)
    np.testing.assert_array_equal(out["b"].numpy(), b)
    assert out["b"].dtype is clgrad.int64
    # our bytes read back the same way
    again = st.load(st.save(out))
    np.testing.assert_array_equal(again["a"].numpy(), a)


def test_safetensors_errors():
    good = st.save({"x": clgrad.ones(4)})
    with pytest.raises(st.SafetensorError, match="truncated|outside"):
        st.load(good[:-3])
    with pytest.raises(st.SafetensorError):
        st.load(good[:5])
    hb = json.dumps({"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 2]}}).encode()
    with pytest.raises(st.SafetensorError, match="unsupported dtype"):
        st.load(struct.pack("<Q", len(hb)) + hb + b"\x00\x00")
    hb = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}).encode()
    with pytest.raises(st.SafetensorError, match="do not hold"):
        st.load(struct.pack("<Q", len(hb)) + hb + b"\x00" * 4)
    for entry, msg in ((["F32", [1], [0, 4]], "malformed"),
                       ({"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.5]},
                        "non-integer"),
                       ({"dtype": "F32", "shape": "ab", "data_offsets": [0, 4]}, "invalid shape"),
                       ({"dtype": "F32", "shape": [-1, -1], "data_offsets": [0, 4]},
                        "invalid shape")):
        hb = json.dumps({"x": entry}).encode()
        with pytest.raises(st.SafetensorError, match=msg):
            st.load(struct.pack("<Q", len(hb)) + hb + b"\x00" * 4)
    hb = json.dumps({"__metadata__": {"a": 1}}).encode()
    with pytest.raises(st.SafetensorError, match="__metadata__"):
        st.load(struct.pack("<Q", len(hb)) + hb)
    with pytest.raises(st.SafetensorError, match="header length"):
        st.load(struct.pack("<Q", 2**64 - 1) + b"{}")


def test_model_weights_through_safetensors(tmp_path):
    m = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    st.save_file(m.state_dict(), tmp_path / "m.safetensors")
    m2 = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    m2.load_state_dict(st.load_file(tmp_path / "m.safetensors"))
    x = clgrad.randn(2, 4)
    np.testing.assert_array_equal(m(x).detach().numpy(), m2(x).detach().numpy())


def _forge(tree, payload=b"", version=1, fmt="clgrad-checkpoint"):
    """A checkpoint with valid checksums around an arbitrary (possibly hostile) header."""
    import hashlib
    header = json.dumps({"format": fmt, "obj": tree, "payload_len": len(payload),
                         "payload_sha256": hashlib.sha256(payload).hexdigest()}).encode()
    from clgrad.serialization import _PREFIX, MAGIC
    return _PREFIX.pack(MAGIC, version, len(header), hashlib.sha256(header).digest()) \
        + header + payload


def test_random_and_oversized_files_fail_cheaply(tmp_path):
    path = tmp_path / "ck.pt"
    rng = np.random.default_rng(1)
    for n in (1, 52, 53, 1000, 70_000):
        path.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        with pytest.raises(CheckpointError):
            clgrad.load(path)
    from clgrad.serialization import _PREFIX, MAGIC
    # a header length of 2**62 (or 2**64 - 1) must be rejected before anything is allocated
    for hlen in (2**62, 2**64 - 1, 10**9):
        path.write_bytes(_PREFIX.pack(MAGIC, 1, hlen, b"\x00" * 32) + b"{}")
        with pytest.raises(CheckpointError, match="truncated: header needs"):
            clgrad.load(path)


def test_hostile_headers_with_valid_checksums(tmp_path):
    path = tmp_path / "ck.pt"
    cases = [
        ({"t": "tensor", "dtype": "float32", "shape": [2**40, 2**40], "offset": 0, "nbytes": 8},
         b"\x00" * 8, "out of the payload"),
        ({"t": "tensor", "dtype": "float32", "shape": [-1, -2], "offset": 0, "nbytes": 8},
         b"\x00" * 8, "negative size"),
        ({"t": "tensor", "dtype": "float32", "shape": [2], "offset": -8, "nbytes": 8},
         b"\x00" * 8, "out of the payload"),
        ({"t": "tensor", "dtype": "complex256", "shape": [1], "offset": 0, "nbytes": 32},
         b"\x00" * 32, "unknown dtype"),
        ({"t": "tensor", "dtype": "float32"}, b"", "malformed"),
        ({"t": "pickle", "v": "cos\nsystem\n(S'echo hi'\ntR."}, b"", "unknown entry type"),
        ({"t": "dtype", "v": "os.system"}, b"", "unknown dtype"),
        ({"t": "dict", "items": 5}, b"", "malformed"),
        ([1, 2], b"", "malformed"),
    ]
    for tree, payload, msg in cases:
        path.write_bytes(_forge(tree, payload))
        with pytest.raises(CheckpointError, match=msg):
            clgrad.load(path)
    path.write_bytes(_forge(None, version=7))
    with pytest.raises(CheckpointError, match="format version 7"):
        clgrad.load(path)
    path.write_bytes(_forge(None, fmt="other"))
    with pytest.raises(CheckpointError, match="malformed checkpoint header"):
        clgrad.load(path)
    deep = "[" * 100_000 + "]" * 100_000            # JSON nesting that exhausts the recursion
    import hashlib
    from clgrad.serialization import _PREFIX, MAGIC
    hb = deep.encode()
    path.write_bytes(_PREFIX.pack(MAGIC, 1, len(hb), hashlib.sha256(hb).digest()) + hb)
    with pytest.raises(CheckpointError):
        clgrad.load(path)


def test_torch_checkpoint_is_refused_without_running_code(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="PyTorch pickle/zip checkpoint"):
        clgrad.load(path)
    with pytest.raises(CheckpointError, match="PyTorch"):
        clgrad.load(path, weights_only=False)
    with pytest.raises(ValueError, match="never unpickles"):
        clgrad.load(path, pickle_module=__import__("pickle"))


def test_save_is_atomic_and_fsynced(tmp_path, monkeypatch):
    """The checkpoint goes to a temp file in the same folder, is fsynced, renamed over the
    target, and the folder is fsynced after the rename."""
    from clgrad import _fileio
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        import stat
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        assert os.path.dirname(src) == os.path.dirname(os.fspath(dst))
        assert os.path.basename(src).startswith(".tmp-")
        return real_replace(src, dst)

    monkeypatch.setattr(_fileio.os, "fsync", fsync)
    monkeypatch.setattr(_fileio.os, "replace", replace)
    path = tmp_path / "ck.pt"
    clgrad.save({"w": clgrad.ones(3)}, path)
    assert events == ["fsync-file", "rename", "fsync-dir"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert (os.stat(path).st_mode & 0o777) == 0o666 & ~umask
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_load_state_dict_errors_match_torch():
    torch = pytest.importorskip("torch")

    def build(lib, wide):
        return lib.nn.Sequential(lib.nn.Linear(3, 4 if wide else 2), lib.nn.ReLU(),
                                 lib.nn.Linear(4 if wide else 2, 1))

    def message(lib, model, sd, strict=True):
        with pytest.raises(RuntimeError) as e:
            model.load_state_dict(sd, strict=strict)
        return str(e.value).replace(lib.__name__ + ".Size", "Size")

    # another architecture: shape mismatches
    sd_c = build(clgrad, True).state_dict()
    sd_t = build(torch, True).state_dict()
    assert message(clgrad, build(clgrad, False), sd_c) == message(torch, build(torch, False), sd_t)
    # missing and unexpected keys
    for edit in (lambda d: d.pop("0.bias"), lambda d: d.__setitem__("3.weight", d["0.weight"])):
        sd_c = build(clgrad, False).state_dict()
        sd_t = build(torch, False).state_dict()
        edit(sd_c)
        edit(sd_t)
        assert message(clgrad, build(clgrad, False), sd_c) == \
            message(torch, build(torch, False), sd_t)
        rc = build(clgrad, False).load_state_dict(sd_c, strict=False)
        rt = build(torch, False).load_state_dict(sd_t, strict=False)
        assert (rc.missing_keys, rc.unexpected_keys) == (rt.missing_keys, rt.unexpected_keys)
    # a state_dict that went through a checkpoint behaves the same
    buf = io.BytesIO()
    clgrad.save(build(clgrad, True).state_dict(), buf)
    buf.seek(0)
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight"):
        build(clgrad, False).load_state_dict(clgrad.load(buf))


OPTIMIZERS = [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), ("Adam", dict(amsgrad=True)),
              ("AdamW", dict(weight_decay=0.1)), ("Adamax", {}), ("NAdam", {}), ("RAdam", {}),
              ("RMSprop", dict(momentum=0.5, centered=True)), ("Adagrad", dict(lr_decay=0.1)),
              ("Adadelta", {}), ("Rprop", {}), ("ASGD", dict(t0=2))]


@pytest.mark.parametrize("name,hp", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_and_scheduler_resume_through_a_checkpoint(tmp_path, device, name, hp):
    """Every optimizer, with a scheduler, saved to a file after 4 steps and loaded into fresh
    objects continues bit-identically to the run that never stopped."""
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s).astype("float32") for s in ((4, 3), (3,), (0,), (5,))]
    grads = [[rng.standard_normal(a.shape).astype("float32") for a in init] for _ in range(8)]

    def make():
        ps = [nn.Parameter(clgrad.tensor(a, device=device)) for a in init]
        opt = getattr(clgrad.optim, name)([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.003}],
                                          **{"lr": 0.01, **hp})
        sched = clgrad.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        return ps, opt, sched

    def run(ps, opt, sched, steps):
        for g in steps:
            for p, a in zip(ps, g):
                p.grad = clgrad.tensor(a, device=device)
            opt.step()
            sched.step()

    a = make()
    run(*a, grads[:4])
    clgrad.save({"opt": a[1].state_dict(), "sched": a[2].state_dict()}, tmp_path / "o.pt")
    b = make()
    for p, q in zip(b[0], a[0]):
        p.detach().copy_(q.detach())
    st = clgrad.load(tmp_path / "o.pt", map_location=device)
    b[1].load_state_dict(st["opt"])
    b[2].load_state_dict(st["sched"])
    run(*a, grads[4:])
    run(*b, grads[4:])
    for p, q in zip(a[0], b[0]):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    assert [g["lr"] for g in a[1].param_groups] == [g["lr"] for g in b[1].param_groups]
