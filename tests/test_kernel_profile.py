"""tools/kernel_profile.py: a training step's kernel time per family and per kernel."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import kernel_profile  # noqa: E402


def test_family_names():
    assert kernel_profile.family("gemm_nn_f32_b1_r8v16_R") == "gemm_nn"
    assert kernel_profile.family("clg_sdpa_probs_f32") == "clg_sdpa_probs"
    assert kernel_profile.family("fused3_copy_f32_f32_copy_f32_f32_3_f32") == "fused3_copy"
    assert kernel_profile.family("reduce_sum_f32_f32") == "reduce_sum"


def test_profile_counts_every_launch(device):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "kernel_profile.py"), "--quick",
                        "--model", "gpt", "--steps", "1", "--device", device.spec],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    head, fam = r.stdout.split("\n\nby family:")[0], r.stdout.split("by family:")[1]
    launches = int(head.split(" launches")[0].rsplit(" ", 1)[1])
    rows = [line.split() for line in fam.split("\n\nby kernel:")[0].splitlines()[1:]]
    assert sum(int(row[1]) for row in rows) == launches > 0
    assert {"gemm_nn", "clg_sdpa_probs"} <= {row[0] for row in rows}
