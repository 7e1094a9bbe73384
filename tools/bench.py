"""The scoreboard: `clgrad bench` from a checkout (docs/performance.md says how to read it).

    python tools/bench.py --device cl:0                  # full sizes, median of 5
    python tools/bench.py --device cl:1 --repeat 9 --section gemm --section train
    python tools/bench.py --quick --json                 # tiny sizes: does everything run?
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clgrad.cli import bench  # noqa: E402

if __name__ == "__main__":
    bench(prog_name="tools/bench.py")
