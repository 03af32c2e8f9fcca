#!/usr/bin/env bash
# Builds sluice and runs every test.
#   tools/test.sh                     the normal build (build/): Release, the
#                                     flags deploy/Dockerfile ships with
#                                     (warnings are errors here, which changes no code)
#   tools/test.sh --sanitize address  ASan + UBSan (build-asan/)
#   tools/test.sh --sanitize thread   TSan, concurrency tests (build-tsan/)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh

sanitize=""
if [ "${1:-}" = "--sanitize" ]; then sanitize="${2:?address or thread}"; fi
jobs=$(nproc)

case "$sanitize" in
  "")
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=ON -DBUILD_TESTING=ON >/dev/null
    cmake --build build -j "$jobs"
    ctest --test-dir build -j "$jobs" --output-on-failure
    ;;
  address)
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=address -DSLUICE_WERROR=ON -DBUILD_TESTING=ON >/dev/null
    cmake --build build-asan -j "$jobs"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-asan -j "$jobs" --output-on-failure
    ;;
  thread)
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=thread -DSLUICE_WERROR=ON -DBUILD_TESTING=ON >/dev/null
    cmake --build build-tsan -j "$jobs" --target integration_tests
    # Every suite labelled "concurrent" (tests/CMakeLists.txt): in-process
    # proxies with workers, the control thread and origins running at once.
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      ctest --test-dir build-tsan -j "$jobs" --output-on-failure -L concurrent
    ;;
  *) echo "unknown sanitizer: $sanitize (use address or thread)" >&2; exit 2 ;;
esac
