#!/usr/bin/env bash
# The test command: installs what is missing (Debian 12 packages), then runs three stages:
#   1. build (gcc, RelWithDebInfo) and run every test: unit, integration, interop;
#   2. the sanitizer stage (scripts/sanitize.sh): a clang ASan+UBSan build runs every test again;
#   3. every fuzz target for COMMBROKER_FUZZ_SECONDS (default 20) each (scripts/fuzz.sh).
# COMMBROKER_QUICK=1 runs only the first stage, for a quick local loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The Node interop client's one dependency, the soap package, from the npm registry as its lock
# file pins it (once, and again when the lock file changes).
node_client=tests/interop/node
if ! [ "$node_client/node_modules/.package-lock.json" -nt "$node_client/package-lock.json" ]; then
    echo "setup: npm ci in $node_client"
    npm ci --prefix "$node_client" --no-audit --no-fund --loglevel=error
fi

timings=()
stage() {
    local name=$1 start=$SECONDS
    shift
    echo "=== stage: $name"
    if ! "$@"; then
        echo "=== stage: $name FAILED after $((SECONDS - start)) s" >&2
        exit 1
    fi
    timings+=("$name: $((SECONDS - start)) s")
    echo "=== stage: $name passed in $((SECONDS - start)) s"
}

tests() {
    bash scripts/build.sh
    ctest --test-dir "${COMMBROKER_BUILD_DIR:-build}" --output-on-failure -j 2
}

stage "build and test" tests
if [ "${COMMBROKER_QUICK:-0}" != 1 ]; then
    stage "sanitizers (ASan+UBSan)" bash scripts/sanitize.sh
    stage "fuzz" bash scripts/fuzz.sh "${COMMBROKER_FUZZ_SECONDS:-20}"
fi
printf '=== %s\n' "${timings[@]}"
