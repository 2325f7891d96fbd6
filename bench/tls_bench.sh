#!/usr/bin/env bash
# TLS benchmark: what TLS costs on the ici port. One commbrokerd (one I/O thread, on CPU 1,
# journal sync=normal) in clear and once with a TLS listener (an ECDSA P-256 certificate made
# here by openssl), loaded by wrk on CPU 0:
#   plain / tls   phoneCallChanged over 50 keep-alive connections: requests per second, p50, p99
#   handshakes    new TLS connections per second (openssl s_time -new, one client, CPU 0), each
#                 a full handshake with nothing sent after it; the per-source handshake rate is
#                 lifted for this run (tlsHandshakesPerSource="0") to see what one core does
# usage: bench/tls_bench.sh [SECONDS] (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
. bench/lib.sh
wrk_bench_init
command -v openssl >/dev/null || { echo "openssl is missing: run scripts/setup.sh" >&2; exit 1; }
hash=$(printf 'bench\n' | "$build/ctl/commbrokerctl" hash-password --iterations 10000)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/tls.key" \
  -out "$work/tls.crt" -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null

declare -A result
for mode in plain tls; do
  d="$work/$mode"; mkdir -p "$d"
  attrs=""; scheme=http
  [ "$mode" = tls ] && attrs="tlsCertificate=\"$work/tls.crt\" tlsKey=\"$work/tls.key\"" && scheme=https
  start_ici_broker "$d" normal "$attrs" '<limits tlsHandshakesPerSource="0"/>'
  result[$mode]=$(taskset -c 0 wrk -t1 -c50 -d"${seconds}s" --latency -s bench/post.lua "$scheme://127.0.0.1:$port/ici" | grep '^RESULT')
  if [ "$mode" = tls ]; then
    ticks() { awk '{ print $14 + $15 }' "/proc/${pids[-1]}/stat"; }  # the broker's CPU, 1/100 s
    before=$(ticks)
    read -r made secs < <(taskset -c 0 openssl s_time -connect "127.0.0.1:$port" -new -time "$seconds" 2>/dev/null |
                          sed -n 's/^\([0-9]*\) connections in \([0-9]*\) real seconds.*/\1 \2/p' | head -1) || true
    used=$(( $(ticks) - before ))
    handshakes=$(awk -v n="${made:-0}" -v t="${secs:-1}" 'BEGIN { printf "%.0f", n / t }')
    per_handshake=$(awk -v u="$used" -v n="${made:-0}" 'BEGIN { if (n > 0) printf "%.2f", u * 10 / n; else print "?" }')
  fi
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"${result[$1]}"; }
printf '\n%-8s %10s %9s %9s %9s %8s\n' path req/s p50_ms p99_ms max_ms errors
for k in plain tls; do
  printf '%-8s %10s %9s %9s %9s %8s\n' "$k" "$(field "$k" rps)" "$(field "$k" p50_ms)" "$(field "$k" p99_ms)" \
    "$(field "$k" max_ms)" "$(( $(field "$k" errors) + $(field "$k" non2xx) ))"
done
echo
echo "tls vs plain:         $(python3 -c "print(f'{$(field tls rps)/$(field plain rps)*100:.1f}%')")"
echo "TLS handshakes/s:     ${handshakes:-?} (openssl s_time -new, one client on CPU 0)"
echo "broker CPU/handshake: ${per_handshake:-?} ms"
