#!/usr/bin/env bash
# The whole XCTest suite (`make test` runs this after building the tests), then the numeric tests again under each
# other OpenBLAS kernel family this CPU can run: OpenBLAS picks its kernels by CPU (Prescott, Haswell, Zen,
# SkylakeX, Cooperlake, ...) and each rounds differently, so a tolerance too tight for another CPU family fails
# here first. Loom's own C kernels are run on every path the CPU has inside their tests (LOOM_KERNELS,
# Sources/CLoomKernels/include/loom_dispatch.h). Ends with one line: "N passed, N failed, N skipped" over all runs.
#
#   Tests/run-suite.sh [LOG]      (SWIFT and the environment as make test sets them; LOG default .build/test.log)
#   LOOM_CORETYPES="Haswell Zen"  overrides the list of core types for the numeric re-runs ("" runs none)
set -uo pipefail
SWIFT=${SWIFT:-swift}
# Models imported from .gguf files (the Gemma 3 270M checks) are cached in the build folder, not the home directory.
export LOOM_CACHE=${LOOM_CACHE:-$PWD/.build/cache}
LOG=${1:-.build/test.log}
NUMERIC='LoomTrainTests\.|LoomTensorTests\.|LoomMergeTests\.|LoomPackTests\.|LoomEvalTests\.ScorerTests'

passed=0 failed=0 skipped=0 status=0
# Adds a run's "Executed N tests, with S tests skipped and F failures" to the totals.
count() {
    local line total f s
    line=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with " "$1" | tail -n 1)
    total=$(echo "$line" | grep -oE "Executed [0-9]+" | grep -oE "[0-9]+" || echo 0)
    f=$(echo "$line" | grep -oE "[0-9]+ failures?" | grep -oE "[0-9]+" || echo 0)
    s=$(echo "$line" | grep -oE "[0-9]+ tests? skipped" | grep -oE "^[0-9]+" || echo 0)
    passed=$((passed + total - f - s)) failed=$((failed + f)) skipped=$((skipped + s))
}

"$SWIFT" test --skip-build --disable-swift-testing 2>&1 | tee "$LOG" || status=1
count "$LOG"

# The core types this CPU runs, from its flags (Debian's OpenBLAS is built for dynamic dispatch).
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
if [ -n "${LOOM_CORETYPES+x}" ]; then
    coretypes=$LOOM_CORETYPES
else
    coretypes=""
    has pni && coretypes+=" Prescott"
    has avx2 fma && coretypes+=" Haswell Zen"
    has avx512f avx512dq avx512bw avx512vl avx512cd && coretypes+=" SkylakeX"
    has avx512f avx512dq avx512bw avx512vl avx512cd avx512_bf16 && coretypes+=" Cooperlake"
fi
for ct in $coretypes; do
    [ "$ct" = "${OPENBLAS_CORETYPE:-}" ] && continue
    echo "== numeric tests with OPENBLAS_CORETYPE=$ct"
    run="${LOG%.log}-$ct.log"
    OPENBLAS_CORETYPE=$ct "$SWIFT" test --skip-build --disable-swift-testing --filter "$NUMERIC" >"$run" 2>&1 || {
        status=1
        grep -E "error:|Fatal|fatal" "$run" | head -20
    }
    count "$run"
    grep -E "^[[:space:]]*Executed [0-9]+ tests?, with " "$run" | tail -n 1
done
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
