"""The `clgrad` command: click commands that format what runtime/ and selftest.py report."""
from __future__ import annotations

import json
import sys

import click

from . import runtime
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
    if as_json:
        out = []
        for r in results:
            out.append({**r.device.properties(), "probe": r.status, "error": r.error or None})
        click.echo(json.dumps(out, indent=2))
    else:
        rows = []
        for r in results:
            p = r.device.properties()
            rows.append([p["index"], p["spec"], p["platform"], p["name"], p["type"],
                         p["compute_units"], _size(p["global_mem"]),
                         "yes" if p["fp16"] else "no", "yes" if p["fp64"] else "no",
                         p["opencl_c_version"], r.status])
        click.echo(_table(rows, ["#", "spec", "platform", "name", "type", "CUs", "memory",
                                 "fp16", "fp64", "OpenCL C", "probe"]))
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
    click.echo(f"devices:   {i['devices']} (see `clgrad devices`)")
    click.echo(f"config:    {i['config']}" +
               (f" (default {i['saved_default']!r})" if i["saved_default"] else " (no default)"))
    c = i["cache"]
    state = "enabled" if c["enabled"] else "disabled by CLGRAD_NO_CACHE"
    click.echo(f"cache:     {c['path']}  {c['entries']} programs, {_size(c['bytes'])} ({state})")
    for p in i["pocl"]:
        click.echo(f"PoCL:      {p['spec']} {p['origin']}: {p['platform_version']}")
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


if __name__ == "__main__":
    main()
