#!/usr/bin/env bash
# Installs the Debian 12 packages sluice needs to build and test, only the
# missing ones. Runs apt-get as root, or through sudo.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libboost1.81-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libspdlog-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev
  libnghttp2-dev             # HTTP/2 (proxy/message/h2_session.cpp)
  nghttp2-client python3-h2 python3-grpcio   # HTTP/2 tests: h2load, raw frames, gRPC
  python3 python3-jsonschema python3-yaml python3-websockets prometheus
  curl openssl
  clang libclang-rt-14-dev   # the fuzz targets (tools/fuzz.sh): libFuzzer with ASan and UBSan
  util-linux                 # prlimit, for the descriptor-exhaustion test
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
