"""The fused elementwise kernel: one program per chain structure (kernels_cl/fused.cl, and
kernels_cl/fused_multi.cl for independent chains launched together).

A chain (a *segment*) arrives as a hashable spec built by the Array seam (clgrad/array.py): its
ops in an order where each comes after its inputs, each as (name, rendered expression, output
DType, references to its inputs), the leaves' storage dtypes, how many scalar arguments, which
ops' values are stored, and the indexing (flat, or strided of a rank). A kernel runs one or
several segments over consecutive ranges of work-items. `fused_kernel` is memoized by the
spec, so a structure seen before renders nothing; `plan_chain` keeps, per structure and views,
the launch itself (`ChainPlan`), so a chain seen before is a lookup and one enqueue."""
from __future__ import annotations

from ..view import coalesce
from .codegen import _extensions, _index_lines, _preamble
from .program import Args, kernel, memoize, render


def _ref(p: str, r) -> str:
    kind, i = r
    if kind == "s":
        return f"clg_{p}s{i}"
    return f"((clg_t)clg_{p}{'v' if kind == 'l' else 't'}{i})"


def _segment(args: Args, s, seg, compute: str, gid: str, ind: str):
    """Arguments (added to `args`), macro definitions and statements of segment number s (None:
    the kernel's only one). seg = (body, leaves, n_scalars, outputs, flat, rank)."""
    body, leaves, n_scalars, outputs, flat, rank = seg
    p = "" if s is None else f"{s}_"
    idx = "int"
    offsets, operands, loads = [], [], []
    names = [(f"clg_{p}out{k}", f"clg_{p}oo{k}", body[k][2], False) for k in outputs]
    names += [(f"clg_{p}in{j}", f"clg_{p}o{j}", dt, True) for j, dt in enumerate(leaves)]
    for arg, off, dt, const in names:
        args.buffer(dt.ctype, arg, const=const).scalar(idx, f"{arg}_off")
        if flat is None:
            args.scalar(idx, *(f"{arg}_st{d}" for d in range(rank)))
        offsets.append(f"{ind}{idx} {off} = {arg}_off;")
        operands.append((off, f"{arg}_st"))
    for j, dt in enumerate(leaves):
        loads.append(f"{ind}const {dt.ctype} clg_{p}v{j} = clg_{p}in{j}[clg_{p}o{j}];")
    for j in range(n_scalars):
        args.scalar(compute, f"clg_{p}s{j}")
    args.scalar(idx, f"clg_{p}n")
    if flat is None:
        args.scalar(idx, *(f"clg_{p}shape{d}" for d in range(rank)))
        index = _index_lines(rank, [f"clg_{p}shape{d}" for d in range(rank)], operands,
                             indent=ind)
    else:
        unit = [off for (_, off, _, _), f in zip(names, (True,) * len(outputs) + flat) if f]
        index = "\n".join(f"{ind}{off} += {gid};" for off in unit)
    defs, lines = [], []
    for k, (_, expr, out, refs) in enumerate(body):
        params = ", ".join(f"x{i}" for i in range(len(refs))) or "clg_unused"
        defs.append(f"#define CLG_OP{p}{k}({params}) ({expr})")
        call = f"CLG_OP{p}{k}({', '.join(_ref(p, r) for r in refs) or '0'})"
        value = f"(uchar)(({call}) != 0)" if out.name == "bool" else f"({out.ctype})({call})"
        lines.append(f"{ind}const {out.ctype} clg_{p}t{k} = {value};")
    stores = [f"{ind}clg_{p}out{k}[clg_{p}oo{k}] = clg_{p}t{k};" for k in outputs]
    ctypes = [dt.ctype for _, _, dt, _ in names]
    return defs, offsets, index, loads, lines, stores, ctypes


