#!/usr/bin/env bash
# Two sluice binaries side by side on the HTTP and WebSocket rows of
# bench/run.sh: wrk's small keep-alive GETs at 64 and 256 connections, and the
# ping-pong round trips of 64 B and 16 KiB messages at 64 connections. Each
# proxy is pinned to CPU 0 with one worker, the origins and the load to CPU 1.
# Runs alternate between the binaries (A, B, A, B, ...) so drift on a shared
# machine hits both alike, which separate runs of bench/run.sh cannot promise;
# each figure is the median of REPS runs. For a change: build the old commit
# elsewhere, then
#   bench/ab.sh OLD_SLUICE [NEW_SLUICE] [SECONDS] [REPS]   (defaults build/sluice, 5, 5)
#   ROWS="ws64 ws16384" bench/ab.sh ...                    (rows; default "http64 http256 ws64 ws16384";
#                                                           also https64, https256: keep-alive HTTPS, ECDSA P-256;
#                                                           wss64, wss16384: the round trips over wss://;
#                                                           bulk1, bulk8: one-way bulk through 1 or 8 tunnels,
#                                                           in MiB per second and CPU µs per MiB;
#                                                           h2, h2h2: h2load -c16 -m16 over h2c to the HTTP/1.1
#                                                           origin, and to the same origin over h2c;
#                                                           stream: the NDJSON stream's first byte as bench/run.sh
#                                                           takes it, minus direct's taken just before, in ms in
#                                                           the first column)
# Which binary goes first alternates from run to run too: whatever the second
# of two back-to-back runs pays (a warmer or a busier machine) falls on both.
# Prints the median and the range (min-max) of each figure over the runs.
# Not a pass/fail test: it reports figures.
set -euo pipefail
cd "$(dirname "$0")/.."
a_bin=$(realpath "${1:?the sluice binary to compare against}")
b_bin=$(realpath "${2:-build/sluice}")
secs="${3:-5}" reps="${4:-5}"
ulimit -n 20000

. bench/lib.sh
prepare "nginx wrk h2load" sluice ws_echo_origin ws_pingpong
make_workdir
make_certs

start_http_origin

start_ws_origin

bulk_origin=$(free_port)
taskset -c 1 python3 bench/ws_bulk.py origin "$bulk_origin" &
pids+=($!)
wait_port "$bulk_origin"

cpu_per() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf (n > 0 ? "%.2f" : "-"), t / hz / n * 1e6}'; }

