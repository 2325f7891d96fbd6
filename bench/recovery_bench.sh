#!/usr/bin/env bash
# Recovery benchmark: a journal left with ITEMS live calls of AGENTS agents over two systems
# (bench/recovery_seed.cpp); commbrokerd starts on it with two commbroker-cmss, twice:
# - gone: the simulators no longer have any of the calls (each is closed here as gone,
#   journaled and audited);
# - alive: the simulators still hold every one of them (--preload), so each getItems answer
#   lists half of the calls and every call is compared with the registry's.
# Measured for each: start to ready (the journal loaded, the registry restored, the listeners
# up), and start to the end of the start-up reconciliation.
# usage: bench/recovery_bench.sh [ITEMS] [AGENTS]   (default 100000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
items=${1:-100000}
agents=${2:-10000}
build=${COMMBROKER_BUILD_DIR:-build}
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$build/bench/recovery_seed" "$work/seeded.db" "$items" "$agents"
# What the simulators hold in the alive run: the same calls (recovery_seed's IDs, owners and
# version), each system its half.
/usr/bin/python3 - "$items" "$agents" "$work" <<'PY'
import json, sys
items, agents, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
calls = {"CMS-A": [], "CMS-B": []}
for i in range(items):
    a = i % agents
    calls["CMS-B" if a % 2 else "CMS-A"].append({"id": f"call-{i}", "agent": f"a{a:05d}", "version": 3})
for system, held in calls.items():
    with open(f"{work}/{system}.json", "w") as f:
        json.dump(held, f)
PY
hash=$(printf 'bench\n' | "$build/ctl/commbrokerctl" hash-password --iterations 10000)
# write_config DIR PORT_A PORT_B: the broker's config, journal and admin socket in DIR.
write_config() {
  {
    echo "<commbroker>"
    echo "  <listen service=\"ici\" address=\"127.0.0.1\" port=\"0\"/>"
    echo "  <adminSocket path=\"$1/admin.sock\" mode=\"0600\"/>"
    echo "  <journal path=\"$1/journal.db\" sync=\"normal\"/>"
    echo "  <cms id=\"CMS-A\" url=\"http://127.0.0.1:$2/cms\" user=\"broker\" password=\"bench\" inboundUser=\"cms-a\" inboundPasswordHash=\"$hash\"/>"
    echo "  <cms id=\"CMS-B\" url=\"http://127.0.0.1:$3/cms\" user=\"broker\" password=\"bench\" inboundUser=\"cms-b\" inboundPasswordHash=\"$hash\"/>"
    for i in $(seq 0 $((agents - 1))); do
      printf '  <agent id="a%05d" passwordHash="%s" cms="%s"/>\n' "$i" "$hash" "$([ $((i % 2)) = 1 ] && echo CMS-B || echo CMS-A)"
    done
    echo "  <log level=\"warn\" target=\"stderr\"/>"
    echo "</commbroker>"
  } > "$1/c.xml"
}

for mode in gone alive; do
  run=$work/$mode
  mkdir -p "$run/a" "$run/b"
  cp "$work/seeded.db" "$run/journal.db"
  cp "$work/seeded.db.created" "$run/journal.db.created"
  preload_a=() preload_b=()
  if [ "$mode" = alive ]; then
    preload_a=(--preload "$work/CMS-A.json")
    preload_b=(--preload "$work/CMS-B.json")
  fi
  start_cmss "$run/a" "${preload_a[@]}"
  port_a=$cms_port
  start_cmss "$run/b" --system CMS-B --broker-user cms-b "${preload_b[@]}"
  port_b=$cms_port
  write_config "$run" "$port_a" "$port_b"
  held=$([ "$mode" = alive ] && echo "hold every one of them" || echo "no longer have them")
  echo "recovery benchmark, $mode: $items live calls of $agents agents in the journal ($(du -m "$run/journal.db" | cut -f1) MB), two simulators that $held; $(nproc) cores"
/usr/bin/python3 - "$build/daemon/commbrokerd" "$run" "$mode" "$items" <<'PY'
import http.client, json, socket, subprocess, sys, time
daemon, work, mode, items = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
# Done: both systems reconciled, and every call closed (gone) or still held (alive).
left = 0 if mode == "gone" else items

class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)

def status():
    try:
        c = Unix(work + "/admin.sock")
        c.request("GET", "/admin/v1/status")
        return json.loads(c.getresponse().read())
    except OSError:
        return None

t0 = time.monotonic()
log = open(work + "/broker.log", "w")
p = subprocess.Popen([daemon, "--config", work + "/c.xml"], stdout=log, stderr=log)
ready = done = None
try:
    while time.monotonic() - t0 < 300:
        if p.poll() is not None:
            sys.exit(f"commbrokerd exited with {p.returncode}; see its log")
        s = status()
        if s and s["ready"] and ready is None:
            ready = time.monotonic() - t0
        if s and s["reconciliation"]["state"] == "done" and s["counts"]["items"] == left:
            done = time.monotonic() - t0
            break
        time.sleep(0.02)
    if done is None:
        sys.exit("the reconciliation did not finish within 300 s")
    systems = {x["system"]: x for x in s["reconciliation"]["systems"]}
    counted = {k: sum(x[k] for x in systems.values()) for k in ("cmsItems", "gone", "refreshed", "adopted")}
    print(f"start to ready:                     {ready:6.2f} s   (target 2 s)")
    print(f"start to reconciliation done:       {done:6.2f} s   (target 10 s; {counted['cmsItems']} calls "
          f"listed by the CMSs, {counted['gone']} closed as gone, {counted['refreshed']} refreshed, "
          f"{counted['adopted']} adopted)")
finally:
    p.terminate()
    p.wait()
PY

  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  pids=()
done
