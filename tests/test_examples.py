"""Each example runs top to bottom with --dry-run (two training steps)."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parent.parent / "examples").glob("*.py")
                  if not p.name.startswith("_"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_dry_run(script, device):
    root = script.parent.parent
    r = subprocess.run([sys.executable, str(script), "--dry-run", "--device", device.spec],
                       cwd=root, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test accuracy" in r.stdout
