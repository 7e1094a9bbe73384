"""The `clgrad` command: click commands that format what runtime/ and selftest.py report."""
from __future__ import annotations

import json
import sys

import click

from . import bench as scoreboard
from . import runtime
from .dtypes import float32, float64
from .runtime import gemm
from .runtime import tune as tuner
from .runtime.errors import CLGradError
from .selftest import run_selftest
from .version import __version__


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, message="clgrad %(version)s")
def main():
    """clgrad: PyTorch's API over OpenCL buffers."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def devices(as_json):
    """List every OpenCL device and run a tiny kernel on each (PASS/FAIL)."""
    devs = runtime.devices()
    if not devs:
        _fail(runtime.NoOpenCLError(runtime.device.NO_PLATFORM_HELP))
    results = runtime.probe_all(devs)
    rank = {d.index: i + 1 for i, d in enumerate(runtime.ranked(devs))}
    if as_json:
        out = []
        for r in results:
            out.append({**r.device.properties(), "rank": rank[r.device.index],
                        "reason": r.device.speed_reason, "probe": r.status,
                        "error": r.error or None})
        click.echo(json.dumps(out, indent=2))
    else:
        rows = []
        for r in results:
            p = r.device.properties()
            rows.append([p["index"], p["spec"], rank[p["index"]], p["speed_class"],
                         p["platform"], p["name"], p["type"], p["compute_units"],
                         _size(p["global_mem"]), "yes" if p["fp16"] else "no",
                         "yes" if p["fp64"] else "no", p["opencl_c_version"], r.status])
        click.echo(_table(rows, ["#", "spec", "rank", "class", "platform", "name", "type", "CUs",
                                 "memory", "fp16", "fp64", "OpenCL C", "probe"]))
        click.echo("\nranking (fastest first; cl:N numbers follow the OpenCL enumeration order):")
        for d in runtime.ranked(devs):
            click.echo(f"  {rank[d.index]}. {d.spec} {d.speed_label}: {d.speed_reason}")
        try:
            dev, rule = runtime.choose_device()
            click.echo(f"default: {dev.spec} ({rule})")
        except CLGradError as e:
            click.echo(f"default: none ({e})")
        for r in results:
            if not r.ok:
                click.echo(f"{r.device.spec} FAIL: {r.error}")
    if not all(r.ok for r in results):
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(as_json):
    """The device clgrad would use now and why; kernel cache; versions."""
    i = runtime.runtime_info()
    if as_json:
        click.echo(json.dumps(i, indent=2))
        return
    d = i["device"]
    if d:
        click.echo(f"device:    {d['spec']}  {d['name']} ({d['platform']}, {d['type']}, "
                   f"{d['compute_units']} CUs, {_size(d['global_mem'])}, "
                   f"fp64 {'yes' if d['fp64'] else 'no'}, fp16 {'yes' if d['fp16'] else 'no'})")
    else:
        click.echo("device:    none")
    click.echo(f"chosen by: {i['rule']}")
    if d:
        click.echo(f"runtime:   {d['speed_class']}, rank {d['rank']} of {i['devices']}: "
                   f"{d['reason']}")
    click.echo(f"devices:   {i['devices']} (see `clgrad devices`)")
    click.echo(f"config:    {i['config']}" +
               (f" (default {i['saved_default']!r})" if i["saved_default"] else " (no default)"))
    c = i["cache"]
    state = "enabled" if c["enabled"] else "disabled by CLGRAD_NO_CACHE"
    click.echo(f"cache:     {c['path']}  {c['entries']} programs, {_size(c['bytes'])} ({state})")
    for p in i["pocl"]:
        click.echo(f"PoCL:      {p['spec']} {p['origin']}: {p['platform_version']}")
    intel = i["intel"]
    click.echo(f"Intel CPU: {intel['state']}: {intel['detail']}")
    for s in i["icd"]:
        click.echo(f"ICD:       {s}")
    v = i["versions"]
    click.echo("versions:  " + ", ".join(f"{k} {val}" for k, val in v.items() if val))


@main.command()
@click.argument("spec", required=False)
@click.option("--clear", is_flag=True, help="Forget the saved default device.")
def select(spec, clear):
    """Save SPEC (cl:N, cl:P:D, gpu, cpu or part of a name) as the default device."""
    if clear == bool(spec):
        raise click.UsageError("give either a device SPEC or --clear")
    try:
        path = runtime.save_default_spec(None if clear else spec)
    except CLGradError as e:
        _fail(e)
    if clear:
        click.echo(f"cleared the default device in {path}")
    else:
        dev = runtime.get_device(spec)
        click.echo(f"default device: {spec!r} -> {dev.spec} {dev.name} (saved in {path})")


@main.command()
@click.option("--device", "spec", default=None, help="Device spec (default: the chosen one).")
@click.option("--family", "families", multiple=True,
              type=click.Choice(["elementwise", "cast", "reduce", "matmul", "random"]),
              help="Only these kernel families (repeatable).")
@click.option("-v", "--verbose", is_flag=True, help="One row per case, not per failure.")
def selftest(spec, families, verbose):
    """Check every kernel family against numpy on one device; exit 1 on any failure."""
    try:
        dev = runtime.get_device(spec)
    except CLGradError as e:
        _fail(e)
    click.echo(f"selftest on {dev.spec} {dev.name} ({dev.platform_name})")

    def show(r):
        if verbose or not r.ok:
            click.echo(f"{'PASS' if r.ok else 'FAIL'}  {r.family:<11}  {r.case}"
                       + (f"\n      {r.detail}" if r.detail else ""))
    results = run_selftest(dev, families or None, progress=show)
    fams = list(dict.fromkeys(r.family for r in results))
    rows = []
    for f in fams:
        rs = [r for r in results if r.family == f]
        bad = sum(not r.ok for r in rs)
        rows.append([f, len(rs), len(rs) - bad, bad, f"{sum(r.seconds for r in rs):.1f}s",
                     "PASS" if not bad else "FAIL"])
    click.echo(_table(rows, ["family", "cases", "passed", "failed", "time", "result"]))
    failed = sum(not r.ok for r in results)
    click.echo(f"{'FAIL' if failed else 'PASS'}: {len(results) - failed}/{len(results)} cases "
               f"passed on {dev.spec}")
    if failed:
        sys.exit(1)


@main.group()
def cache():
    """The on-disk cache of built OpenCL programs."""


@cache.command("info")
def cache_info_cmd():
    """Where the cache is and how big."""
    c = runtime.cache_info()
    click.echo(f"path:    {c['path']}")
    click.echo(f"entries: {c['entries']}")
    click.echo(f"size:    {_size(c['bytes'])}")
    click.echo(f"enabled: {'yes' if c['enabled'] else 'no (CLGRAD_NO_CACHE)'}")


@cache.command("clear")
def cache_clear_cmd():
    """Delete every cached program."""
    n = runtime.clear_cache()
    click.echo(f"removed {n} cached programs from {runtime.cache_dir()}")


# ---- bench ----


def _num(v) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _bench_table(result: dict) -> str:
    rows = result["rows"]
    impls = ["clgrad"] + [k for k in ("jit", "numpy", "torch", "clblast", "pyopencl")
                          if any(k in r["values"] for r in rows)]
    ratios = [k for k in ("clgrad/numpy", "clgrad/torch", "jit/torch", "clgrad/jit",
                          "torch/numpy", "clblast/numpy", "clgrad/pyopencl", "pyopencl/torch")
              if any(k in r["ratios"] for r in rows)]
    body = [[r["spec"], r["section"], r["case"], r["unit"]]
            + [_num(r["values"].get(k)) for k in impls]
            + [_num(r["ratios"].get(k)) for k in ratios] for r in rows]
    return _table(body, ["device", "section", "case", "unit"] + impls + ratios)


def _bench_header(m: dict) -> str:
    torch = (f"torch {m['versions']['torch']} ({m['torch_threads']} threads)"
             if m["versions"]["torch"] else "torch not installed")
    return (f"clgrad bench {m['date']}: {m['spec']} = {m['device']}, {m['platform']} "
            f"({m['platform_version']}), driver {m['driver']}\n"
            f"clgrad {m['versions']['clgrad']}, numpy {m['versions']['numpy']}, {torch}, "
            f"pyclblast {'yes' if m['versions']['pyclblast'] else 'not installed'}; "
            f"{m['cpu_count']} CPUs, load {m['load_before']} -> {m['load_after']}; "
            f"median of {m['repeat']}"
            + ("; --quick sizes (not a measurement)" if m["quick"] else "")
            + ("\nwarning: the load average exceeded the CPU count: other work shared the "
               "machine, so these times and ratios are distorted"
               if max(m["load_before"] or 0, m["load_after"] or 0) > m["cpu_count"] else ""))


def _first_step_lines(rows) -> list[str]:
    out = []
    for r in rows:
        d = r.get("detail")
        if r["section"] != "first_step" or not d:
            continue
        out.append(f"{r['case']}: {d['first_step_s']:.2f} s = context {d['context_s']:.2f} + "
                   f"model {d['model_s']:.2f} + step {d['step_s']:.2f}; {d['builds']} builds, "
                   f"{d['disk_cache_hits']} cache hits, {d['launches']} launches; second step "
                   f"{d['second_step_s'] * 1e3:.1f} ms; import {d['import_s']:.2f} s, whole "
                   f"process {d['process_s']:.2f} s")
    return out


@main.command()
@click.option("--device", "spec", default=None, help="Device spec (default: the chosen one).")
@click.option("--repeat", type=click.IntRange(1), default=None,
              help="Timed repetitions per case; the median is shown (default 5, --quick 2).")
@click.option("--quick", is_flag=True, help="Tiny sizes: checks that everything runs.")
@click.option("--section", "sections", multiple=True,
              type=click.Choice(scoreboard.SECTIONS),
              help="Only these sections (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def bench(spec, repeat, quick, sections, as_json):
    """Time GEMM, conv, elementwise, launch overhead, training steps and the cold/warm first
    step on one device, against numpy and PyTorch CPU (ratios are time ratios: above 1 is
    slower)."""

    def show(row):
        click.echo(f"  {row['section']:<11} {row['case']}", err=True)
    try:
        result = scoreboard.run(spec, repeat=repeat, quick=quick, sections=sections or None,
                                progress=None if as_json else show)
    except CLGradError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(_bench_header(result["meta"]))
    click.echo(_bench_table(result))
    click.echo("ratios a/b are time ratios: above 1, a is slower than b")
    for line in _first_step_lines(result["rows"]):
        click.echo(line)


# ---- tune: GEMM tiles per device (runtime/tune.py does the work) --------------------------------
@main.command()
@click.option("--op", "ops", default="matmul",
              help="Comma-separated ops to tune: matmul, conv2d.")
@click.option("--budget", default=60.0, show_default=True, type=float,
              help="Seconds to spend in all (shared between the ops, families and dtypes).")
@click.option("--device", "spec", default=None, help="Device spec (default: the default device).")
@click.option("--dtype", "dtypes", default="float32", show_default=True,
              help="Comma-separated: float32, float64.")
def tune(ops, budget, spec, dtypes):
    """Time GEMM tile candidates and store the fastest for this device and driver."""
    names = [o.strip() for o in ops.split(",") if o.strip()]
    bad = [o for o in names if o not in tuner.OPS]
    if bad or not names:
        _fail(ValueError(f"unknown op {', '.join(bad) or '(none)'}; choose from "
                         f"{', '.join(tuner.OPS)}"))
    table = {"float32": float32, "float64": float64}
    dts = [table.get(d.strip()) for d in dtypes.split(",")]
    if None in dts:
        _fail(ValueError(f"--dtype takes float32 and/or float64, not {dtypes!r}"))
    try:
        dev = runtime.get_device(spec)
        if not dev.is_cpu:
            _fail(ValueError(f"{dev.spec} is a {dev.kind}: only CPU GEMM tiles are tunable yet"))
        winners = tuner.tune(dev, names, budget, dts, progress=click.echo)
    except CLGradError as e:
        _fail(e)
    rows = []
    for k, v in winners.items():
        if "tile" in v:
            rows.append([k, v["tile"]["family"], gemm.Tile.from_dict(v["tile"]).key(),
                         f"{v['gflops']:.1f}", v["tried"]])
        else:
            rows.append([k, v["family"], f"vector {v.get('vector_gflops', '-')} vs scalar "
                         f"{v.get('blocked_gflops', '-')}", f"{v.get('gflops', 0):.1f}", "-"])
    click.echo(_table(rows, ["entry", "family", "tile", "GFLOP/s", "tried"]))
    click.echo(f"stored in {gemm.store_path(dev, 'tune')}")


if __name__ == "__main__":
    main()
