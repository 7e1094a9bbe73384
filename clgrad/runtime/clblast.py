"""CLBlast's SGEMM on a clgrad device, for the benchmark's reference column (pyclblast is optional)."""
import numpy as np
import pyopencl.array as cla


def sgemm_runner(blast, device, a: np.ndarray, b: np.ndarray):
    """A callable running CLBlast's a @ b on `device`'s queue and waiting for it, checked once
    against numpy; or (None, why not)."""
    n, k = a.shape
    m = b.shape[1]
    q = device.queue
    try:
        da, db = cla.to_device(q, a), cla.to_device(q, b)
        dc = cla.empty(q, (n, m), np.float32)

        def run():
            blast.gemm(q, n, m, k, da, db, dc, a_ld=k, b_ld=m, c_ld=m)
            q.finish()
        run()
        if not np.allclose(dc.get(), a @ b, rtol=1e-3, atol=1e-3 * k):
            return None, "pyclblast gave a wrong product on this device"
    except Exception as e:       # noqa: BLE001 -- an optional column must not stop the run
        return None, f"pyclblast failed: {e}"
    return run, ""
