#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs commbrokerd on its embedded SQLite
# journal with the demo config in ./var/demo, while a small CMS script reports calls, chats and
# e-mails over SOAP. The registry is printed as it changes. Ctrl-C stops everything.
# DEMO_SECONDS=N stops after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build=${COMMBROKER_BUILD_DIR:-build}
dir=var/demo
mkdir -p "$dir"
ctl="$build/ctl/commbrokerctl"
hash() { printf '%s\n' "$1" | "$ctl" hash-password --iterations 10000; }
if [ ! -f "$dir/commbroker.xml" ]; then
  sed -e "s|@STATE@|$PWD/$dir|g" \
      -e "s|@CMS_A_HASH@|$(hash demo-a)|" -e "s|@CMS_B_HASH@|$(hash demo-b)|" \
      -e "s|@OPS_HASH@|$(hash ops)|" \
      config/demo.xml.in > "$dir/commbroker.xml"
fi
"$build/daemon/commbrokerd" --check-config --config "$dir/commbroker.xml"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
"$build/daemon/commbrokerd" --config "$dir/commbroker.xml" &
pids+=($!)
for _ in $(seq 100); do [ -S "$dir/admin.sock" ] && break; sleep 0.1; done
"$ctl" --socket "$dir/admin.sock" status

python3 scripts/demo_cms.py --url http://127.0.0.1:8450/ici --seconds "${DEMO_SECONDS:-0}" \
  --account cms-a:demo-a --account cms-b:demo-b &
pids+=($!)
end=$(( $(date +%s) + ${DEMO_SECONDS:-1000000000} ))
while kill -0 "${pids[1]}" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
  sleep 2
  echo "---- $(date +%T) live items (commbrokerctl items)"
  "$ctl" --socket "$dir/admin.sock" items || true
done
"$ctl" --socket "$dir/admin.sock" status
