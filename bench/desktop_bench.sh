#!/usr/bin/env bash
# Desktop benchmark: commbrokerd with N agent desktops and S supervisors monitoring everything,
# vendor events at RATE per second for SECONDS, each for one agent (bench/desktop_bench.cpp).
# commbroker-cmss is the CMS the broker subscribes at; the events are sent by the bench client.
# Prints memory per idle desktop session, events and frames (none missing, no seq gaps), the
# broker's latency from SOAP request received to desktop frame written (p50, p99, max), and the
# client's own view.
# usage: bench/desktop_bench.sh [AGENTS] [RATE] [SECONDS] [SYNC]   (default 10000 5000 10 full)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
agents=${1:-10000}
rate=${2:-5000}
seconds=${3:-10}
sync=${4:-full}
supervisors=${SUPERVISORS:-10}
build=${COMMBROKER_BUILD_DIR:-build}
# Each process needs a descriptor per desktop, and some.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((agents + supervisors + 200)) ]; then
  echo "open file limit $(ulimit -n) is too low for $agents desktops" >&2; exit 1
fi
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

hash=$(printf 'bench\n' | "$build/ctl/commbrokerctl" hash-password --iterations 10000)
start_cmss "$work"

{
  echo "<commbroker>"
  echo "  <node id=\"bench\"/>"
  echo "  <listen service=\"ici\" address=\"127.0.0.1\" port=\"0\"/>"
  echo "  <listen service=\"desktop\" address=\"127.0.0.1\" port=\"0\"/>"
  echo "  <adminSocket path=\"$work/admin.sock\" mode=\"0600\"/>"
  echo "  <journal path=\"$work/journal.db\" sync=\"$sync\"/>"
  # The client keeps up to 400 hellos waiting, each a password check: the queue takes them all.
  echo "  <limits maxConnections=\"30000\" maxConnectionsPerAddress=\"0\" passwordThreads=\"2\" passwordQueue=\"1000\"/>"
  echo "  <cms id=\"CMS-A\" url=\"http://127.0.0.1:$cms_port/cms\" user=\"broker\" password=\"bench\""
  echo "       inboundUser=\"cms-a\" inboundPasswordHash=\"$hash\" connections=\"8\"/>"
  for i in $(seq 0 $((agents - 1))); do
    printf '  <agent id="a%05d" passwordHash="%s" cms="CMS-A"/>\n' "$i" "$hash"
  done
  for i in $(seq 0 $((supervisors - 1))); do
    printf '  <agent id="sup%d" passwordHash="%s" role="supervisor" cms="CMS-A"/>\n' "$i" "$hash"
  done
  echo "  <log level=\"warn\" target=\"stderr\"/>"
  echo "</commbroker>"
} > "$work/c.xml"

"$build/daemon/commbrokerd" --config "$work/c.xml" 2>"$work/broker.log" &
broker=$!
pids+=($broker)
for _ in $(seq 200); do [ -S "$work/admin.sock" ] && break; sleep 0.05; done
sleep 0.5
status=$("$build/ctl/commbrokerctl" --socket "$work/admin.sock" status --json)
port() { /usr/bin/python3 -c "import json,sys; print(next(l['port'] for l in json.load(sys.stdin)['listeners'] if l['service']=='$1'))" <<<"$status"; }
ici=$(port ici)
desktop=$(port desktop)

echo "desktop benchmark: $agents agents + $supervisors supervisors (monitor all), $rate events/s for ${seconds}s, journal sync=$sync, $(nproc) cores"
rc=0
# The desktop records waiting for the journal (they go in chunks), sampled twice a second. The
# sampler is in `pids`, so that an early exit stops it (the cleanup waits for every child).
backlog_of() { sed -n 's/^commbroker_journal_hub_backlog \([0-9]*\).*/\1/p'; }
while sleep 0.5; do
  curl -s --unix-socket "$work/admin.sock" http://localhost/metrics | backlog_of
done > "$work/backlog" 2>/dev/null &
sampler=$!
pids+=($sampler)
"$build/bench/desktop_bench" --desktop-port "$desktop" --ici-port "$ici" --broker-pid "$broker" \
  --agents "$agents" --supervisors "$supervisors" --rate "$rate" --seconds "$seconds" || rc=$?
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
metrics=$(curl -s --unix-socket "$work/admin.sock" http://localhost/metrics)
echo "hub backlog (desktop records waiting for the journal, sampled every 0.5 s): max $(sort -n "$work/backlog" | tail -1), at the end $(backlog_of <<<"$metrics")"
q() { grep "^commbroker_desktop_event_latency_seconds{quantile=\"$1\"}" <<<"$metrics" | awk '{printf "%.2f", $2*1000}'; }
echo "broker view, SOAP request received to desktop frame written: p50 $(q 0.5) ms, p99 $(q 0.99) ms, max $(q 1) ms ($(grep '^commbroker_desktop_event_latency_seconds_count' <<<"$metrics" | awk '{print $2}') frames)"
grep -E '^commbroker_desktop_(too_slow|overload|coalesced)_total' <<<"$metrics" | sed 's/^/  /'
if grep -qiE 'error|critical' "$work/broker.log"; then
  echo "broker log:"; grep -iE 'error|critical' "$work/broker.log" | head -5
fi
exit $rc
