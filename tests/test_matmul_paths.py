"""Every matmul kernel family (local-memory tiles for GPUs, scalar register blocks, vector register
blocks for CPU devices) agrees with numpy whichever one the device would pick, on odd, strided,
transposed and broadcast shapes."""
import numpy as np
import pytest

from clgrad.runtime import gemm
from helpers import make

SHAPES = [((1, 1), (1, 1)), ((3, 5), (5, 7)), ((2, 33, 17), (17, 65)), ((4, 1, 9, 16), (3, 16, 8))]
CASES = [(p, d) for p in ("local", "blocked", "cpu") for d in ("float32", "float64", "int64")
         if not (p == "cpu" and d == "int64")]


@pytest.mark.parametrize("path,dtype", CASES)
def test_matmul_kernels(device, monkeypatch, path, dtype):
    if dtype == "float64" and not device.has_fp64:
        pytest.skip("no cl_khr_fp64")
    monkeypatch.setattr(gemm, "family_for", lambda dev, dt: path)
    rng = np.random.default_rng(0)
    for sa, sb in SHAPES:
        a = rng.integers(-3, 4, sa).astype(dtype)
        b = rng.integers(-3, 4, sb).astype(dtype)
        for layout in ("contiguous", "permuted", "sliced"):
            got = (make(a, dtype, device, layout) @ make(b, dtype, device, layout)).numpy()
            np.testing.assert_array_equal(got, a @ b, err_msg=f"{path} {layout} {sa}@{sb}")
