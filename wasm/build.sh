#!/usr/bin/env bash
# Builds native/core (towers + preprocessing) with Emscripten into wasm/prebuilt/: cclip.js (CommonJS module
# factory createCclipModule), cclip.wasm (SIMD128), cclip-relaxed.wasm (the same sources with relaxed SIMD's
# multiply-add; it takes the same glue), cclip.worker.js (pthread worker) and BUILD_INFO.json (toolchain, flags,
# and the hash of the sources, checked by test/wasm-artifacts.test.ts). Objects go to build-wasm/.
# Needs emcc (Debian: apt-get install emscripten; 3.1.6 is what CI and the committed build use).
# JOBS=n to compile n files at once (default 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source wasm/sources.sh
# Debian's emcc runs on the system node and needs its modules.
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
command -v em++ >/dev/null || { echo "wasm/build.sh: em++ not found (apt-get install emscripten)" >&2; exit 1; }

CXXFLAGS=(-O3 -std=c++17 -msimd128 -pthread -fexceptions -DNDEBUG -Wall -Wno-unused-function)
LDFLAGS=(
  -O3 -msimd128 -pthread -fexceptions
  -sMODULARIZE=1 -sEXPORT_NAME=createCclipModule -sENVIRONMENT=node,web,worker
  -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=64MB -sMAXIMUM_MEMORY=4GB
  # one runner thread + (threads - 1) pool workers, started with the module: threads = Module.cclipThreads
  '-sPTHREAD_POOL_SIZE=Module["cclipThreads"]'
  -sEXPORTED_FUNCTIONS=_malloc,_free
  -sEXPORTED_RUNTIME_METHODS=UTF8ToString,stringToUTF8,lengthBytesUTF8
  -sEXIT_RUNTIME=0 -sNODEJS_CATCH_EXIT=0 -sNODEJS_CATCH_REJECTION=0
  --post-js wasm/src/post.js
)

RELAXED_CXXFLAGS=(-mrelaxed-simd)
out=wasm/prebuilt
mkdir -p "$out"
sources=()
for f in native/core/*.cc wasm/src/*.cc; do
  [[ "$f" == native/core/file_reader.cc ]] && continue  # wasm/src/file_reader_wasm.cc reads through JS
  sources+=("$f")
done

start=$(date +%s)
# build OBJ_DIR OUT_JS EXTRA_CXXFLAGS...: compiles every source into OBJ_DIR, links OUT_JS (+ .wasm, .worker.js).
build() {
  local obj="$1" js="$2"
  shift 2
  local objects=() pids=() f o
  mkdir -p "$obj"
  for f in "${sources[@]}"; do
    o="$obj/$(echo "$f" | tr / _).o"
    objects+=("$o")
    em++ "${CXXFLAGS[@]}" "$@" -Inative/core -c "$f" -o "$o" &
    pids+=($!)
    if (( ${#pids[@]} >= ${JOBS:-2} )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
  for p in "${pids[@]}"; do wait "$p"; done
  em++ "${CXXFLAGS[@]}" "$@" "${LDFLAGS[@]}" "${objects[@]}" -o "$js"
}
build build-wasm/obj "$out/cclip.js"
relaxed=build-wasm/relaxed
build "$relaxed/obj" "$relaxed/cclip.js" "${RELAXED_CXXFLAGS[@]}"
# One glue serves both modules: it does not depend on the instructions inside.
cmp -s "$relaxed/cclip.js" "$out/cclip.js" && cmp -s "$relaxed/cclip.worker.js" "$out/cclip.worker.js" ||
  { echo "wasm/build.sh: the relaxed build's glue differs from the SIMD128 build's" >&2; exit 1; }
# The linker's wasm-opt knows f32x4.fma by the prototype's meaning (a + b * c) and folds constant operands that way:
# every multiply-add the compiler emitted must reach the module unfolded (gemm.cc never passes constants).
emitted=$(node wasm/src/relaxed-opcodes.mjs --count-prototype "$relaxed"/obj/*.o)
madds=$(node wasm/src/relaxed-opcodes.mjs "$relaxed/cclip.wasm")
(( madds > 0 )) || { echo "wasm/build.sh: the relaxed build has no multiply-add" >&2; exit 1; }
(( madds == emitted )) ||
  { echo "wasm/build.sh: the objects hold $emitted f32x4.fma, the linked module $madds (folded by wasm-opt?)" >&2; exit 1; }
cp "$relaxed/cclip.wasm" "$out/cclip-relaxed.wasm"

hash=$(cclip_wasm_sources_hash "$root")
version=$(em++ --version 2>/dev/null | sed -nE '1s/.* ([0-9]+\.[0-9]+\.[0-9]+).*/\1/p')
cat > "$out/BUILD_INFO.json" <<JSON
{
  "sourcesHash": "$hash",
  "emscripten": "$version",
  "cxxflags": "${CXXFLAGS[*]}",
  "relaxedCxxflags": "${RELAXED_CXXFLAGS[*]}",
  "relaxedMadds": $madds,
  "ldflags": "$(printf '%s ' "${LDFLAGS[@]}" | sed 's/"/\\"/g; s/ $//')"
}
JSON
echo "wasm/build.sh: built $out (cclip.js, cclip.wasm, cclip-relaxed.wasm with $madds multiply-adds, cclip.worker.js) in $(( $(date +%s) - start ))s; sources $hash"
