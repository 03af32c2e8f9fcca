#!/usr/bin/env bash
# System calls per unit of work, and the user/kernel split, for sluice, nginx
# and HAProxy under the same load as bench/run.sh (one worker on CPU 0, the
# origins and the load on CPU 1): per request at 64 keep-alive connections
# (wrk), per 64 B WebSocket round trip (bench/ws_pingpong, 64 connections), and
# per HTTPS keep-alive request (wrk, 64 connections, the same ECDSA certificate
# for all three) and per 64 B wss:// round trip on that listener. Counted with `perf stat -e 'syscalls:sys_enter_*'` on the
# worker over the run; one run per row (the counts move little between runs).
#   bench/syscalls.sh [SECONDS]     (default 4)
#   SLUICE_BIN=/path/to/sluice bench/syscalls.sh ...
# Not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-4}"
ulimit -n 20000
sluice_bin=$(realpath -m "${SLUICE_BIN:-build/sluice}")
command -v perf >/dev/null || { echo "bench/syscalls.sh needs perf (Debian: apt-get install linux-perf)" >&2; exit 1; }

. bench/lib.sh
prepare "nginx haproxy wrk" sluice ws_echo_origin ws_pingpong
make_workdir
make_certs
start_http_origin
start_ws_origin

# The HTTPS listeners: the same certificate, the same origin.
start_https() {  # name -> sets PORT, PID, KILL
  local name=$1
  PORT=$(free_port)
  case "$name" in
    sluice)
      cat > "$work/sluice-tls.yaml" <<YAML
listeners: [{name: public, address: 127.0.0.1, port: $PORT, tls: {cert: $work/ecdsa.crt, key: $work/ecdsa.key}}]
clusters: [{name: o, endpoints: ["127.0.0.1:$http_origin"]}, {name: ws, endpoints: ["127.0.0.1:$ws_origin"]}]
routes: [{name: ws, match: {path_prefix: /ws}, cluster: ws}, {name: all, match: {path_prefix: /}, cluster: o}]
access_log: {enabled: false}
YAML
      taskset -c 0 "$sluice_bin" run --config "$work/sluice-tls.yaml" --admin 127.0.0.1:0 --workers 1 \
        --log-level error >/dev/null 2>&1 &
      KILL=$! PID=$! ;;
    nginx)
      sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$PORT#g" -e "s#@ORIGIN_PORT@#$http_origin#g" -e "s#@WS_ORIGIN_PORT@#$ws_origin#g" \
        -e "s#@CERT@#$work/ecdsa.crt#g" -e "s#@KEY@#$work/ecdsa.key#g" bench/nginx-https.conf.in > "$work/nginx-tls.conf"
      taskset -c 0 nginx -p "$work" -c "$work/nginx-tls.conf" >/dev/null 2>&1 &
      KILL=$! ;;
    haproxy)
      cat > "$work/haproxy-tls.cfg" <<CFG
global
    maxconn 9000
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
    http-reuse always
frontend fe
    bind 127.0.0.1:$PORT ssl crt $work/ecdsa.pem
    use_backend ws if { path_beg /ws }
    default_backend be
backend be
    server origin 127.0.0.1:$http_origin
backend ws
    server origin 127.0.0.1:$ws_origin
CFG
      taskset -c 0 haproxy -f "$work/haproxy-tls.cfg" -db >/dev/null 2>&1 &
      KILL=$! PID=$! ;;
  esac
  await_target "$name"
}

# Runs the load under perf on $PID; prints "units user% syscalls-per-unit top-calls".
count() {  # kind (http|ws|https|wss)
  local kind=$1 out units before_u before_s after_u after_s
  read -r before_u before_s < <(awk '{print $14, $15}' /proc/"$PID"/stat)
  perf stat -x, -e 'syscalls:sys_enter_*' -p "$PID" -o "$work/perf.out" -- sleep "$((secs + 1))" &
  local perf_pid=$!
  sleep 0.5
  case "$kind" in
    http) out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$PORT/")
          units=$(echo "$out" | awk '/requests in/ {print $1}') ;;
    https) out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "https://127.0.0.1:$PORT/")
           units=$(echo "$out" | awk '/requests in/ {print $1}') ;;
    ws) out=$(taskset -c 1 ./build/bench/ws_pingpong "$WSPORT" 64 64 "$secs" /ws)
        units=$(echo "$out" | awk '{print $2}') ;;
    wss) out=$(taskset -c 1 ./build/bench/ws_pingpong "$PORT" 64 64 "$secs" /ws tls)
         units=$(echo "$out" | awk '{print $2}') ;;
  esac
  wait "$perf_pid" || true
  read -r after_u after_s < <(awk '{print $14, $15}' /proc/"$PID"/stat)
  awk -F, -v n="$units" -v u=$((after_u - before_u)) -v s=$((after_s - before_s)) '
    $3 ~ /^syscalls:sys_enter_/ && $1 + 0 > 0 {
      name = $3; sub(/^syscalls:sys_enter_/, "", name); c[name] = $1; total += $1 }
    END {
      line = ""
      # the calls that matter, largest first
      for (k in c) if (c[k] / n >= 0.01) order[k] = c[k]
      while (length(order) > 0) {
        best = ""; for (k in order) if (best == "" || order[k] > order[best]) best = k
        line = line sprintf(" %s %.2f", best, c[best] / n); delete order[best]
      }
      printf "%10d %5.0f%% %7.2f %s\n", n, (u + s > 0 ? 100 * u / (u + s) : 0), total / n, line
    }' "$work/perf.out"
}

printf '%-8s %-6s %10s %6s %7s %s\n' proxy load units "user" "calls" "per unit, by call"
for name in sluice nginx haproxy; do
  start_target "$name"
  for kind in http ws; do
    printf '%-8s %-6s %s\n' "$name" "$kind" "$(count "$kind")"
  done
  kill "$KILL"; wait "$KILL" 2>/dev/null || true
  start_https "$name"
  for kind in https wss; do
    printf '%-8s %-6s %s\n' "$name" "$kind" "$(count "$kind")"
  done
  kill "$KILL"; wait "$KILL" 2>/dev/null || true
done
echo "(units: requests or round trips in the run; user: the worker's user-space share of its CPU time;"
echo " calls: system calls per unit, all kinds; then the calls above 0.01 per unit)"
