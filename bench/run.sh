#!/usr/bin/env bash
# sluice next to nginx and HAProxy on the same machine, the same load and the
# same origins, in one run. Each proxy runs one worker pinned to CPU 0; the
# origins and the load tools share CPU 1. "direct" is the load tools against
# the origins with no proxy: the ceiling of the load core. Rows:
#   HTTP req/s and p50/p99 at 64 and 256 connections (wrk, small GET, keep-alive)
#   WebSocket ping-pong round trips/s and p99 at 64 connections, 64 B and 16 KiB
#     (bench/ws_pingpong.cpp)
#   the proxy's own CPU time per request and per round trip (utime+stime from
#     /proc/PID/stat over the run, divided by the count): fair even when the
#     load core is the limit
#   NDJSON stream: time to the first byte, median of 50 requests, and its
#     difference to direct
#   resident KiB per idle WebSocket over COUNT idle tunnels (bench/idle_tunnels.sh)
#   HTTP/2 (h2c by prior knowledge) to the HTTP/1.1 origin: req/s and CPU per
#     request with h2load, 16 connections of 16 streams each; nginx listens with
#     "http2", HAProxy with "proto h2", sluice on its one listener (no direct row:
#     the origin speaks HTTP/1.1)
#   HTTP/2 to an HTTP/2 origin (the same origin nginx over h2c): the same load on
#     /h2, which sluice sends to a protocol: http2 cluster, HAProxy to a server
#     with "proto h2" and nginx with grpc_pass (its only HTTP/2 upstream module)
# Each figure is the median of three runs, and the last column is sluice / nginx.
# The HTTP rows include sluice's watch for clients that leave mid-request
# (docs/llm.md): each client socket joins the worker's edge-triggered epoll set
# once, for hang-ups only, so a request whose client stays costs no system
# call and no event for it (bench/ab.sh before and after: no difference beyond
# noise; docs/performance.md has the figures and the system-call counts).
#   bench/run.sh [SECONDS] [IDLE_COUNT]     (defaults 5 and 5000)
#   bench/run.sh --smoke                    (1 s, one run, 200 idle tunnels: checks the harness works)
#   SLUICE_BIN=/path/to/old/sluice bench/run.sh ...   (another sluice binary in the sluice column,
#                                                     e.g. a commit before a change; default build/sluice)
# Not a pass/fail test: it reports figures.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=5 reps=3 idle=5000
if [ "${1:-}" = --smoke ]; then secs=1 reps=1 idle=200
else secs="${1:-5}" idle="${2:-5000}"; fi
ulimit -n 20000
sluice_bin=$(realpath -m "${SLUICE_BIN:-build/sluice}")

. bench/lib.sh
prepare "nginx haproxy wrk curl h2load" sluice ws_echo_origin ws_pingpong ws_idle_clients

make_workdir

# Origins, on CPU 1.
start_http_origin
start_ws_origin

# Each run prints "rate p50_ms p99_ms cpu_us_per_unit".
cpu_per() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf (n > 0 && t >= 0 ? "%.1f" : "-"), t / hz / n * 1e6}'; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else {sub(/s$/,"",v); v*=1000}; printf "%.2f\n", v}'; }

http_run() {  # connections
  local before after out n
  before=$(cpu_ticks "$PID")
  out=$(taskset -c 1 wrk -t1 -c"$1" -d"${secs}s" --latency "http://127.0.0.1:$PORT/")
  after=$(cpu_ticks "$PID")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')" \
       "$(echo "$out" | awk '$1 == "50%" {print $2}' | to_ms)" "$(echo "$out" | awk '$1 == "99%" {print $2}' | to_ms)" \
       "$([ -n "$PID" ] && cpu_per $((after - before)) "$n" || echo -)"
}

ws_run() {  # message size
  local before after out
  before=$(cpu_ticks "$PID")
  out=$(taskset -c 1 ./build/bench/ws_pingpong "$WSPORT" 64 "$1" "$secs" /ws)
  after=$(cpu_ticks "$PID")
  set -- $out  # round_trips N per_second R p50_us A p99_us B errors E
  echo "$4" "$(awk -v u="$6" 'BEGIN {printf "%.2f", u / 1000}')" "$(awk -v u="$8" 'BEGIN {printf "%.2f", u / 1000}')" \
       "$([ -n "$PID" ] && cpu_per $((after - before)) "$2" || echo -)"
}

h2_run() {  # [path]: h2load, 16 connections of 16 concurrent streams each
  [ -z "$H2PORT" ] && { echo "- - - -"; return; }
  local before after out n
  before=$(cpu_ticks "$PID")
  out=$(taskset -c 1 h2load -c16 -m16 -D"$secs" "http://127.0.0.1:$H2PORT${1:-/}" 2>&1)
  after=$(cpu_ticks "$PID")
  # Only 2xx answers count: a proxy that fails requests fast must not look fast.
  n=$(echo "$out" | awk '/^status codes:/ {print $3}')
  echo "$(echo "$out" | awk -v ok="$n" '/^requests:/ {total = $2} /^finished in/ {rate = $4}
                             END {printf "%.0f", (total > 0 ? rate * ok / total : 0)}')" - - \
       "$([ -n "$PID" ] && cpu_per $((after - before)) "$n" || echo -)"
}

