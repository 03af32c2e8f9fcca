#!/usr/bin/env bash
# HTTPS side by side with nginx, with the same certificate: keep-alive HTTPS
# req/s, p99 and the proxy's CPU time per request; and the TLS handshake rate
# (wrk with "Connection: close": one new TCP connection and one full TLS
# handshake per request) with the proxy's CPU time per handshake, for an
# ECDSA P-256 and an RSA 2048 certificate. CPU time is utime+stime of the proxy
# process from /proc over the run, divided by the count; it compares proxies
# fairly even when the load core is the limit. Each proxy runs one worker
# pinned to CPU 0; wrk and the origin (nginx answering a small body over plain
# HTTP) share CPU 1. Each figure is the median of three runs.
#   bench/tls.sh [SECONDS]
# Not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
. bench/lib.sh
prepare "nginx wrk" sluice

make_workdir

make_certs  # $work/ecdsa.{crt,key} and $work/rsa.{crt,key} for "localhost"

start_http_origin
origin_port=$http_origin

start_proxy() {  # proxy, cert name, port -> pid
  local proxy=$1 cert=$2 port=$3
  if [ "$proxy" = sluice ]; then
    cat > "$work/sluice.yaml" <<YAML
listeners: [{name: public, address: 127.0.0.1, port: $port, tls: {cert: $work/$cert.crt, key: $work/$cert.key}}]
clusters: [{name: o, endpoints: ["127.0.0.1:$origin_port"]}]
routes: [{name: all, match: {path_prefix: /}, cluster: o}]
access_log: {enabled: false}
YAML
    taskset -c 0 ./build/sluice run --config "$work/sluice.yaml" --admin 127.0.0.1:0 --workers 1 --log-level error \
      >/dev/null &
  else
    sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$port#g" -e "s#@ORIGIN_PORT@#$origin_port#g" -e "s#@WS_ORIGIN_PORT@#$origin_port#g" \
      -e "s#@CERT@#$work/$cert.crt#g" -e "s#@KEY@#$work/$cert.key#g" bench/nginx-https.conf.in > "$work/nginx.conf"
    taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" >/dev/null 2>&1 &
  fi
  echo $!
}

# nginx's master forks the worker that does the work: measure that one.
worker_of() { local kids; kids=$(pgrep -P "$1" || true); echo "${kids:-$1}" | head -1; }

once() {  # proxy, cert, mode (keepalive|handshake) -> "rate p99 cpu_us"
  local proxy=$1 cert=$2 mode=$3 port pid busy before after out count args
  port=$(free_port)
  pid=$(start_proxy "$proxy" "$cert" "$port")
  wait_port "$port"
  sleep 0.2
  busy=$(worker_of "$pid")
  args=(-t1 -c64)
  [ "$mode" = handshake ] && args=(-t1 -c16 -H "Connection: close")
  taskset -c 1 wrk "${args[@]}" -d1s "https://127.0.0.1:$port/" >/dev/null  # warm up
  before=$(cpu_ticks "$busy")
  out=$(taskset -c 1 wrk "${args[@]}" -d"${secs}s" --latency "https://127.0.0.1:$port/")
  after=$(cpu_ticks "$busy")
  count=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')" \
       "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
       "$(awk -v t=$((after - before)) -v n="$count" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000} else {sub(/s$/,"",v); print v*1e6}}'; }

measure() {  # proxy cert mode -> "rate p99_us cpu_us" (medians of three)
  local results
  results=$(for _ in 1 2 3; do once "$@"; done)
  echo "$(echo "$results" | awk '{print $1}' | median)" \
       "$(echo "$results" | awk '{print $2}' | to_us | median)" \
       "$(echo "$results" | awk '{print $3}' | median)"
}

row() {  # label, sluice value, nginx value, "higher" or "lower" is better
  awk -v l="$1" -v s="$2" -v n="$3" 'BEGIN {printf "%-44s %12s %12s %8.2fx\n", l, s, n, (n > 0 ? s / n : 0)}'
}

printf 'HTTPS through one worker on CPU 0 (wrk and origin on CPU 1), %ss runs, median of 3\n' "$secs"
printf '%-44s %12s %12s %9s\n' "" "sluice" "nginx" "ratio"
for cert in ecdsa rsa; do
  label=$([ "$cert" = ecdsa ] && echo "ECDSA P-256" || echo "RSA 2048")
  read -r s_rate s_p99 s_cpu <<<"$(measure sluice "$cert" keepalive)"
  read -r n_rate n_p99 n_cpu <<<"$(measure nginx "$cert" keepalive)"
  row "$label keep-alive req/s (64 conns)" "$s_rate" "$n_rate"
  row "  p99 latency (us)" "$s_p99" "$n_p99"
  row "  proxy CPU per request (us)" "$s_cpu" "$n_cpu"
  read -r s_rate s_p99 s_cpu <<<"$(measure sluice "$cert" handshake)"
  read -r n_rate n_p99 n_cpu <<<"$(measure nginx "$cert" handshake)"
  row "$label new connections/s (16 conns)" "$s_rate" "$n_rate"
  row "  proxy CPU per handshake+request (us)" "$s_cpu" "$n_cpu"
done
echo "(ratio = sluice / nginx: above 1 is better for rates, below 1 for latency and CPU)"
