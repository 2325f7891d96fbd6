#!/usr/bin/env bash
# Attack benchmark: what a legitimate vendor keeps while others guess passwords, and what the
# broker does when it runs out of descriptors. One commbrokerd (one I/O thread, on CPU 1, with
# hashes at the default 100,000 PBKDF2 iterations); the load and the attackers on CPU 0.
#   soap/quiet      the vendor alone: phoneCallChanged over 8 keep-alive connections (wrk)
#   soap/16-wrong   the same while 16 connections send a wrong password for the vendor's own
#                   user, each from its own source address (127.0.1.1-16), as fast as answered
#   soap/16-spray   the same while 16 connections send unknown user names, one address each
#   desktop/quiet   a known agent's hello -> welcome, logged on again and again (latency)
#   desktop/16-wrong the same while 16 connections send hellos with wrong passwords for bob
#   nofile-room     the broker under `ulimit -n 128` with 200 idle connections open: it keeps
#                   descriptors back and closes connections over its room unanswered; the
#                   vendor's keep-alive connections go on
#   nofile-none     the same with no room kept (maxOpenConnections above the limit): the process
#                   runs out of descriptors, new connections wait in the backlog, the accept loop
#                   backs off and logs the episode once, and they are served once the idle close
# Prints requests per second, p50 and p99, the ratios the targets are set on (>= 90 % of the
# quiet throughput, p99 < 10 ms), what the attackers got, and the log's growth.
# usage: bench/attack_bench.sh [SECONDS] (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
. bench/lib.sh
wrk_bench_init
hash=$(printf 'bench\n' | "$build/ctl/commbrokerctl" hash-password)
agent_hash=$(printf 'pw-alice\n' | "$build/ctl/commbrokerctl" hash-password)

start_broker() {  # DIR [ulimit -n] [more config] -> sets port, desktop_port; the broker's PID in pids
  local d=$1 nofile=${2:-} more=${3:-}
  mkdir -p "$d"
  cat > "$d/c.xml" <<XML
<commbroker>
  <node id="bench" threads="1"/>
  <listen service="ici" address="0.0.0.0" port="0"/>
  <listen service="desktop" address="0.0.0.0" port="0"/>
  <adminSocket path="$d/admin.sock"/>
  <journal path="$d/journal.db" sync="normal"/>
  <cms id="CMS-A" url="http://127.0.0.1:9/cms" inboundUser="bench" inboundPasswordHash="$hash" probeInterval="1d"/>
  <agent id="alice" passwordHash="$agent_hash" cms="CMS-A"/>
  <agent id="bob" passwordHash="$agent_hash" cms="CMS-A"/>
  <log level="info"/>
  $more
</commbroker>
XML
  if [ -n "$nofile" ]; then
    (ulimit -n "$nofile"; exec taskset -c 1 "$build/daemon/commbrokerd" --config "$d/c.xml") 2> "$d/log" &
  else
    taskset -c 1 "$build/daemon/commbrokerd" --config "$d/c.xml" 2> "$d/log" &
  fi
  pids+=($!)
  for _ in $(seq 200); do [ -S "$d/admin.sock" ] && break; sleep 0.05; done
  read -r port desktop_port < <("$build/ctl/commbrokerctl" --socket "$d/admin.sock" status --json | python3 -c '
import json, sys
ls = json.load(sys.stdin)["listeners"]
print(*[next(l["port"] for l in ls if l["service"] == s) for s in ("ici", "desktop")])')
}

stop_broker() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

cpu_ticks() {  # the broker's user + system CPU so far, in clock ticks
  awk '{print $14 + $15}' "/proc/${pids[-1]}/stat"
}

load() {  # port -> RESULT line (8 keep-alive connections) with the broker's CPU per request
  local before after out
  before=$(cpu_ticks)
  out=$(taskset -c 0 wrk -t1 -c8 -d"${seconds}s" --latency -s bench/post.lua "http://127.0.0.1:$1/ici" | grep '^RESULT')
  after=$(cpu_ticks)
  python3 -c "
import re, sys
out, ticks, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rps = float(re.search(r'rps=([0-9.]+)', out).group(1))
tck = $(getconf CLK_TCK)
print(out, f'cpu_pct={ticks / tck / seconds * 100:.0f} cpu_us_per_req={ticks / tck / (rps * seconds) * 1e6:.1f}')
" "$out" "$((after - before))" "$seconds"
}

# attackers KIND PORT SECONDS: 16 connections, one per source address, until SECONDS pass; prints
# what they were answered.
attackers() {
  taskset -c 0 /usr/bin/python3 - "$@" <<'PY'
import base64, collections, http.client, json, socket, sys, threading, time
kind, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
answers = collections.Counter()
lock = threading.Lock()
end = time.monotonic() + seconds

def soap(n, user):
    body = "<x/>"
    i = 0
    while time.monotonic() < end:
        i += 1
        u = user if user else f"nobody-{n}-{i}"
        auth = base64.b64encode(f"{u}:guess-{i}".encode()).decode()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(f"127.0.1.{n + 1}", 0))
            c.request("POST", "/ici", body=body, headers={"Authorization": "Basic " + auth, "Content-Type": "text/xml"})
            status = c.getresponse().status
            c.close()
        except OSError as e:
            status = type(e).__name__
        with lock:
            answers[status] += 1

def desktop(n):
    import websocket
    i = 0
    while time.monotonic() < end:
        i += 1
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30,
                                            source_address=(f"127.0.1.{n + 1}", 0))
            ws = websocket.create_connection(f"ws://127.0.0.1:{port}/desktop", timeout=30, socket=sock)
            ws.send(json.dumps({"type": "hello", "agent": "bob", "password": f"guess-{i}"}))
            reason = json.loads(ws.recv()).get("reason", "?")
            ws.close()
        except Exception as e:
            reason = type(e).__name__
        with lock:
            answers[reason] += 1

