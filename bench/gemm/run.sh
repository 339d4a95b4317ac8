#!/usr/bin/env bash
# GEMM/thread-pool test and microbenchmark, built with plain g++ (no node-gyp).
#   bench/gemm/run.sh test          build + run native/core/tests/gemm_test.cc (exit 1 on failure)
#   bench/gemm/run.sh test-asan     the same under AddressSanitizer + UBSan
#   bench/gemm/run.sh test-tsan     the same under ThreadSanitizer
#   bench/gemm/run.sh bench [args]  build + run bench/gemm/gemm_bench.cc (with OpenBLAS when installed)
# CXX overrides the compiler; BUILD_DIR the output folder (default build-gemm/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CXX="${CXX:-g++}"
OUT="${BUILD_DIR:-$ROOT/build-gemm}"  # not build/: node-gyp owns and cleans that
mkdir -p "$OUT"
CORE=(native/core/gemm.cc native/core/gemm_x86.cc native/core/threadpool.cc native/core/cpu_features.cc)
cd "$ROOT"
FLAGS=(-std=c++17 -Wall -Wextra -pthread)
mode="${1:-test}"
shift || true
case "$mode" in
  test)
    "$CXX" -O3 "${FLAGS[@]}" -o "$OUT/gemm_test" native/core/tests/gemm_test.cc "${CORE[@]}"
    exec "$OUT/gemm_test" "$@" ;;
  test-asan)
    "$CXX" -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer "${FLAGS[@]}" -o "$OUT/gemm_test_asan" \
      native/core/tests/gemm_test.cc "${CORE[@]}"
    exec "$OUT/gemm_test_asan" "$@" ;;
  test-tsan)
    "$CXX" -O1 -g -fsanitize=thread "${FLAGS[@]}" -o "$OUT/gemm_test_tsan" native/core/tests/gemm_test.cc "${CORE[@]}"
    exec "$OUT/gemm_test_tsan" "$@" ;;
  bench)
    EXTRA=()
    if [ -z "${NO_OPENBLAS:-}" ] && [ -e /usr/include/x86_64-linux-gnu/cblas.h -o -e /usr/include/cblas.h ]; then
      EXTRA=(-DWITH_OPENBLAS -lopenblas)
    fi
    "$CXX" -O3 "${FLAGS[@]}" -o "$OUT/gemm_bench" bench/gemm/gemm_bench.cc "${CORE[@]}" "${EXTRA[@]}"
    exec "$OUT/gemm_bench" "$@" ;;
  *) echo "usage: $0 test|test-asan|test-tsan|bench [args]" >&2; exit 2 ;;
esac
