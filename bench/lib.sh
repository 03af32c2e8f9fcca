# Helpers the bench scripts share; sourced, not run, from the repository root.
# A script calls make_workdir before starting anything, and adds every process
# it starts to `pids`.

# Installs the named Debian packages that are missing, then sluice's own
# dependencies, and builds the given targets in build/ (Release, as tools/test.sh and the image).
prepare() {  # "pkg1 pkg2 ..." target...
  local need=() tool
  for tool in $1; do command -v "$tool" >/dev/null || need+=("$tool"); done
  if [ ${#need[@]} -gt 0 ]; then
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  shift
  tools/deps.sh
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=ON -DBUILD_TESTING=ON >/dev/null
  cmake --build build --target "$@" >/dev/null
}

# Sets `work` to a new temporary directory (with tmp/ for nginx, readable by
# nginx's workers) and `pids` to none; on exit, stops every process in `pids`
# and removes `work`.
make_workdir() {
  work=$(mktemp -d)
  chmod 755 "$work"
  mkdir -p "$work/tmp"
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; }
# utime+stime of a process, in clock ticks (0 for no process).
cpu_ticks() { if [ -n "$1" ]; then awk '{print $14 + $15}' /proc/"$1"/stat; else echo 0; fi; }
# The median of the numbers on standard input, one per line ("-" for none).
median() { sort -g | awk '{v[NR] = $1} END {print (NR ? v[int((NR + 1) / 2)] : "-")}'; }

# The HTTP origin every benchmark uses: nginx answering GET / with a small body,
# keep-alive, one worker pinned to CPU 1. Sets http_origin to its port.
start_http_origin() {
  http_origin=$(free_port)
  h2_origin=$(free_port)  # the same origin over h2c (prior knowledge), for the HTTP/2-to-HTTP/2 row
  cat > "$work/origin.conf" <<CONF
worker_processes 1;
daemon off;
error_log stderr error;
pid $work/origin.pid;
events { worker_connections 16000; }
http {
  access_log off;
  client_body_temp_path $work/tmp;
  server { listen 127.0.0.1:$http_origin; listen 127.0.0.1:$h2_origin http2; keepalive_requests 1000000;
           location / { return 200 "hello from the origin\n"; } }
}
CONF
  taskset -c 1 nginx -p "$work" -c "$work/origin.conf" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$http_origin"
}

# The WebSocket and stream origin (bench/ws_echo_origin.cpp), pinned to CPU 1.
# Sets ws_origin to its port.
start_ws_origin() {
  ws_origin=$(free_port)
  taskset -c 1 ./build/bench/ws_echo_origin "$ws_origin" >/dev/null &
  pids+=($!)
  wait_port "$ws_origin"
}

# Certificates for "localhost" and 127.0.0.1, made here (no key is committed):
# one CA, an ECDSA P-256 leaf and an RSA 2048 leaf, as $work/{ecdsa,rsa}.crt
# (leaf and CA) and .key, and .pem (both, for HAProxy).
make_certs() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=sluice bench CA" \
    -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
  local name
  for name in ecdsa rsa; do
    local newkey=(ec -pkeyopt ec_paramgen_curve:P-256)
    [ "$name" = rsa ] && newkey=(rsa:2048)
    openssl req -newkey "${newkey[@]}" -nodes -subj "/CN=localhost" -keyout "$work/$name.key" -out "$work/$name.csr" \
      2>/dev/null
    openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
      -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1') -out "$work/$name.leaf" 2>/dev/null
    cat "$work/$name.leaf" "$work/ca.crt" > "$work/$name.crt"
    cat "$work/$name.crt" "$work/$name.key" > "$work/$name.pem"
  done
}

# Starts a target of bench/run.sh's table on CPU 0, after start_http_origin and
# start_ws_origin, with the sluice binary in $sluice_bin; sets PORT (HTTP),
# WSPORT (WebSocket and stream), H2PORT, PID (the process whose CPU is
# measured) and KILL (what to stop after).
start_target() {
  local name=$1
  PORT=$(free_port) WSPORT=$PORT H2PORT=$PORT PID="" KILL=""
  case "$name" in
    direct) PORT=$http_origin WSPORT=$ws_origin H2PORT=""; return ;;
    sluice)
      cat > "$work/sluice.yaml" <<YAML
listeners: [{name: public, address: 127.0.0.1, port: $PORT}]
clusters:
  - {name: http, endpoints: ["127.0.0.1:$http_origin"]}
  - {name: ws, endpoints: ["127.0.0.1:$ws_origin"]}
  - {name: h2, endpoints: ["127.0.0.1:$h2_origin"], protocol: http2}
routes:
  - {name: h2, match: {path_prefix: /h2}, cluster: h2}
  - {name: ws, match: {path_prefix: /ws}, cluster: ws}
  - {name: stream, match: {path_prefix: /stream}, cluster: ws}
  - {name: http, match: {path_prefix: /}, cluster: http}
access_log: {enabled: false}
YAML
      taskset -c 0 "$sluice_bin" run --config "$work/sluice.yaml" --admin 127.0.0.1:0 --workers 1 --log-level error \
        >/dev/null 2>&1 &
      KILL=$! PID=$! ;;
    nginx)
      H2PORT=$(free_port)
      sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$PORT#g" -e "s#@H2PORT@#$H2PORT#g" -e "s#@HTTP_ORIGIN@#$http_origin#g" -e "s#@WS_ORIGIN@#$ws_origin#g" \
          -e "s#@H2_ORIGIN@#$h2_origin#g" bench/nginx-bench.conf.in > "$work/nginx.conf"
      taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" >/dev/null 2>&1 &
      KILL=$! ;;
    haproxy)
      H2PORT=$(free_port)
      sed -e "s#@PORT@#$PORT#g" -e "s#@H2PORT@#$H2PORT#g" -e "s#@HTTP_ORIGIN@#$http_origin#g" -e "s#@WS_ORIGIN@#$ws_origin#g" \
          -e "s#@H2_ORIGIN@#$h2_origin#g" bench/haproxy-bench.cfg.in > "$work/haproxy.cfg"
      taskset -c 0 haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 &
      KILL=$! PID=$! ;;
  esac
  await_target "$name"
}

# After a target started: waits for $PORT, and for nginx sets PID to the
# worker its master forked, which does the work.
await_target() {  # name
  wait_port "$PORT"
  sleep 0.2
  [ "$1" = nginx ] && PID=$(pgrep -P "$KILL" | head -1)
  return 0
}
