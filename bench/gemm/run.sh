#!/usr/bin/env bash
# GEMM/thread-pool test and microbenchmark, built with plain g++ (no node-gyp).
#   bench/gemm/run.sh test          build + run native/core/tests/gemm_test.cc (exit 1 on failure)
#   bench/gemm/run.sh test-asan     the same under AddressSanitizer + UBSan
#   bench/gemm/run.sh test-tsan     the same under ThreadSanitizer
#   bench/gemm/run.sh bench [args]  build + run bench/gemm/gemm_bench.cc (with OpenBLAS when installed)
#   bench/gemm/run.sh test-wasm     the test built with Emscripten (wasm SIMD128 + pthreads), run in Node
#   bench/gemm/run.sh test-wasm-relaxed   the same with relaxed SIMD's multiply-add (as cclip-relaxed.wasm)
# CXX overrides the compiler; BUILD_DIR the output folder (default build-gemm/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CXX="${CXX:-g++}"
OUT="${BUILD_DIR:-$ROOT/build-gemm}"  # not build/: node-gyp owns and cleans that
mkdir -p "$OUT"
CORE=(native/core/gemm.cc native/core/gemm_pack.cc native/core/gemm_x86.cc native/core/gemm_avx512bf16.cc native/core/gemm_amx.cc native/core/gemm_neon.cc native/core/threadpool.cc native/core/cpu_features.cc)
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
  test-wasm|test-wasm-relaxed)
    # Objects at -O2, link at -O0: Debian's emscripten 3.1.6 lacks the JS optimizer's node modules.
    W="$OUT/$mode"
    SIMD=(-msimd128)
    NODE_FLAGS=(--no-experimental-fetch)
    if [ "$mode" = test-wasm-relaxed ]; then
      SIMD+=(-mrelaxed-simd)
      node bench/wasm-relaxed-probe.mjs | grep -q '^f32x4.relaxed_madd (final, 0xfd 0x105): true' ||
        NODE_FLAGS+=(--experimental-wasm-relaxed-simd)  # Node 20; 22+ has relaxed SIMD on
    fi
    mkdir -p "$W"
    echo '{"type": "commonjs"}' > "$W/package.json"  # Emscripten's output is CommonJS; the repo's package.json says module
    objs=()
    for f in native/core/tests/gemm_test.cc "${CORE[@]}"; do
      o="$W/$(basename "$f" .cc).o"
      em++ -O2 -std=c++17 "${SIMD[@]}" -pthread -fexceptions -c "$f" -o "$o"
      objs+=("$o")
    done
    em++ -O0 -fexceptions -pthread -sPROXY_TO_PTHREAD -sPTHREAD_POOL_SIZE=24 -sINITIAL_MEMORY=512MB -sEXIT_RUNTIME=1 \
      "${objs[@]}" -o "$W/gemm_test.js"
    if [ "$mode" = test-wasm-relaxed ]; then
      madds=$(node wasm/src/relaxed-opcodes.mjs "$W/gemm_test.wasm")
      (( madds > 0 )) || { echo "no multiply-add in $W/gemm_test.wasm" >&2; exit 1; }
      echo "relaxed_madd: $madds"
    fi
    exec node "${NODE_FLAGS[@]}" "$W/gemm_test.js" "$@" ;;
  *) echo "usage: $0 test|test-asan|test-tsan|test-wasm|test-wasm-relaxed|bench [args]" >&2; exit 2 ;;
esac
