#!/usr/bin/env bash
# Heartbeat and restart-storm benchmark (bench/heartbeat_bench.cpp): AGENTS desktops with
# default password hashes (100,000 PBKDF2 iterations) log on, heartbeat every 5 s (the broker's
# CPU for that is measured), live through a broker restart under vendor events at RATE per
# second (time until all are back, SOAP latency meanwhile), and then SILENT of them stop
# sending heartbeats at once (how close to its deadline each logoff came). Then the same
# heartbeat load against a bare TCP server and a bare WebSocket server, for the floor.
# usage: bench/heartbeat_bench.sh [AGENTS] [SILENT] [RATE]   (default 10000 1000 1000)
# DESKTOP_NICE=N sets the broker's node desktopNice (default 0); FLOOR=0 skips the floors.
# ITERATIONS=N in the environment makes the agents' hashes cheaper, for quicker logons while
# looking into something else (the resumes after the restart use no PBKDF2 either way).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
agents=${1:-10000}
silent=${2:-1000}
rate=${3:-1000}
build=${COMMBROKER_BUILD_DIR:-build}
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((agents + 200)) ]; then
  echo "open file limit $(ulimit -n) is too low for $agents desktops" >&2; exit 1
fi
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; pkill -f "$work/c.xml" 2>/dev/null || true
            wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The broker keeps its ports across the restart, so they are chosen here.
read -r ici desktop < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
hash=$(printf 'bench\n' | "$build/ctl/commbrokerctl" hash-password ${ITERATIONS:+--iterations "$ITERATIONS"})
cms_hash=$(printf 'bench\n' | "$build/ctl/commbrokerctl" hash-password --iterations 10000)
start_cmss "$work"
{
  echo "<commbroker>"
  echo "  <node id=\"bench\" desktopNice=\"${DESKTOP_NICE:-0}\"/>"
  echo "  <listen service=\"ici\" address=\"127.0.0.1\" port=\"$ici\"/>"
  echo "  <listen service=\"desktop\" address=\"127.0.0.1\" port=\"$desktop\"/>"
  echo "  <adminSocket path=\"$work/admin.sock\" mode=\"0600\"/>"
  echo "  <journal path=\"$work/journal.db\" sync=\"normal\"/>"
  echo "  <limits maxConnections=\"30000\" maxConnectionsPerAddress=\"0\" passwordThreads=\"2\"/>"
  echo "  <heartbeatProfile id=\"default\" interval=\"5s\" lag=\"10s\" grace=\"5s\" suspectAction=\"notReady\"/>"
  echo "  <cms id=\"CMS-A\" url=\"http://127.0.0.1:$cms_port/cms\" user=\"broker\" password=\"bench\""
  echo "       inboundUser=\"cms-a\" inboundPasswordHash=\"$cms_hash\" connections=\"8\"/>"
  for i in $(seq 0 $((agents - 1))); do
    printf '  <agent id="a%05d" passwordHash="%s" cms="CMS-A"/>\n' "$i" "$hash"
  done
  echo "  <log level=\"warn\" target=\"stderr\"/>"
  echo "</commbroker>"
} > "$work/c.xml"

echo "heartbeat benchmark: $agents desktops (password hashes of ${ITERATIONS:-the default} iterations, passwordThreads 2, desktopNice ${DESKTOP_NICE:-0}), heartbeat every 5 s, lag 10 s, grace 5 s; $silent fall silent; restart under $rate events/s; $(nproc) cores"
"$build/bench/heartbeat_bench" --daemon "$build/daemon/commbrokerd" --config "$work/c.xml" \
  --admin-socket "$work/admin.sock" --desktop-port "$desktop" --ici-port "$ici" \
  --agents "$agents" --silent "$silent" --rate "$rate" --interval-ms 5000 --lag-ms 10000 \
  --grace-ms 5000 2> "$work/bench.err" | tee "$work/bench.out" || { cat "$work/bench.err" >&2; exit 1; }
head -5 "$work/bench.err" >&2 || true

# The same heartbeat load against bare servers (bench/heartbeat_floor.cpp): what the kernel,
# Asio and Beast cost on this machine before the broker does anything.
[ "${FLOOR:-1}" = 0 ] && exit 0
broker_cpu=$(sed -n 's/^heartbeats: .*broker CPU \([0-9.]*\) %.*/\1/p' "$work/bench.out")
for kind in tcp websocket; do
  line=$("$build/bench/heartbeat_floor" "$kind" --connections "$agents" --interval-ms 5000)
  floor=$(sed -n 's/.*server CPU \([0-9.]*\) %.*/\1/p' <<< "$line")
  echo "$line; the broker: $(awk -v b="$broker_cpu" -v f="$floor" 'BEGIN { printf "%.1f", b / f }')x"
done