threads = []
for n in range(16):
    target = {"wrong": lambda n=n: soap(n, "bench"), "spray": lambda n=n: soap(n, None),
              "desktop": lambda n=n: desktop(n)}[kind]
    threads.append(threading.Thread(target=target, daemon=True))
for t in threads:
    t.start()
for t in threads:
    t.join(seconds + 40)
print("ATTACK " + " ".join(f"{k}={v}" for k, v in sorted(answers.items(), key=str)))
PY
}

# logons PORT SECONDS: alice logs on again and again (hello -> welcome, a fresh connection each
# time); prints the count and the latency percentiles.
logons() {
  taskset -c 0 /usr/bin/python3 - "$@" <<'PY'
import json, sys, time, websocket
port, seconds = int(sys.argv[1]), float(sys.argv[2])
took = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/desktop", timeout=30)
    t0 = time.monotonic()
    ws.send(json.dumps({"type": "hello", "agent": "alice", "password": "pw-alice"}))
    while json.loads(ws.recv()).get("type") != "welcome":
        pass
    took.append(time.monotonic() - t0)
    ws.close()
took.sort()
q = lambda p: took[min(len(took) - 1, int(p * len(took)))] * 1000
print(f"RESULT rps={len(took) / seconds:.0f} p50_ms={q(0.5):.3f} p99_ms={q(0.99):.3f} max_ms={took[-1] * 1000:.3f} errors=0 non2xx=0")
PY
}

declare -A result attack outcome
d="$work/soap"
start_broker "$d"
# The vendor's credential is verified once, as after any start; then each case runs.
curl -s -o /dev/null -u bench:bench -H 'Content-Type: text/xml' -d '<x/>' "http://127.0.0.1:$port/ici"
seconds_saved=$seconds; seconds=3; load "$port" > /dev/null; seconds=$seconds_saved  # warm-up
result[soap-quiet]=$(load "$port")
for kind in wrong spray; do
  attackers "$kind" "$port" "$((seconds + 2))" > "$work/$kind.attack" &
  sleep 1
  result[soap-16-$kind]=$(load "$port")
  wait $!
  attack[soap-16-$kind]=$(sed -n 's/^ATTACK //p' "$work/$kind.attack")
