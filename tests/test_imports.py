"""The floors of clgrad (docs/architecture.md): every module imports only from floors below or
its own, no import cycles, no function-level imports, no file over the size limit, no globals()
registration. Built from the source with `ast`, so nothing is imported or run.

KNOWN_VIOLATIONS is the exact list of what is still wrong. The test fails on anything new and on
a listed entry that no longer holds, so the list only shrinks and always tells the truth."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "clgrad"

# floor of each module, by longest dotted prefix; docs/architecture.md draws the same table
FLOORS = {
    "clgrad.dtypes": 0, "clgrad.view": 0, "clgrad.version": 0, "clgrad._fileio": 0,
    "clgrad.runtime": 1,
    "clgrad.array": 2,
    "clgrad.ops": 3,
    "clgrad.autograd": 4,
    "clgrad.tensor": 5,
    "clgrad.nn": 6, "clgrad.amp": 6, "clgrad.optim": 6, "clgrad.utils": 6, "clgrad.serialization": 6,
    "clgrad.safetensors": 6, "clgrad.linalg": 6, "clgrad.vision": 6, "clgrad.text": 6,
    "clgrad.distributed": 6,
    "clgrad": 7, "clgrad.__main__": 7, "clgrad.cli": 7, "clgrad.selftest": 7, "clgrad.bench": 7,
    "clgrad.jit": 7,
}
# floor 6 is written against the Tensor API: it reaches no further down than this
LOWEST_FROM_TOP = {6: (0, 4)}     # floor 6 may import floors 0 and 4..6, not runtime/array/ops
# packages imported inside functions on purpose: optional, or costly and rarely needed
OPTIONAL = {"torch", "safetensors", "scipy", "pyclblast", "mpi4py"}
MAX_LINES = 600

KNOWN_VIOLATIONS: set = set()


def _modules():
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (path, is_pkg)
    return mods


def floor_of(mod: str) -> int:
    best = None
    for prefix in FLOORS:
        if (mod == prefix or mod.startswith(prefix + ".")) and (best is None or
                                                                len(prefix) > len(best)):
            best = prefix
    assert best is not None, f"{mod} has no floor: add it to FLOORS and docs/architecture.md"
    return FLOORS[best]


def _resolve(mod, is_pkg, node, mods):
    """The clgrad modules an import statement names (a submodule when `from pkg import sub`)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "clgrad"]
    if node.level == 0:
        base = node.module or ""
        if base.split(".")[0] != "clgrad":
            return []
    else:
        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
        pkg = pkg[:len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        out.append(sub if sub in mods else base)
    return out


def _external(node):
    if isinstance(node, ast.Import):
        return [a.name.split(".")[0] for a in node.names]
    return [] if node.level else [(node.module or "").split(".")[0]]


def _imports(mods):
    """(source, target, function_level) for every import in clgrad, external ones as target=None
    with the top-level package name in place of the module."""
    found = []
    for mod, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            inner = _in_function(tree, node)
            for tgt in _resolve(mod, is_pkg, node, mods):
                found.append((mod, tgt, inner, None))
            for ext in _external(node):
                if ext and ext != "clgrad" and ext != "__future__":
                    found.append((mod, None, inner, ext))
    return found


def _in_function(tree, target):
    stack = [(tree, False)]
    while stack:
        node, inside = stack.pop()
        if node is target:
            return inside
        for child in ast.iter_child_nodes(node):
            scoped = inside or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                 ast.ClassDef, ast.Lambda))
            stack.append((child, scoped))
    return False


def _cyclic(edges, nodes):
    """Modules that lie on an import cycle (Tarjan's strongly connected components, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], set(), [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.update(comp)
    return out


def _private(src, tgt):
    """A `_module` of another package: the target's parent package differs from the source's."""
    name = tgt.split(".")[-1]
    if not name.startswith("_") or name.startswith("__"):
        return False
    src_pkg = src.rsplit(".", 1)[0]
    return not (tgt.rsplit(".", 1)[0] == src_pkg or tgt.startswith(src + "."))


def violations():
    mods = _modules()
    found = set()
    edges = {}
    for src, tgt, inner, ext in _imports(mods):
        if ext is not None:
            if inner and ext not in OPTIONAL:
                found.add(f"function-level {src} -> {ext}")
            continue
        if tgt == src:
            continue
        # the package facade imports its own package only through its submodules; of the rest,
        # only floor-7 tools (bench runs one model on clgrad and torch alike) use the facade
        if tgt == "clgrad" and src != "clgrad" and floor_of(src) < 7:
            found.add(f"upward {src} -> clgrad")
            continue
        edges.setdefault(src, set()).add(tgt)
        fs, ft = floor_of(src), floor_of(tgt)
        if ft > fs:
            found.add(f"upward {src} -> {tgt}")
        elif fs in LOWEST_FROM_TOP and not (ft == LOWEST_FROM_TOP[fs][0] or
                                            ft >= LOWEST_FROM_TOP[fs][1]):
            found.add(f"below-tensor {src} -> {tgt}")
        if _private(src, tgt) and not tgt.startswith("clgrad.runtime"):
            found.add(f"private {src} -> {tgt}")
        if inner:
            found.add(f"function-level {src} -> {tgt}")
    for mod in _cyclic(edges, mods):
        found.add(f"cycle {mod}")
    for mod, (path, _) in mods.items():
        text = path.read_text()
        if text.count("\n") > MAX_LINES:
            found.add(f"size {mod}")
        if "globals()" in text:
            found.add(f"globals {mod}")
    return found


def test_every_module_has_a_floor():
    for mod in _modules():
        floor_of(mod)


def test_floors_hold():
    found = violations()
    new = sorted(found - KNOWN_VIOLATIONS)
    gone = sorted(KNOWN_VIOLATIONS - found)
    assert not new, "new architecture violations (see docs/architecture.md):\n  " + "\n  ".join(new)
    assert not gone, ("fixed, now remove from KNOWN_VIOLATIONS in tests/test_imports.py:\n  "
                      + "\n  ".join(gone))


def test_checker_sees_what_it_should():
    # the checker on small graphs: an upward edge, a cycle, a nested import
    assert _cyclic({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, "abcd") == {"a", "b", "c"}
    assert _cyclic({"a": {"b"}}, "ab") == set()
    tree = ast.parse("import os\ndef f():\n    import sys\n")
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import)]
    assert [_in_function(tree, n) for n in nodes] == [False, True]
    assert floor_of("clgrad.nn.modules.linear") == 6 and floor_of("clgrad.runtime.program") == 1
    assert _private("clgrad.nn.functional", "clgrad._conv")
    assert not _private("clgrad.tensor", "clgrad._math")
