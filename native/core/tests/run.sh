#!/usr/bin/env bash
# Builds and runs native/core/tests/ops_test.cc (`run.sh --test load_test`: load_test.cc) with g++, against objects of
# every native/core source (rebuilt only when a source or header is newer; BUILD_DIR, default build-core-tests/).
# JOBS=n compiles n files at once (default 2). Exit status: the test's.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
CXX="${CXX:-g++}"
OUT="${BUILD_DIR:-$ROOT/build-core-tests}"
mkdir -p "$OUT/obj"
FLAGS=(-O2 -std=c++17 -Wall -pthread)
newest_header=$(ls -t native/core/*.h | head -n 1)
objects=()
pids=()
TEST=ops_test
if [ "${1:-}" = "--test" ]; then TEST="$2"; shift 2; fi
for f in native/core/*.cc "native/core/tests/$TEST.cc"; do
  o="$OUT/obj/$(basename "$f" .cc).o"
  objects+=("$o")
  if [ ! -e "$o" ] || [ "$f" -nt "$o" ] || [ "$newest_header" -nt "$o" ]; then
    "$CXX" "${FLAGS[@]}" -c "$f" -o "$o" &
    pids+=($!)
    if (( ${#pids[@]} >= ${JOBS:-2} )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
"$CXX" "${FLAGS[@]}" "${objects[@]}" -o "$OUT/$TEST"
exec "$OUT/$TEST" "$@"
