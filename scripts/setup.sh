#!/usr/bin/env bash
# Installs everything commbroker needs to build, test and run, from Debian 12's packages.
# Safe to run again: apt-get skips what is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-all-dev libboost-json1.81-dev libpugixml-dev gsoap libgsoap-dev libspdlog-dev libfmt-dev doctest-dev
  libsqlite3-dev sqlite3 libssl-dev openssl libsystemd-dev  # openssl: the test CA of tests/integration/test_tls.py
  curl python3 python3-pytest python3-websocket python3-zeep wrk
  clang libclang-rt-14-dev llvm  # the sanitizer and fuzz stages: clang, its sanitizer runtimes and libFuzzer, llvm-symbolizer
)

# Node.js runs the interop client a Node vendor would write (tests/interop/node); the machine's
# own node and npm are used where there are some, else Debian's.
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
