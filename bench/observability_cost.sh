#!/usr/bin/env bash
# What observability costs on the request path: HTTP req/s and sluice's own CPU
# time per request (utime+stime from /proc over the run, divided by the
# requests wrk made) with the access log off, to a file, and to standard output
# (redirected to /dev/null). Metrics are always on. sluice runs one worker
# pinned to CPU 0; wrk and the origin (nginx answering a small body) share CPU 1.
# Each figure is the median of three runs. Then the counter and access log
# micro-benchmarks (bench/counter_bench.cpp).
#   bench/observability_cost.sh [SECONDS]
# Not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
. bench/lib.sh
prepare "nginx wrk" sluice counter_bench

make_workdir
start_http_origin
origin_port=$http_origin

once() {  # access_log yaml -> "req/s p99 cpu_us_per_req"
  local log=$1 port pid before after out reqs
  port=$(free_port)
  cat > "$work/sluice.yaml" <<YAML
listeners: [{name: public, address: 127.0.0.1, port: $port}]
clusters: [{name: o, endpoints: ["127.0.0.1:$origin_port"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: o}]
access_log: $log
YAML
  taskset -c 0 ./build/sluice run --config "$work/sluice.yaml" --admin 127.0.0.1:0 --workers 1 --log-level warn >/dev/null &
  pid=$!
  sleep 0.5
  taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null  # warm the pools
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/")
  after=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')" \
       "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
       "$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz / n * 1e6}')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run() {  # name, access_log yaml: the median of three runs, column by column
  local name=$1 log=$2 results
  results=$(for _ in 1 2 3; do once "$log"; done)
  printf '%-28s %10s %10s %14s\n' "$name" "$(echo "$results" | awk '{print $1}' | median)" \
    "$(echo "$results" | awk '{print $2}' | sed 's/ms$//' | median)ms" "$(echo "$results" | awk '{print $3}' | median)"
}

printf '%-28s %10s %10s %14s\n' "sluice, 1 worker, 64 conns" "req/s" "p99" "CPU us/req"
run "access log off" "{enabled: false}"
run "access log to a file" "{path: $work/access.log}"
run "access log to stdout" "{path: /dev/stdout}"
echo "access log lines written to the file: $(wc -l < "$work/access.log")"
echo
./build/bench/counter_bench --benchmark_min_time=0.2 2>/dev/null | grep -E '^(Benchmark|Prom|Atomic|PerWorker|-)'
