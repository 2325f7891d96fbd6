#!/usr/bin/env bash
# Configures and builds commbroker into ./build (or $COMMBROKER_BUILD_DIR) with ccache and -j2.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${COMMBROKER_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$build" -j "${COMMBROKER_JOBS:-2}"
