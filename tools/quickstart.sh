#!/usr/bin/env bash
# The quickstart: installs what is missing, builds, starts the demo origin on
# 127.0.0.1:3000 and sluice on 127.0.0.1:8080 (admin on 127.0.0.1:9901) with
# config/examples/quickstart.yaml. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target sluice sluice-demo-origin

./build/sluice-demo-origin --port 3000 &
origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT
sleep 0.3
kill -0 $origin 2>/dev/null || { echo "the demo origin did not start (is port 3000 taken?)" >&2; exit 1; }

cat >&2 <<'TOUR'

sluice is starting on http://127.0.0.1:8080 in front of the demo origin. In another terminal:
  curl -N localhost:8080/stream      # NDJSON tokens, one by one
  curl -N localhost:8080/sse         # Server-Sent Events
  curl localhost:8080/api/hello      # a route with a prefix rewrite
  curl localhost:9901/config         # the config as applied
Ctrl-C drains and stops.

TOUR
./build/sluice run --config config/examples/quickstart.yaml
