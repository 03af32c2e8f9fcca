#!/usr/bin/env bash
# What a large route table costs the control plane: sluice's resident memory
# with 10 and with ROUTES routes (default 10,000), and the time a config change
# takes with ROUTES routes: CHANGES (default 50) times PUT /routes/{name} of one
# route, each of which validates the whole new config, builds and publishes a
# snapshot (router included), as any change does. Times are curl's, request to
# answer, on loopback; p50 and p99. Then the route lookup micro-benchmark
# (bench/router_bench.cpp) at 10, 1,000 and 10,000 routes.
#   bench/apply_cost.sh [ROUTES] [CHANGES]
# Not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
routes="${1:-10000}" changes="${2:-50}"
. bench/lib.sh
prepare "" sluice router_bench

make_workdir
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/"$1"/status; }

# The same mix of routes as router_bench: exact paths, prefixes, host- and method-bound prefixes.
make_config() {  # routes -> JSON config on stdout
  python3 - "$1" "$(free_port)" <<'PY'
import json, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
routes = []
for i in range(n):
    kind = i % 4
    m = ({"path": f"/api/v1/items/{i}"} if kind == 0 else
         {"path_prefix": f"/svc{i}/"} if kind == 1 else
         {"path_prefix": f"/tenants/{i}/", "host": f"t{i}.example.com"} if kind == 2 else
         {"path_prefix": f"/m{i}/", "methods": ["GET", "POST"]})
    routes.append({"name": f"r{i}", "match": m, "cluster": "c"})
print(json.dumps({"listeners": [{"name": "public", "address": "127.0.0.1", "port": port}],
                  "clusters": [{"name": "c", "endpoints": ["127.0.0.1:9"]}],
                  "routes": routes, "access_log": {"enabled": False}}))
PY
}

start() {  # routes -> starts sluice, sets pid and admin
  make_config "$1" > "$work/config.json"
  admin=$(free_port)
  ./build/sluice run --config "$work/config.json" --admin "127.0.0.1:$admin" --workers 2 --log-level warn >/dev/null &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$admin/healthz" >/dev/null && break; sleep 0.05; done
  sleep 0.5
}

start 10
small=$(rss_kib "$pid")
kill "$pid"; wait "$pid" 2>/dev/null || true

start "$routes"
big=$(rss_kib "$pid")
times=$(for i in $(seq "$changes"); do
  curl -s -o /dev/null -w '%{time_total}\n' -X PUT "http://127.0.0.1:$admin/routes/r5" -H 'Content-Type: application/json' \
    -d "{\"name\": \"r5\", \"match\": {\"path_prefix\": \"/svc5-v$i/\"}, \"cluster\": \"c\"}"
done | sort -g)
after=$(rss_kib "$pid")
version=$(curl -s "http://127.0.0.1:$admin/config" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')

pct() { echo "$times" | awk -v p="$1" '{v[NR] = $1} END {i = int(p * (NR - 1)) + 1; printf "%.1f", v[i] * 1000}'; }
echo "sluice $(git describe --always --dirty 2>/dev/null || echo '?'), 2 workers, $(date -u +%Y-%m-%d)"
printf 'resident memory: %s MiB with 10 routes, %s MiB with %s routes (%.2f KiB per route)\n' \
  "$(awk -v k="$small" 'BEGIN {printf "%.1f", k / 1024}')" "$(awk -v k="$big" 'BEGIN {printf "%.1f", k / 1024}')" \
  "$routes" "$(awk -v a="$big" -v b="$small" -v n="$routes" 'BEGIN {print (a - b) / (n - 10)}')"
printf 'config change with %s routes (PUT /routes/r5, %s changes, now version %s): p50 %s ms, p99 %s ms\n' \
  "$routes" "$changes" "$version" "$(pct 0.5)" "$(pct 0.99)"
printf 'resident memory after the changes: %s MiB\n' "$(awk -v k="$after" 'BEGIN {printf "%.1f", k / 1024}')"
echo
./build/bench/router_bench --benchmark_min_time=0.2 2>/dev/null | grep -E '^(Benchmark|BM_|-)'
