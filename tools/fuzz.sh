#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (in build-fuzz/) and runs each one,
# starting from the seed corpus in tests/fuzz/corpus/.
#   tools/fuzz.sh                      the CI regression run: every seed, then a fixed
#                                      number of runs from a fixed random seed (about
#                                      10 s each), so a CI result can be reproduced
#   tools/fuzz.sh --time 600           every target for 10 minutes, new random seed each time
#   tools/fuzz.sh --time 60 request    one target (request, response, config, admin, websocket_frames, h2, h2_upstream
#                                      or parser_diff)
# Inputs that reach new code are kept in build-fuzz/corpus/<target>/, not in
# the repository; copy the interesting ones into tests/fuzz/corpus/ by hand.
# A crash or a failed check leaves its input in build-fuzz/crashes/ and makes
# this script fail; reproduce it with build-fuzz/tests/fuzz/<target>_fuzz FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh

seconds=""
if [ "${1:-}" = "--time" ]; then seconds="${2:?seconds}"; shift 2; fi
targets=("${@:-request response config admin websocket_frames h2 h2_upstream parser_diff}")
# shellcheck disable=SC2206
targets=(${targets[*]})

cmake -S . -B build-fuzz -G Ninja -DSLUICE_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j "$(nproc)"
mkdir -p build-fuzz/crashes

status=0
# Runs that take about 10 s each on one core of the CI machines.
declare -A regression_runs=([request]=100000 [response]=250000 [config]=25000 [admin]=50000 [websocket_frames]=200000 [h2]=100000 [h2_upstream]=100000 [parser_diff]=150000)
for t in "${targets[@]}"; do
  if [ -n "$seconds" ]; then
    budget=(-max_total_time="$seconds"); what="${seconds}s"
  else
    # A fresh corpus directory, so the same runs happen every time.
    rm -rf "build-fuzz/corpus/$t"
    budget=(-seed=1 -runs="${regression_runs[$t]}"); what="seed 1"
  fi
  mkdir -p "build-fuzz/corpus/$t"
  log="build-fuzz/$t.log"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "build-fuzz/tests/fuzz/${t}_fuzz" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$t-" \
       "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    echo "fuzz $t: $what, $runs runs, $cov coverage points, no crash"
  else
    status=1
    echo "fuzz $t: FAILED (log: $log; input: build-fuzz/crashes/)" >&2
    grep -E 'check failed|ERROR: |SUMMARY|runtime error' "$log" | head -20 >&2 || tail -30 "$log" >&2
  fi
done
exit $status
