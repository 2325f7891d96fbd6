#!/usr/bin/env bash
# Recovery benchmark: a journal left with ITEMS live calls of AGENTS agents over two systems
# (bench/recovery_seed.cpp); commbrokerd starts on it with two commbroker-cmss that no longer
# have any of them. Measured: start to ready (the journal loaded, the registry restored, the
# listeners up), and start to the end of the start-up reconciliation (both CMSs asked, every
# call closed here as gone, each closing journaled and audited).
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

"$build/bench/recovery_seed" "$work/journal.db" "$items" "$agents"
mkdir -p "$work/a" "$work/b"
start_cmss "$work/a"
port_a=$cms_port
"$build/sim/commbroker-cmss" --listen 127.0.0.1:0 --system CMS-B --user broker --password bench \
  --broker-user cms-b --broker-password bench > "$work/b/cmss.out" 2>"$work/b/cmss.log" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/b/cmss.out" 2>/dev/null && break; sleep 0.05; done
port_b=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$work/b/cmss.out")
hash=$(printf 'bench\n' | "$build/ctl/commbrokerctl" hash-password --iterations 10000)
{
  echo "<commbroker>"
  echo "  <listen service=\"ici\" address=\"127.0.0.1\" port=\"0\"/>"
  echo "  <adminSocket path=\"$work/admin.sock\" mode=\"0600\"/>"
  echo "  <journal path=\"$work/journal.db\" sync=\"normal\"/>"
  echo "  <cms id=\"CMS-A\" url=\"http://127.0.0.1:$port_a/cms\" user=\"broker\" password=\"bench\" inboundUser=\"cms-a\" inboundPasswordHash=\"$hash\"/>"
  echo "  <cms id=\"CMS-B\" url=\"http://127.0.0.1:$port_b/cms\" user=\"broker\" password=\"bench\" inboundUser=\"cms-b\" inboundPasswordHash=\"$hash\"/>"
  for i in $(seq 0 $((agents - 1))); do
    printf '  <agent id="a%05d" passwordHash="%s" cms="%s"/>\n' "$i" "$hash" "$([ $((i % 2)) = 1 ] && echo CMS-B || echo CMS-A)"
  done
  echo "  <log level=\"warn\" target=\"stderr\"/>"
  echo "</commbroker>"
} > "$work/c.xml"

echo "recovery benchmark: $items live calls of $agents agents in the journal ($(du -m "$work/journal.db" | cut -f1) MB), two simulators that no longer have them; $(nproc) cores"
/usr/bin/python3 - "$build/daemon/commbrokerd" "$work" <<'PY'
import http.client, json, socket, subprocess, sys, time
daemon, work = sys.argv[1], sys.argv[2]

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
        if s and s["reconciliation"]["state"] == "done" and s["counts"]["items"] == 0:
            done = time.monotonic() - t0
            break
        time.sleep(0.02)
    if done is None:
        sys.exit("the reconciliation did not finish within 300 s")
    systems = {x["system"]: x for x in s["reconciliation"]["systems"]}
    gone = sum(x["gone"] for x in systems.values())
    print(f"start to ready:                     {ready:6.2f} s   (target 2 s)")
    print(f"start to reconciliation done:       {done:6.2f} s   (target 10 s; {gone} calls closed as gone)")
finally:
    p.terminate()
    p.wait()
PY
