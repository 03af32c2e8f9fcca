#!/usr/bin/env bash
# Two sluice binaries side by side on the WebSocket rows of bench/run.sh: the
# ping-pong round trips of 64 B and 16 KiB messages at 64 connections, each
# proxy pinned to CPU 0 with one worker, the echo origin and the load on CPU 1.
# Runs alternate between the binaries (A, B, A, B, ...) so drift on the
# machine hits both alike; each figure is the median of REPS runs. For a
# change to the tunnel path: build the old commit elsewhere, then
#   bench/ws_ab.sh OLD_SLUICE [NEW_SLUICE] [SECONDS] [REPS]   (defaults build/sluice, 5, 5)
#   SIZES="64" bench/ws_ab.sh ...                             (message sizes; default "64 16384")
# Prints the median and the range (min-max) of each figure over the runs.
# Not a pass/fail test: it reports figures.
set -euo pipefail
cd "$(dirname "$0")/.."
a_bin=$(realpath "${1:?the sluice binary to compare against}")
b_bin=$(realpath "${2:-build/sluice}")
secs="${3:-5}" reps="${4:-5}"
ulimit -n 20000

. bench/lib.sh
prepare "" sluice ws_echo_origin ws_pingpong
make_workdir

ws_origin=$(free_port)
taskset -c 1 ./build/bench/ws_echo_origin "$ws_origin" >/dev/null &
pids+=($!)
wait_port "$ws_origin"

cpu_per() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf (n > 0 ? "%.2f" : "-"), t / hz / n * 1e6}'; }

# One run of `size`-byte ping-pong through binary $1: "round_trips_per_s cpu_us_per_round_trip".
run_once() {
  local bin=$1 size=$2 port pid before after out
  port=$(free_port)
  cat > "$work/ab.yaml" <<YAML
listeners: [{name: public, address: 127.0.0.1, port: $port}]
clusters: [{name: ws, endpoints: ["127.0.0.1:$ws_origin"]}]
routes: [{name: ws, match: {path_prefix: /}, cluster: ws}]
access_log: {enabled: false}
YAML
  taskset -c 0 "$bin" run --config "$work/ab.yaml" --admin 127.0.0.1:0 --workers 1 --log-level error >/dev/null 2>&1 &
  pid=$!
  wait_port "$port"
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 ./build/bench/ws_pingpong "$port" 64 "$size" "$secs" /ws)
  after=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  set -- $out  # round_trips N per_second R p50_us A p99_us B errors E
  echo "$4 $(cpu_per $((after - before)) "$2")"
}

range() { sort -g | awk '{v[NR] = $1} END {printf "%s-%s", v[1], v[NR]}'; }
printf '%-8s %-6s %22s %26s\n' size binary "round trips/s (range)" "CPU µs/round trip (range)"
for size in ${SIZES:-64 16384}; do
  : > "$work/a" ; : > "$work/b"
  for _ in $(seq "$reps"); do
    run_once "$a_bin" "$size" >> "$work/a"
    run_once "$b_bin" "$size" >> "$work/b"
  done
  for side in a b; do
    bin=$a_bin; [ "$side" = b ] && bin=$b_bin
    printf '%-8s %-6s %8s (%13s) %8s (%15s)   %s\n' "$size" "$side" \
      "$(awk '{print $1}' "$work/$side" | median)" "$(awk '{print $1}' "$work/$side" | range)" \
      "$(awk '{print $2}' "$work/$side" | median)" "$(awk '{print $2}' "$work/$side" | range)" "$bin"
  done
done
