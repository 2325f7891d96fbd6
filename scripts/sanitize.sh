#!/usr/bin/env bash
# The sanitizer stage: builds commbroker with clang, AddressSanitizer, UndefinedBehaviorSanitizer
# and libFuzzer's coverage instrumentation into ./build-asan (or $COMMBROKER_ASAN_DIR), then runs
# every test of that tree: unit tests and the integration tests against the instrumented binaries.
# A sanitizer report fails the run: the unit tests exit non-zero, and the integration harness fails
# a test whose processes wrote a report or died of a signal. The fuzz targets (scripts/fuzz.sh)
# are built in the same tree.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${COMMBROKER_ASAN_DIR:-build-asan}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# -O1 and assertions on (no NDEBUG): the usual trade for a sanitizer build.
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" "${generator[@]}" \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" -DCOMMBROKER_SANITIZE=ON -DCOMMBROKER_FUZZ=ON -DCOMMBROKER_BENCH=OFF
cmake --build "$build" -j "${COMMBROKER_JOBS:-2}"

# halt_on_error: the first report ends the process with exit code 1 (not an abort, so no core);
# leaks are looked for at every exit. The suppression files say why each entry is there.
supp=$PWD/tests/sanitizers
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp"
ctest --test-dir "$build" --output-on-failure -j 2