# One run of row $2 through binary $1: "per_second cpu_us_each" (requests or round trips).
run_once() {
  local bin=$1 row=$2 port pid before after out n
  port=$(free_port)
  local tls="" scheme=http
  if [[ $row == https* || $row == wss* ]]; then tls=", tls: {cert: $work/ecdsa.crt, key: $work/ecdsa.key}" scheme=https; fi
  cat > "$work/ab.yaml" <<YAML
listeners: [{name: public, address: 127.0.0.1, port: $port$tls}]
clusters:
  - {name: http, endpoints: ["127.0.0.1:$http_origin"]}
  - {name: ws, endpoints: ["127.0.0.1:$ws_origin"]}
  - {name: bulk, endpoints: ["127.0.0.1:$bulk_origin"]}
  - {name: h2, endpoints: ["127.0.0.1:$h2_origin"], protocol: http2}
routes:
  - {name: stream, match: {path: /stream}, cluster: ws}
  - {name: h2, match: {path_prefix: /h2}, cluster: h2}
  - {name: bulk, match: {path_prefix: /bulk}, cluster: bulk}
  - {name: ws, match: {path_prefix: /ws}, cluster: ws}
  - {name: http, match: {path_prefix: /}, cluster: http}
access_log: {enabled: false}
YAML
  taskset -c 0 "$bin" run --config "$work/ab.yaml" --admin 127.0.0.1:0 --workers 1 --log-level error >/dev/null 2>&1 &
  pid=$!
  wait_port "$port"
  case "$row" in
    http*)
      taskset -c 1 wrk -t1 -c64 -d1s "$scheme://127.0.0.1:$port/" >/dev/null  # warm the pools
      before=$(cpu_ticks "$pid")
      out=$(taskset -c 1 wrk -t1 -c"${row#"$scheme"}" -d"${secs}s" "$scheme://127.0.0.1:$port/")
      after=$(cpu_ticks "$pid")
      n=$(echo "$out" | awk '/requests in/ {print $1}')
      echo "$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}') $(cpu_per $((after - before)) "$n")" ;;
    ws*)
      local size=${row#ws} client_tls=""
      if [[ $row == wss* ]]; then size=${row#wss} client_tls=tls; fi
      before=$(cpu_ticks "$pid")
      out=$(taskset -c 1 ./build/bench/ws_pingpong "$port" 64 "$size" "$secs" /ws $client_tls)
      after=$(cpu_ticks "$pid")
      set -- $out  # round_trips N per_second R p50_us A p99_us B errors E
      echo "$4 $(cpu_per $((after - before)) "$2")" ;;
    h2*)
      local path=/
      [ "$row" = h2h2 ] && path=/h2
      taskset -c 1 h2load -c16 -m16 -D1 "http://127.0.0.1:$port$path" >/dev/null 2>&1  # warm the pools
      before=$(cpu_ticks "$pid")
      out=$(taskset -c 1 h2load -c16 -m16 -D"$secs" "http://127.0.0.1:$port$path" 2>&1)
      after=$(cpu_ticks "$pid")
      n=$(echo "$out" | awk '/^status codes:/ {print $3}')  # 2xx only
      echo "$(echo "$out" | awk '/^finished in/ {printf "%.0f", $4}') $(cpu_per $((after - before)) "$n")" ;;
    bulk*)
      before=$(cpu_ticks "$pid")
      out=$(taskset -c 1 python3 bench/ws_bulk.py client "$port" "${row#bulk}" "$secs")
      after=$(cpu_ticks "$pid")
      set -- $out  # bytes N mib_per_second R
      echo "$4 $(cpu_per $((after - before)) "$(($2 >> 20))")" ;;
    stream)
      local direct through
      direct=$(first_byte_ms "$ws_origin")
      through=$(first_byte_ms "$port")
      echo "$(awk -v t="$through" -v d="$direct" 'BEGIN {printf "%.3f", t - d}') -" ;;
    *) echo "unknown row $row (http64, http256, https64, ws64, ws16384, wss64, ...)" >&2; exit 2 ;;
  esac
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# The median of 50 first-byte times of the NDJSON stream at port $1, in ms.
first_byte_ms() {
  local i
  for i in $(seq 50); do
    taskset -c 1 curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$1/stream"
  done | awk '{print $1 * 1000}' | median
}

range() { sort -g | awk '{v[NR] = $1} END {printf "%s-%s", v[1], v[NR]}'; }
printf '%-8s %-6s %22s %26s\n' row binary "per second (range)" "CPU µs each (range)"
for row in ${ROWS:-http64 http256 ws64 ws16384}; do
  : > "$work/a" ; : > "$work/b"
  for i in $(seq "$reps"); do
    if (( i % 2 )); then
      run_once "$a_bin" "$row" >> "$work/a"
      run_once "$b_bin" "$row" >> "$work/b"
    else
      run_once "$b_bin" "$row" >> "$work/b"
      run_once "$a_bin" "$row" >> "$work/a"
    fi
  done
  for side in a b; do
    bin=$a_bin; [ "$side" = b ] && bin=$b_bin
    printf '%-8s %-6s %8s (%13s) %8s (%15s)   %s\n' "$row" "$side" \
      "$(awk '{print $1}' "$work/$side" | median)" "$(awk '{print $1}' "$work/$side" | range)" \
      "$(awk '{print $2}' "$work/$side" | median)" "$(awk '{print $2}' "$work/$side" | range)" "$bin"
  done
done