stream_run() {  # time to the first body byte of an NDJSON stream, median of 50, in ms
  local i
  for i in $(seq 50); do
    taskset -c 1 curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$WSPORT/stream"
  done | awk '{print $1 * 1000}' | median | awk '{printf "%.3f 0 0 -\n", $1}'
}

# Runs `reps` times and prints the median of each column.
measure() {
  local results col out=""
  results=$(for _ in $(seq "$reps"); do "$@"; done)
  for col in 1 2 3 4; do out+="$(echo "$results" | awk -v c=$col '{print $c}' | grep -v '^-$' | median) "; done
  echo "$out"
}

targets=(direct sluice nginx haproxy)
declare -A R
for t in "${targets[@]}"; do
  start_target "$t"
  taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$PORT/" >/dev/null  # warm the pools
  R[$t,http64]=$(measure http_run 64)
  R[$t,http256]=$(measure http_run 256)
  R[$t,ws64]=$(measure ws_run 64)
  R[$t,ws16k]=$(measure ws_run 16384)
  R[$t,stream]=$(measure stream_run)
  R[$t,h2]=$(measure h2_run)
  R[$t,h2h2]=$(measure h2_run /h2)
  if [ -n "$KILL" ]; then kill "$KILL"; wait "$KILL" 2>/dev/null || true; fi
done

# Idle WebSockets: bench/idle_tunnels.sh prints "proxy clients ... KiB/tunnel" lines.
idle_out=$(SLUICE_BIN="$sluice_bin" bench/idle_tunnels.sh "$idle" 2>/dev/null || true)
for t in sluice nginx haproxy; do
  R[$t,idle]=$(echo "$idle_out" | awk -v p="$t" '$1 == p && $2 == "open" {print $NF}')
done
R[direct,idle]="-"

field() { echo "${R[$1,$2]}" | awk -v c="$3" '{print $c}'; }
row() {  # label, key, column, "up" (higher is better) or "down"
  local label=$1 key=$2 col=$3 s n
  s=$(field sluice "$key" "$col") n=$(field nginx "$key" "$col")
  printf '%-40s %10s %10s %10s %10s %9s\n' "$label" "$(field direct "$key" "$col")" "$s" "$n" \
    "$(field haproxy "$key" "$col")" "$(awk -v s="$s" -v n="$n" 'BEGIN {if (s+0 > 0 && n+0 > 0) printf "%.2fx", s / n; else print "-"}')"
}

echo
echo "sluice $(git describe --always --dirty 2>/dev/null || echo '?') on $(nproc) CPUs, $(date -u +%Y-%m-%d):" \
  "one proxy worker on CPU 0; origins and load on CPU 1; ${secs}s runs, median of $reps"
printf '%-40s %10s %10s %10s %10s %9s\n' "" direct sluice nginx haproxy "s/nginx"
row "HTTP req/s, 64 connections" http64 1
row "  p50 ms" http64 2
row "  p99 ms" http64 3
row "  proxy CPU us per request" http64 4
row "HTTP req/s, 256 connections" http256 1
row "  p50 ms" http256 2
row "  p99 ms" http256 3
row "  proxy CPU us per request" http256 4
row "WebSocket 64 B round trips/s, 64 conns" ws64 1
row "  p99 ms" ws64 3
row "  proxy CPU us per round trip" ws64 4
row "WebSocket 16 KiB round trips/s, 64 conns" ws16k 1
row "  p99 ms" ws16k 3
row "  proxy CPU us per round trip" ws16k 4
row "NDJSON stream, first byte ms (median)" stream 1
d=$(field direct stream 1)
printf '%-40s %10s %10s %10s %10s\n' "  first byte minus direct, ms" 0 \
  "$(awk -v a="$(field sluice stream 1)" -v d="$d" 'BEGIN {printf "%.3f", a - d}')" \
  "$(awk -v a="$(field nginx stream 1)" -v d="$d" 'BEGIN {printf "%.3f", a - d}')" \
  "$(awk -v a="$(field haproxy stream 1)" -v d="$d" 'BEGIN {printf "%.3f", a - d}')"
row "KiB per idle WebSocket ($idle idle)" idle 1
row "HTTP/2 req/s, 16 conns x 16 streams" h2 1
row "  proxy CPU us per request" h2 4
row "HTTP/2 to an HTTP/2 origin, req/s" h2h2 1
row "  proxy CPU us per request" h2h2 4
echo "(s/nginx = sluice / nginx: above 1 is better for rates, below 1 for latency, CPU and memory)"
