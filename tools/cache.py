"""List or clear clgrad's on-disk cache of built OpenCL programs.

    python tools/cache.py list         # one line per program: kernel names, size, age, device
    python tools/cache.py clear
    python tools/cache.py info

The cache lives in CLGRAD_CACHE_DIR (default ~/.cache/clgrad); each entry is a folder named by
the sha256 key holding source.cl, binary.bin, build.log and meta.json."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clgrad.runtime import cache_dir, cache_info, clear_cache  # noqa: E402


def entries(root: Path):
    for meta in sorted(root.glob("*/*/meta.json")):
        d = meta.parent
        try:
            info = json.loads(meta.read_text())
            source = (d / "source.cl").read_text()
        except (OSError, ValueError):
            info, source = {}, ""
        names = re.findall(r"__kernel\s+void\s+(\w+)", source)
        size = sum(f.stat().st_size for f in d.iterdir())
        yield {"key": d.name, "kernels": names, "bytes": size, "mtime": meta.stat().st_mtime,
               "device": (info.get("device") or ["?"] * 3)[2], "options": info.get("options")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("list", "clear", "info"))
    args = ap.parse_args(argv)
    root = cache_dir()
    if args.command == "info":
        i = cache_info()
        print(f"{i['path']}: {i['entries']} programs, {i['bytes']} bytes, "
              f"{'enabled' if i['enabled'] else 'disabled (CLGRAD_NO_CACHE)'}")
    elif args.command == "clear":
        print(f"removed {clear_cache()} programs from {root}")
    else:
        now = time.time()
        rows = list(entries(root))
        for e in sorted(rows, key=lambda e: e["kernels"]):
            age = (now - e["mtime"]) / 3600
            print(f"{e['key'][:12]}  {','.join(e['kernels']) or '?':<40} {e['bytes']:>9} B  "
                  f"{age:7.1f} h  {e['device']}")
        print(f"{len(rows)} programs in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