@memoize
def fused_kernel(device, compute: str, preamble: tuple, segments: tuple):
    """segments: per segment (body, leaves, n_scalars, outputs, flat, rank). body: per op
    (name, expression over x0.., output DType, refs); a ref is ('l', leaf), ('t', op) or ('s',
    scalar). leaves: storage DType per leaf. outputs: the ops whose value is stored, each
    through an output buffer, offset (and strides). flat: None when outputs and leaves are
    strided (rank strides each), else per leaf True (element i at offset + i) or False
    (broadcast: always its offset); outputs are then unit-stride."""
    args = Args()
    first, last = segments[0][0][0], segments[-1][0][-1]
    ctypes = [compute]
    if len(segments) == 1:
        seg = segments[0]
        defs, offsets, index, loads, lines, stores, ct = _segment(args, None, seg, compute,
                                                                  "clg_gid", "    ")
        ctypes += ct
        name = f"fused_{first[0]}_{last[0]}_{len(seg[0])}_{last[2].short}" + \
            ("_flat" if seg[4] is not None else f"_r{seg[5]}")
        src = render("fused", extensions=_extensions(*ctypes), compute=compute,
                     preamble=_preamble(preamble), ops="\n".join(defs), name=name, args=args,
                     idx="int", offsets="\n".join(offsets), index=index,
                     loads="\n".join(loads), body="\n".join(lines), stores="\n".join(stores))
        return kernel(device, src, name, args)
    all_defs, blocks = [], []
    ind = "        "
    for s, seg in enumerate(segments):
        args.scalar("int", f"clg_{s}_begin")
        args.scalar("int", f"clg_{s}_groups")
        defs, offsets, index, loads, lines, stores, ct = _segment(args, s, seg, compute,
                                                                  "clg_i", ind + "    ")
        ctypes += ct
        all_defs += defs
        # a chain starts on a work-group boundary and the branch tests the group id, which is
        # the same for the whole group: no group mixes two chains, so a compiler that
        # vectorizes across work-items (CPU runtimes) keeps unit-stride vector loads
        blocks.append("\n".join([
            f"    {'else ' if s else ''}if (clg_grp < clg_{s}_groups) {{",
            f"{ind}const int clg_i = clg_gid - clg_{s}_begin;",
            f"{ind}if (clg_i < clg_{s}_n) {{",
            f"{ind}    int clg_rest = clg_i;", f"{ind}    int clg_c;", *offsets, index, *loads,
            *lines, *stores, f"{ind}}}", "    }"]))
    n_ops = sum(len(seg[0]) for seg in segments)
    name = f"fused{len(segments)}_{first[0]}_{last[0]}_{n_ops}_{last[2].short}"
    src = render("fused_multi", extensions=_extensions(*ctypes), compute=compute,
                 preamble=_preamble(preamble), ops="\n".join(all_defs), name=name, args=args,
                 segments="\n".join(blocks))
    return kernel(device, src, name, args)


_fused: dict = {}       # structure key (names and types only, all hashed in C) -> Kernel


class ChainPlan:
    """Everything derived for one launch of fused segments with given views (the cached launch
    plan per chain structure): the kernel, its argument list with offsets, strides and sizes in
    place, and the positions where each launch's buffers and scalars go."""

    __slots__ = ("kernel", "gsize", "lsize", "args", "bpos", "spos", "n_ops")


def chain_key(run):
    """Names, types and views of a run of segments (every part hashes in C)."""
    key = [run[0].device.index, run[0].compute]
    for seg in run:
        first = seg.group[0]
        key.append((tuple(seg.body), tuple(seg.preamble), first.view.shape, seg.outputs,
                    len(seg.scalars)))
        for n in seg.group:
            t = n.target
            key.append(None if t is None else (t[1].shape, t[1].strides, t[1].offset,
                                               t[2].name))
        for x in seg.leaves:
            if type(x) is not tuple:        # a stored node (a view of a product: any view)
                key.append((x.view.shape, x.view.strides, x.view.offset, x.dtype.name))
            else:
                v = x[1]
                key.append((v.shape, v.strides, v.offset, x[2].name))
    return tuple(key)


