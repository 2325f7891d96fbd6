#!/usr/bin/env bash
# Runs every libFuzzer target of ./build-asan (or $COMMBROKER_ASAN_DIR; built by
# scripts/sanitize.sh) for SECONDS each (default 30), on a copy of its seed corpus in
# fuzz/corpus/TARGET, so that nothing is written into the tree. New inputs, crash reproducers and
# logs go to $COMMBROKER_FUZZ_WORK (default: a new directory under /tmp). Exits non-zero if any
# target found a crash, a leak, a timeout or ran out of memory, and prints where the reproducer is.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
build=${COMMBROKER_ASAN_DIR:-build-asan}
work=${COMMBROKER_FUZZ_WORK:-$(mktemp -d /tmp/commbroker-fuzz.XXXXXX)}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for d in fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi

dict_of() {
    case "$1" in
        fuzz_ici_server | fuzz_cms_reply | fuzz_cms_request) echo fuzz/dict/soap.dict ;;
        fuzz_desktop_json) echo fuzz/dict/desktop_json.dict ;;
        fuzz_config) echo fuzz/dict/config.dict ;;
        fuzz_http_server) echo fuzz/dict/http.dict ;;
    esac
}

# libFuzzer's own flags decide about leaks (-detect_leaks) and the exit code; the sanitizers only
# need to stop at the first report.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

failed=()
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, work directory $work"
for t in "${targets[@]}"; do
    bin=$build/fuzz/$t
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is missing (build it with scripts/sanitize.sh)" >&2
        exit 2
    fi
    mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
    cp -r fuzz/corpus/"$t"/. "$work/$t/corpus/"
    dict=$(dict_of "$t")
    rc=0
    "$bin" "$work/$t/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
        ${dict:+-dict="$dict"} >"$work/$t/log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$work/$t/log" | tail -1 || true)
    corpus=$(find "$work/$t/corpus" -type f | wc -l)
    if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$work/$t/artifacts")" ]; then
        failed+=("$t")
        echo "fuzz: $t FAILED (exit $rc) after ${runs:-?} runs; its log ends:"
        tail -n 40 "$work/$t/log" | sed 's/^/    /'
        for a in "$work/$t/artifacts"/*; do
            [ -e "$a" ] && echo "fuzz: reproducer $a  (rerun: $bin $a)"
        done
    else
        echo "fuzz: $t ok: ${runs:-?} runs, ${cov:-no coverage figures}, corpus $corpus inputs"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]} (logs and reproducers in $work)" >&2
    exit 1
fi
