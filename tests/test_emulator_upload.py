"""Host writes on an emulator (Oclgrind) go through a staging buffer and a copy kernel
(runtime/memory.py and program.py: Oclgrind's uninitialised-value shadow mishandles host writes smaller than
their buffer). CI runs that path only under Oclgrind (tools/oclgrind_check.sh); here it is forced
on a real device so that its results are checked against numpy: every width (8, 4 and 1-byte
words), offsets into a larger pooled buffer, neighbours left untouched, and growth of the
staging buffer."""
import numpy as np
import pytest

import clgrad
from clgrad.runtime import memory, program


@pytest.fixture
def emulated(device, monkeypatch):
    monkeypatch.setitem(memory._emulated_devices, device.index, True)
    monkeypatch.setattr(program, "_staging", {})
    return device


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.uint8, np.int16])
def test_tensor_upload_through_the_staging_copy(emulated, dtype):
    rng = np.random.default_rng(0)
    for n in (1, 3, 37, 1000, 5000):      # 5000 x 8 bytes outgrows the first staging buffer
        host = (rng.standard_normal(n) * 100).astype(dtype)
        t = clgrad.tensor(host, device=emulated)
        np.testing.assert_array_equal(t.numpy(), host)
    assert program._staging[emulated.index][1] >= 5000 * np.dtype(dtype).itemsize


@pytest.mark.parametrize("itemsize,offset,count", [(8, 8, 5), (4, 12, 7), (1, 3, 11),
                                                    (1, 0, 1), (4, 0, 64)])
def test_write_at_an_offset_leaves_the_neighbours(emulated, itemsize, offset, count):
    dt = {8: np.float64, 4: np.float32, 1: np.uint8}[itemsize]
    buf = memory.Buffer(emulated, 512)
    base = np.arange(512, dtype=np.uint8)
    buf.write(base)
    new = (np.arange(count) + 7).astype(dt)
    buf.write(new, byte_offset=offset)
    want = base.copy()
    want[offset:offset + new.nbytes] = new.view(np.uint8)
    np.testing.assert_array_equal(buf.read(np.empty(512, np.uint8)), want)


def test_uploads_count_as_transfers_not_launches(emulated):
    clgrad.runtime.reset_stats()
    clgrad.tensor(np.ones(10, np.float32), device=emulated)
    s = clgrad.runtime.stats()
    assert (s["h2d"], s["h2d_bytes"], s["launches"]) == (1, 40, 0)
