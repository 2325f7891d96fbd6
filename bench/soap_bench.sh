#!/usr/bin/env bash
# SOAP benchmark: phoneCallChanged over 50 keep-alive connections (wrk, one thread on CPU 0)
# against one server thread on CPU 1, in one run:
#   http-ceiling   the same HTTP server answering a fixed response without parsing
#   codec-alone    the same HTTP server with the gate and the gSOAP codec, nothing else
#   full/normal    commbrokerd: auth, gate, codec, registry, journal with sync=normal
#   full/full      the same with sync=full
# Prints requests per second, p50 and p99 latency, and the ratios the targets are set on.
# usage: bench/soap_bench.sh [SECONDS] (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
. bench/lib.sh
wrk_bench_init
hash=$(printf 'bench\n' | "$build/ctl/commbrokerctl" hash-password --iterations 10000)

load() {  # port -> RESULT line
  taskset -c 0 wrk -t1 -c50 -d"${seconds}s" --latency -s bench/post.lua "http://127.0.0.1:$1/ici" | grep '^RESULT'
}

declare -A result
for mode in fixed codec; do
  taskset -c 1 "$build/bench/soap_refserver" "$mode" > "$work/$mode.port" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/$mode.port" ] && break; sleep 0.05; done
  load "$(cat "$work/$mode.port")" > "$work/$mode.result"
  result[$mode]=$(cat "$work/$mode.result")
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done

for sync in normal full; do
  d="$work/$sync"; mkdir -p "$d"
  start_ici_broker "$d" "$sync"
  # The WAL's size, sampled every 100 ms while the load runs (the largest is printed), by one
  # process on wrk's core: a fork per sample on the server's core would cost it latency.
  taskset -c 0 /usr/bin/python3 -c '
import os, sys, time
while True:
    try:
        print(os.stat(sys.argv[1]).st_size, flush=True)
    except OSError:
        print(0, flush=True)
    time.sleep(0.1)' "$d/journal.db-wal" > "$d/wal" &
  sampler=$!
  load "$port" > "$d/result"
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  result[full-$sync]=$(cat "$d/result")
  commits=$("$build/ctl/commbrokerctl" --socket "$d/admin.sock" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["journal"]["commits"])')
  wal_mb=$(sort -n "$d/wal" | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
  result[full-$sync]="${result[full-$sync]} commits=$commits wal_mb=$wal_mb"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"${result[$1]}"; }
printf '\n%-14s %10s %9s %9s %9s %8s %8s %8s\n' path req/s p50_ms p99_ms max_ms errors commits wal_max_MB
for k in fixed codec full-normal full-full; do
  printf '%-14s %10s %9s %9s %9s %8s %8s %8s\n' "$k" "$(field "$k" rps)" "$(field "$k" p50_ms)" "$(field "$k" p99_ms)" \
    "$(field "$k" max_ms)" "$(( $(field "$k" errors) + $(field "$k" non2xx) ))" "$(field "$k" commits || true)" \
    "$(field "$k" wal_mb || true)"
done
ratio() { python3 -c "print(f'{$1/$2*100:.1f}%')"; }
echo
echo "full/normal vs codec-alone:  $(ratio "$(field full-normal rps)" "$(field codec rps)")   (target >= 70%)"
echo "full/full   vs codec-alone:  $(ratio "$(field full-full rps)" "$(field codec rps)")"
echo "codec-alone vs http-ceiling: $(ratio "$(field codec rps)" "$(field fixed rps)")"
echo "full/normal p99: $(field full-normal p99_ms) ms   (target < 5 ms)"
