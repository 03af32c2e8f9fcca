#!/usr/bin/env bash
# The "slow GPU" benchmark: an LLM server that runs 4 generations at a time
# (bench/slow_gpu.py origin: the head at once, 0.2 s of thinking, 40 tokens at
# 100 tokens/s, SSE, its own queue for the rest), 200 clients over
# one second of which every third leaves at a random moment in its first 3 s
# (queued, waiting or streaming). Behind each proxy, in turn:
#   direct          the clients on the server itself
#   sluice          max_requests_per_endpoint: 4 with a queue (size 1000, timeout 60s)
#   nginx           as most configs have it: proxy_pass, HTTP/1.1 upstream
#   nginx-stream    with the settings its docs give for streaming (proxy_buffering off,
#                   keep-alive upstream, long read timeout)
#   haproxy         server maxconn 4: HAProxy's own queue (timeout queue 60s)
#   haproxy-abort   the same with option abortonclose (drops queued requests whose client left)
# Twice: with a server that sees a closed connection at once (as Ollama does)
# and with one that finds out only when a write fails (as many small servers).
# Reports, per proxy: tokens the server generated, tokens clients received,
# the difference (generated for nobody), generations started and skipped,
# requests completed / left / failed, time to first token p50/p90/p99 of the
# clients that stayed (queue wait included), and the server's peak parallelism.
#   bench/slow_gpu.sh [CLIENTS] [SEED]     (defaults 200 and 1)
#   TARGETS="sluice haproxy" bench/slow_gpu.sh ...   (some of the rows only)
# Not a pass/fail test: it reports figures.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-200} seed=${2:-1}
ulimit -n 20000
sluice_bin=$(realpath -m "${SLUICE_BIN:-build/sluice}")
. bench/lib.sh
prepare "nginx haproxy" sluice
make_workdir

run_one() {  # name detect
  local name=$1 detect=$2 origin port stats
  origin=$(free_port) port=$(free_port) stats="$work/$name.stats"
  taskset -c 1 python3 bench/slow_gpu.py origin "$origin" "$stats" "$detect" &
  local origin_pid=$!
  wait_port "$origin"
  local kill_pid=""
  case "$name" in
    direct) port=$origin ;;
    sluice)
      cat > "$work/sluice.yaml" <<YAML
listeners: [{name: public, address: 127.0.0.1, port: $port}]
clusters:
  - {name: gpu, endpoints: ["127.0.0.1:$origin"], max_requests_per_endpoint: 4, queue: {size: 1000, timeout: 60s}}
routes: [{name: gen, match: {path_prefix: /}, cluster: gpu, timeouts: {upstream_response: 10m}}]
access_log: {enabled: false}
YAML
      admin=$(free_port)
      taskset -c 0 "$sluice_bin" run --config "$work/sluice.yaml" --admin "127.0.0.1:$admin" --workers 1 --log-level error \
        >/dev/null 2>&1 &
      kill_pid=$! ;;
    nginx|nginx-stream)
      local extra=""
      [ "$name" = nginx-stream ] && extra="proxy_buffering off; proxy_read_timeout 10m; proxy_set_header Connection \"\";"
      local keep=""; [ "$name" = nginx-stream ] && keep="keepalive 64;"
      cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log error;
events { worker_connections 4000; }
http {
  access_log off;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  upstream gpu { server 127.0.0.1:$origin; $keep }
  server {
    listen 127.0.0.1:$port;
    location / { proxy_pass http://gpu; proxy_http_version 1.1; $extra }
  }
}
CONF
      taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" >/dev/null 2>&1 &
      kill_pid=$! ;;
    haproxy|haproxy-abort)
      local abort=""; [ "$name" = haproxy-abort ] && abort="option abortonclose"
      cat > "$work/haproxy.cfg" <<CFG
global
    maxconn 4000
    nbthread 1
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 10m
    timeout server 10m
    timeout queue 60s
    $abort
frontend fe
    bind 127.0.0.1:$port
    default_backend gpu
backend gpu
    option http-no-delay
    server origin 127.0.0.1:$origin maxconn 4
CFG
      taskset -c 0 haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 &
      kill_pid=$! ;;
  esac
  wait_port "$port"
  sleep 0.3
  local result
  result=$(taskset -c 1 python3 bench/slow_gpu.py load "$port" "$clients" "$seed")
  sleep 0.5  # generations for clients that just left end now, or never
  if [ "$name" = sluice ]; then  # the queue wait percentiles, from sluice_queue_wait_seconds
    curl -s "http://127.0.0.1:$admin/metrics" | python3 -c '
import re, sys
buckets = sorted((float("inf") if le == "+Inf" else float(le), float(v)) for le, v in
                 re.findall(r"sluice_queue_wait_seconds_bucket\{cluster=\"gpu\",le=\"([^\"]+)\"\} (\S+)", sys.stdin.read()))
total = buckets[-1][1]
def q(p):  # linear within the bucket holding the p-quantile, as PromQL histogram_quantile estimates it
    lo, below = 0.0, 0.0
    for le, c in buckets:
        if c >= p * total:
            return lo if le == float("inf") else lo + (le - lo) * (p * total - below) / max(c - below, 1)
        lo, below = le, c
print(f"  (sluice queue wait, histogram_quantile of sluice_queue_wait_seconds: p50 {q(0.5):.1f} s, "
      f"p90 {q(0.9):.1f} s, p99 {q(0.99):.1f} s, over {int(total)} admitted)")
' > "$work/queue_wait"
  fi
  kill "$origin_pid"; wait "$origin_pid" 2>/dev/null || true
  if [ -n "$kill_pid" ]; then kill "$kill_pid"; wait "$kill_pid" 2>/dev/null || true; fi
  python3 - "$name" "$stats" "$result" <<'PY'
import json, sys
name, stats, result = sys.argv[1], json.load(open(sys.argv[2])), json.loads(sys.argv[3])
waste = stats["generated"] - result["received"]
print(f'{name:<14} {stats["generated"]:>9} {result["received"]:>9} {waste:>8} {100 * waste / max(1, stats["generated"]):>6.1f}% '
      f'{stats["generations"]:>6} {stats["skipped_gone"]:>7} {result["completed"]:>5}/{result["left"]:>3}/{result["errors"]:<3} '
      f'{result["ttft_p50"]!s:>6} {result["ttft_p90"]!s:>6} {result["ttft_p99"]!s:>6} {stats["max_parallel"]:>4} {result["seconds"]:>6}')
PY
  [ "$name" = sluice ] && cat "$work/queue_wait"
  return 0
}

echo "sluice $(git describe --always --dirty 2>/dev/null || echo '?') on $(nproc) CPUs, $(date -u +%Y-%m-%d): $clients clients, every third leaves early (seed $seed)"
for detect in eof write; do
  echo
  [ $detect = eof ] && echo "A server that sees a closed connection at once:" || echo "A server that finds out when a write fails:"
  printf '%-14s %9s %9s %8s %7s %6s %7s %13s %6s %6s %6s %4s %6s\n' "" generated received "for nobody" "" \
    started skipped "done/left/err" "ttft50" "ttft90" "ttft99" "peak" "secs"
  for t in ${TARGETS:-direct sluice nginx nginx-stream haproxy haproxy-abort}; do run_one "$t" $detect; done
done
echo "(generated: tokens the server produced; received: tokens clients read; for nobody: the difference;"
echo " started/skipped: generations the server began / dropped from its own queue because the client was gone;"
echo " ttft: seconds to the first token for clients that stayed, queue wait included; peak: most generations at once)"
