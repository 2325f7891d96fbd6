#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs commbrokerd on its embedded SQLite
# journal with the demo config in ./var/demo, next to two CMS simulators (commbroker-cmss) that
# offer calls, chats and e-mails, and two robot desktops (bob at CMS-A, carol at CMS-B) that take
# them. The live registry is printed as it changes. Log on as alice in another terminal with
#   python3 sim/desktop.py alice
# to take calls by hand. Ctrl-C stops everything. DEMO_SECONDS=N stops after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build=${COMMBROKER_BUILD_DIR:-build}
dir=var/demo
mkdir -p "$dir"
ctl="$build/ctl/commbrokerctl"
hash() { printf '%s\n' "$1" | "$ctl" hash-password --iterations 10000; }
if [ ! -f "$dir/commbroker.xml" ] || ! grep -q 'service="desktop"' "$dir/commbroker.xml"; then
  sed -e "s|@STATE@|$PWD/$dir|g" \
      -e "s|@CMS_A_HASH@|$(hash demo-a)|" -e "s|@CMS_B_HASH@|$(hash demo-b)|" \
      -e "s|@ALICE_HASH@|$(hash alice)|" -e "s|@BOB_HASH@|$(hash bob)|" \
      -e "s|@CAROL_HASH@|$(hash carol)|" -e "s|@SUE_HASH@|$(hash sue)|" \
      -e "s|@OPS_HASH@|$(hash ops)|" \
      config/demo.xml.in > "$dir/commbroker.xml"
fi
"$build/daemon/commbrokerd" --check-config --config "$dir/commbroker.xml"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
cmss="$build/sim/commbroker-cmss"
"$cmss" --listen 127.0.0.1:8460 --system CMS-A --user broker --password demo-broker \
  --broker-user cms-a --broker-password demo-a --agents alice,bob \
  --offer-rate 0.5 --ring-time 10s --talk-time 8s 2>"$dir/cms-a.log" &
pids+=($!)
"$cmss" --listen 127.0.0.1:8461 --system CMS-B --user broker --password demo-broker \
  --broker-user cms-b --broker-password demo-b --agents carol \
  --offer-rate 0.3 --ring-time 10s --talk-time 8s 2>"$dir/cms-b.log" &
pids+=($!)
"$build/daemon/commbrokerd" --config "$dir/commbroker.xml" 2>"$dir/commbrokerd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$dir/admin.sock" ] && break; sleep 0.1; done
sleep 1
/usr/bin/python3 sim/desktop.py bob --auto >"$dir/desktop-bob.log" 2>&1 &
pids+=($!)
/usr/bin/python3 sim/desktop.py carol --auto >"$dir/desktop-carol.log" 2>&1 &
pids+=($!)
"$ctl" --socket "$dir/admin.sock" status
echo "logs in $dir; take calls as alice with: python3 sim/desktop.py alice"

end=$(( $(date +%s) + ${DEMO_SECONDS:-1000000000} ))
while kill -0 "${pids[2]}" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
  sleep 2
  echo "---- $(date +%T) live items (commbrokerctl items)"
  "$ctl" --socket "$dir/admin.sock" items || true
done
echo "---- what bob's desktop saw (last lines of $dir/desktop-bob.log)"
tail -n 8 "$dir/desktop-bob.log" || true
"$ctl" --socket "$dir/admin.sock" status
