# What the benchmark scripts share (sourced, not run).

# wrk_bench_init: what the wrk benchmarks share: `build`, the work folder `work` (removed at
# exit, with every process whose PID is in `pids`), and BENCH_AUTH for bench/post.lua.
wrk_bench_init() {
  build=${COMMBROKER_BUILD_DIR:-build}
  command -v wrk >/dev/null || { echo "wrk is missing: run scripts/setup.sh" >&2; exit 1; }
  work=$(mktemp -d)
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
  export BENCH_AUTH=$(printf 'bench:bench' | base64)
}

# start_cmss DIR [OPTION...]: starts commbroker-cmss as CMS-A (the broker logs on as broker/bench, the CMS
# sends as cms-a/bench) on a free port, adds its PID to `pids`, and sets `cms_port`.
start_cmss() {
  local dir=$1
  shift
  "$build/sim/commbroker-cmss" --listen 127.0.0.1:0 --system CMS-A --user broker --password bench \
    --broker-user cms-a --broker-password bench "$@" > "$dir/cmss.out" 2>"$dir/cmss.log" &
  pids+=($!)
  for _ in $(seq 600); do grep -q listening "$dir/cmss.out" 2>/dev/null && break; sleep 0.05; done
  cms_port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$dir/cmss.out")
}

# start_ici_broker DIR SYNC [LISTEN_ATTRS [EXTRA_XML]]: writes DIR/c.xml (one I/O thread, the
# ici listener with LISTEN_ATTRS, journal sync SYNC and $JOURNAL_ATTRS, CMS-A's inbound account
# bench/bench with hash $hash, the agent alice the events name, EXTRA_XML), starts commbrokerd on CPU 1, adds its PID to `pids`,
# and sets `port`.
start_ici_broker() {
  local d=$1 sync=$2 listen_attrs=${3:-} extra=${4:-}
  cat > "$d/c.xml" <<XML
<commbroker>
  <node id="bench" threads="1"/>
  <listen service="ici" address="127.0.0.1" port="0" $listen_attrs/>
  <adminSocket path="$d/admin.sock"/>
  <journal path="$d/journal.db" sync="$sync" ${JOURNAL_ATTRS:-}/>
  <cms id="CMS-A" url="http://127.0.0.1:9/cms" inboundUser="bench" inboundPasswordHash="$hash"/>
  <agent id="alice" passwordHash="$hash" cms="CMS-A"/>
  <log level="warn"/>
  $extra
</commbroker>
XML
  taskset -c 1 "$build/daemon/commbrokerd" --config "$d/c.xml" 2> "$d/log" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$d/admin.sock" ] && break; sleep 0.05; done
  port=$("$build/ctl/commbrokerctl" --socket "$d/admin.sock" status --json | python3 -c 'import json,sys; print([l["port"] for l in json.load(sys.stdin)["listeners"] if l["service"]=="ici"][0])')
}