done
result[soap-quiet-after]=$(load "$port")
logons "$desktop_port" 1 > /dev/null  # alice's password verified once
result[desktop-quiet]=$(logons "$desktop_port" "$seconds")
attackers desktop "$desktop_port" "$((seconds + 2))" > "$work/desktop.attack" &
sleep 1
result[desktop-16-wrong]=$(logons "$desktop_port" "$seconds")
wait $!
attack[desktop-16-wrong]=$(sed -n 's/^ATTACK //p' "$work/desktop.attack")
log_lines=$(wc -l < "$d/log")
log_bytes=$(wc -c < "$d/log")
log_guard=$(grep -c "failed logon\|refused for" "$d/log" || true)
stop_broker

# Out of descriptors: 200 idle connections against ulimit -n 128, while the vendor's 8
# keep-alive connections (opened before) go on; once with the default room (the broker keeps 256
# descriptors back, so it closes connections over 64 unanswered), once with no room kept
# (maxOpenConnections above the limit: the process runs out and the accept loop backs off).
for room in nofile-room nofile-none; do
  e="$work/$room"
  extra=""; [ "$room" = nofile-none ] && extra='<limits maxOpenConnections="100000"/>'
  start_broker "$e" 128 "$extra"
  curl -s -o /dev/null -u bench:bench -H 'Content-Type: text/xml' -d '<x/>' "http://127.0.0.1:$port/ici"
  before=$(wc -c < "$e/log")
  taskset -c 0 /usr/bin/python3 - "$port" "$seconds" > "$work/$room.idle" <<'PY' &
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
time.sleep(1)  # after wrk has its connections
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
time.sleep(seconds - 2)
for s in held:
    s.close()
# A new connection afterwards: served once descriptors are free again.
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /ici?wsdl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
first = s.recv(12)
print(f"after={first.decode(errors='replace')!r} in {(time.monotonic() - t0) * 1000:.0f} ms")
PY
  idle=$!
  result[$room]=$(load "$port")
  wait $idle
  seconds_saved=$seconds; seconds=3; load "$port" > /dev/null; seconds=$seconds_saved
  result[$room-quiet]=$(load "$port")  # the same broker without the idle connections
  outcome[$room]="$(cat "$work/$room.idle"); accept episodes logged: $(grep -c "accept failed" "$e/log" || true); log grew $(( $(wc -c < "$e/log") - before )) bytes"
  stop_broker
done

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"${result[$1]}"; }
printf '\n%-18s %10s %9s %9s %9s %8s %8s %13s\n' case req/s p50_ms p99_ms max_ms errors cpu_% cpu_us/req
for k in soap-quiet soap-16-wrong soap-16-spray soap-quiet-after desktop-quiet desktop-16-wrong \
         nofile-room nofile-room-quiet nofile-none nofile-none-quiet; do
  printf '%-18s %10s %9s %9s %9s %8s %8s %13s\n' "$k" "$(field "$k" rps)" "$(field "$k" p50_ms)" "$(field "$k" p99_ms)" \
    "$(field "$k" max_ms)" "$(( $(field "$k" errors) + $(field "$k" non2xx) ))" "$(field "$k" cpu_pct)" "$(field "$k" cpu_us_per_req)"
done
ratio() { python3 -c "print(f'{$1/$2*100:.1f}%')"; }
quiet=$(python3 -c "print(($(field soap-quiet rps) + $(field soap-quiet-after rps)) / 2)")
echo
echo "(soap quiet: the mean of the runs before and after the attacks, $quiet req/s)"
echo "soap/16-wrong vs quiet:  $(ratio "$(field soap-16-wrong rps)" "$quiet")   p99 $(field soap-16-wrong p99_ms) ms   (targets >= 90%, < 10 ms)"
echo "soap/16-spray vs quiet:  $(ratio "$(field soap-16-spray rps)" "$quiet")   p99 $(field soap-16-spray p99_ms) ms"
echo "desktop/16-wrong vs quiet logons: $(ratio "$(field desktop-16-wrong rps)" "$(field desktop-quiet rps)")   p99 $(field desktop-16-wrong p99_ms) ms"
for room in nofile-room nofile-none; do
  echo "$room vs the same broker after: $(ratio "$(field $room rps)" "$(field $room-quiet rps)")   ${outcome[$room]}"
done
for k in soap-16-wrong soap-16-spray desktop-16-wrong; do echo "attackers, $k: ${attack[$k]}"; done
echo "log after the attacks: $log_lines lines, $log_bytes bytes (every legitimate logon is a line); about failed logons: $log_guard lines"
