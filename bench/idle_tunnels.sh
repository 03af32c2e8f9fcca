#!/usr/bin/env bash
# Memory per idle WebSocket tunnel: opens COUNT (default 5000) WebSocket
# connections through each proxy to the same echo origin, leaves them idle, and
# reports the growth of the proxy's resident memory divided by COUNT. MODE wss
# makes the clients speak wss:// to each proxy (the same ECDSA P-256
# certificate for all three; the origin stays plain).
#   bench/idle_tunnels.sh [COUNT] [ws|wss]
#   SLUICE_BIN=/path/to/sluice bench/idle_tunnels.sh ...   (another sluice binary; default build/sluice,
#                                                          which is then built first)
# Installs nginx and haproxy from Debian if missing. Not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-5000}"
mode="${2:-ws}"
ulimit -n 20000

. bench/lib.sh
# A given binary is used as it is: bench/run.sh passes its own, so a run
# measures one binary throughout, even if the tree changes meanwhile.
if [ -n "${SLUICE_BIN:-}" ]; then prepare "nginx haproxy" ws_echo_origin ws_idle_clients
else prepare "nginx haproxy" sluice ws_echo_origin ws_idle_clients; fi
sluice_bin=$(realpath -m "${SLUICE_BIN:-build/sluice}")

make_workdir
tls_arg=""
: > "$work/tls.conf"
if [ "$mode" = wss ]; then
  make_certs
  tls_arg=tls
  printf 'ssl_certificate %s;\nssl_certificate_key %s;\nssl_protocols TLSv1.2 TLSv1.3;\n' \
    "$work/ecdsa.crt" "$work/ecdsa.key" > "$work/tls.conf"
fi

# Resident KiB of a process and its children (nginx: master + worker).
rss_tree() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0)))
  done
  echo "$total"
}

exec 3< <(./build/bench/ws_echo_origin)
pids+=($!)
read -r line <&3
origin_port=${line##*port=}

measure() {  # name pid port
  local name=$1 pid=$2 port=$3
  sleep 0.5
  local before after per
  before=$(rss_tree "$pid")
  coproc CLIENTS { ./build/bench/ws_idle_clients "$port" "$count" /ws $tls_arg; }
  local result
  read -r result <&"${CLIENTS[0]}"
  sleep 1
  after=$(rss_tree "$pid")
  if [ "$name" = sluice ]; then  # the admin views must stay fast with every tunnel live
    admin_times="GET /connections $(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$admin_port/connections")s"
    admin_times+=", GET /connections?limit=10000 $(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$admin_port/connections?limit=10000")s"
    admin_times+=", GET /metrics $(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$admin_port/metrics")s"
  fi
  per=$(awk -v a="$after" -v b="$before" -v n="$count" 'BEGIN {printf "%.2f", (a - b) / n}')
  printf '%-8s %-22s %10s %10s %12s\n' "$name" "$result" "$before" "$after" "$per"
  exec {CLIENTS[1]}>&-
  wait "$CLIENTS_PID" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

printf '%-8s %-22s %10s %10s %12s\n' proxy "$mode clients" "RSS before" "RSS after" "KiB/tunnel"

port=$(free_port)
cat > "$work/sluice.yaml" <<YAML
listeners: [{name: public, address: 127.0.0.1, port: $port$([ "$mode" = wss ] && echo ", tls: {cert: $work/ecdsa.crt, key: $work/ecdsa.key}")}]
clusters: [{name: ws, endpoints: ["127.0.0.1:$origin_port"]}]
routes: [{name: ws, match: {path_prefix: /}, cluster: ws}]
YAML
admin_port=$(free_port)
"$sluice_bin" run --config "$work/sluice.yaml" --admin "127.0.0.1:$admin_port" --workers 1 --log-level warn >/dev/null &
pid=$!; pids+=($pid)
measure sluice "$pid" "$port"

port=$(free_port)
sed -e "s|@DIR@|$work|g" -e "s|@PORT@|$port|g" -e "s|@ORIGIN_PORT@|$origin_port|g" \
  -e "s|@SSL@|$([ "$mode" = wss ] && echo ssl)|" bench/nginx-websocket.conf.in > "$work/nginx.conf"
nginx -p "$work" -c "$work/nginx.conf" &
pid=$!; pids+=($pid)
measure nginx "$pid" "$port"

port=$(free_port)
sed -e "s|@PORT@|$port|g" -e "s|@ORIGIN_PORT@|$origin_port|g" \
  -e "s|@BIND_TLS@|$([ "$mode" = wss ] && echo "ssl crt $work/ecdsa.pem")|" bench/haproxy-websocket.cfg.in > "$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 &
pid=$!; pids+=($pid)
measure haproxy "$pid" "$port"
echo "sluice with $count live tunnels: $admin_times"
