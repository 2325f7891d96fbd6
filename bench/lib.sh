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
