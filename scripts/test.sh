#!/usr/bin/env bash
# The test command: installs what is missing (Debian 12 packages), builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir "${COMMBROKER_BUILD_DIR:-build}" --output-on-failure -j 2
