#!/usr/bin/env bash
# Installs the npm packages the client tests use into DIR (the build tree),
# once. Without npm it says so loudly and leaves the tests to skip.
set -euo pipefail
dir="$1"
if ! command -v npm >/dev/null 2>&1; then
  echo "!!!! SKIPPING the socket.io, openai and ollama client tests: npm is not installed on this machine !!!!" >&2
  exit 0
fi
if [ -f "$dir/node_modules/socket.io/package.json" ] && [ -f "$dir/node_modules/socket.io-client/package.json" ] &&
   [ -f "$dir/node_modules/kubernetes-models/package.json" ] && [ -f "$dir/node_modules/openai/package.json" ] &&
   [ -f "$dir/node_modules/ollama/package.json" ]; then
  exit 0
fi
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"name": "sluice-client-tests", "private": true}' > package.json
npm install --no-audit --no-fund --loglevel=error socket.io@4 socket.io-client@4 kubernetes-models@5 \
  openai@4 ollama@0.6
