"""Device health check: build and run one tiny elementwise kernel and compare with the host."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import numpy as np

from ..dtypes import float32
from . import codegen
from .device import Device, devices
from .memory import Buffer

PROBE_N = 37        # odd, so the rounded-up tail of the last work-group is exercised


@dataclass
class ProbeResult:
    device: Device
    ok: bool
    error: str = ""
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "PASS" if self.ok else "FAIL"


def probe(device: Device) -> ProbeResult:
    """Run `out[i] = x0[i] * 3 + i` through the real elementwise template on `device`.

    Any failure (no context, build error, wrong numbers) is caught and reported, never raised,
    so one broken device does not hide the others in `clgrad devices`."""
    r = _probe(device)
    device._probe = (r.ok, r.error)        # the default-device choice reuses the answer
    return r


def _probe(device: Device) -> ProbeResult:
    t0 = time.perf_counter()
    try:
        host = np.linspace(-1.0, 1.0, PROBE_N, dtype=np.float32)
        src = Buffer(device, host.nbytes)
        dst = Buffer(device, host.nbytes)
        src.write(host)
        k = codegen.elementwise_kernel(device, "probe_f32", "x0 * (clg_t)3 + (clg_t)clg_gid",
                                       float32, ((float32, "float"),), 1, False, "float")
        codegen.launch_elementwise(k, PROBE_N, dst.raw, 0, (1,), [(src.raw, 0, (1,))],
                                   (PROBE_N,))
        got = dst.read(np.empty_like(host))
        want = host * np.float32(3) + np.arange(PROBE_N, dtype=np.float32)
        if not np.allclose(got, want, rtol=1e-6, atol=1e-6):
            bad = int(np.argmax(np.abs(got - want)))
            return ProbeResult(device, False, f"wrong result at element {bad}: got {got[bad]}, "
                                              f"expected {want[bad]}",
                               time.perf_counter() - t0)
    except Exception as e:  # report any driver failure as FAIL with its message
        msg = f"{type(e).__name__}: {e}".strip()
        if not str(e):
            msg = traceback.format_exc(limit=1).strip().splitlines()[-1]
        return ProbeResult(device, False, msg, time.perf_counter() - t0)
    return ProbeResult(device, True, "", time.perf_counter() - t0)


def probe_all(devs=None) -> list[ProbeResult]:
    return [probe(d) for d in (devs if devs is not None else devices())]