def plan_chain(run) -> ChainPlan:
    """The ChainPlan of a run of segments (clgrad/array.py's _Segment: device, compute, group
    of nodes, body, preamble, leaves, scalars, outputs)."""
    specs, args, begin, n_ops = [], [], 0, 0
    bpos, spos, preamble, starts, sizes = [], [], [], [], []
    multi = len(run) > 1
    for seg in run:
        for f in seg.preamble:
            if f not in preamble:
                preamble.append(f)
        leaves = [x if type(x) is tuple else (x.buf, x.view, x.dtype) for x in seg.leaves]
        shape = seg.group[0].view.shape
        numel = seg.group[0].view.numel
        outs = [n.target[1] if n.target is not None else n.view for n in seg.group]
        views = [v if v.shape == shape else v.expand(shape) for v in outs] + \
                [v if v.shape == shape else v.expand(shape) for _, v, _ in leaves]
        cshape, cst = coalesce(shape, *(v.strides for v in views))
        rank = len(cshape)
        flat = None
        no = len(outs)
        if rank == 1 and all(st[0] == 1 for st in cst[:no]) and \
                all(st[0] in (0, 1) for st in cst[no:]):
            flat = tuple(numel > 1 and st[0] == 1 for st in cst[no:])
        elif rank == 1 and numel == 1:
            flat = (False,) * len(leaves)
        specs.append((tuple(seg.body), tuple(d for _, _, d in leaves), len(seg.scalars),
                      seg.outputs, flat, rank))
        if multi:
            starts.append(len(args))
            args += (None, None)            # begin and end group: set below, by the group size
        for v, st in zip(views, cst):
            bpos.append(len(args))
            args += (None, v.offset)
            if flat is None:
                args += st
        for _ in seg.scalars:
            spos.append(len(args))
            args.append(None)
        args.append(numel)
        if flat is None:
            args += cshape
        sizes.append(numel)
        begin += numel
        n_ops += len(seg.body)
    first = run[0]
    key = (first.device.index, first.compute, tuple(preamble),
           tuple((tuple((b[1], b[2].name, b[3]) for b in body), tuple(d.name for d in lv), ns,
                  outs, flat, rank) for body, lv, ns, outs, flat, rank in specs))
    k = _fused.get(key)
    if k is None:
        if len(_fused) >= 4096:
            _fused.clear()
        k = _fused[key] = fused_kernel(first.device, first.compute, tuple(preamble),
                                       tuple(specs))
    plan = ChainPlan()
    plan.kernel = k
    if multi:
        # each chain starts at a multiple of the kernel's 1-D work-group (the idle work-items
        # of a chain's last group cost less than groups that mix two chains)
        local = k.group_1d
        begin = 0
        for pos, numel in zip(starts, sizes):
            groups = (begin + numel + local - 1) // local
            args[pos], args[pos + 1] = begin, groups
            begin = groups * local
        plan.gsize, plan.lsize = (begin,), (local,)
    else:
        plan.gsize, plan.lsize = k.sizes_1d(begin)
    plan.args, plan.bpos, plan.spos, plan.n_ops = args, tuple(bpos), tuple(spos), n_ops
    return plan


def absorb_copies(nodes):
    """In a flush of clgrad/array.py (`nodes`: its pending nodes, marked with what is used and
    how many read each): a plain copy into an existing tensor (a .grad slot) whose source is
    a product, or a view of one, that nothing else reads launches the product straight into
    the copy's target instead (the copy and the product's own buffer disappear). Needs the
    source's value laid out in its buffer as the target's in its own: both contiguous, same
    shape."""
    for n in nodes:
        t = n.target
        if not n.used or t is None or n.plan.fuse[1] != "x0" or len(n.args) != 1:
            continue
        d = n.args[0]
        if not getattr(d, "prod", False) or not _unshared(d) or d.dtype is not t[2] or \
                d.view.shape != t[1].shape or d.view.offset != 0 or \
                not d.view.is_contiguous() or not t[1].is_contiguous():
            continue
        r = d.base if d.base is not None else d
        dense = getattr(r.plan, "dense", None)      # products that can write anywhere
        if (r is not d and not _unshared(r)) or dense is None or not dense() or \
                t[1].offset + t[1].numel >= 1 << 31 or \
                any(type(x) is tuple and x[0] is t[0] for x in r.args):
            continue                # (nor into memory the product reads, nor past int32)
        n.into = r
        d.used = d.mat = r.used = r.mat = False


def _unshared(x) -> bool:
    """Pending, unheld, and read by one node of this flush."""
    return x.buf is None and x.arr is None and x.grp == 1 and \
        (x.keep is None or x.keep() is None)


class ViewPlan:
    """The plan of a pending view of a pending product (clgrad/array.py: Array._pending_view)."""

    __slots__ = ("node",)

    def __init__(self, root, view):
        self.node = (root.device, view, root.dtype, root.compute)

    def takes(self, name, other) -> bool:
        return False
