#!/usr/bin/env bash
# Builds the per-platform packages of the native addon (npm/<platform>/: package.json, README, the N-API 8
# convnext_clip.node), at the main package's version.
#   scripts/build-prebuilt.sh x64      node-gyp from source (run-time ISA dispatch: baseline x86-64 + AVX2/AVX-512
#                                      kernels; no -march=native), or the existing build/Release addon with --reuse
#   scripts/build-prebuilt.sh arm64    cross-compiled with aarch64-linux-gnu-g++ (Debian g++-aarch64-linux-gnu),
#                                      NEON kernels picked at compile time; objects in build-arm64/
# PACK=1 also runs `npm pack` in each package folder (tarballs land in build-prebuilt/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
version=$(node -p "require('./package.json').version")

# The platform package's package.json and README from the template, at the main package's version.
stamp() {
  local dir="npm/$1"
  node -e '
    const fs = require("fs"), [dir, version] = process.argv.slice(1);
    const manifest = JSON.parse(fs.readFileSync(dir + "/package.json", "utf8"));
    if (manifest.version !== version) { manifest.version = version; fs.writeFileSync(dir + "/package.json", JSON.stringify(manifest, null, 2) + "\n"); }
  ' "$dir" "$version"
  if [ -n "${PACK:-}" ]; then
    mkdir -p build-prebuilt
    (cd "$dir" && npm pack --silent --pack-destination "$ROOT/build-prebuilt" >/dev/null)
  fi
}

build_x64() {
  if [ "${1:-}" != "--reuse" ] || [ ! -f build/Release/convnext_clip.node ]; then
    if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
    npx node-gyp rebuild -j 2
  fi
  # the flags node-gyp compiled with (build/convnext_clip.target.mk) and those binding.gyp asks for
  if grep -q -- '-march=\|-mtune=native\|-mavx' build/convnext_clip.target.mk binding.gyp 2>/dev/null; then
    echo "build-prebuilt: -march/-mavx flags in the x64 build; a prebuilt binary must run on every x86-64 CPU (ISA kernels are picked at run time)" >&2
    exit 1
  fi
  cp build/Release/convnext_clip.node npm/linux-x64-gnu/convnext_clip.node
  stamp linux-x64-gnu
}

build_arm64() {
  local cxx="${CXX_ARM64:-aarch64-linux-gnu-g++}" out=build-arm64 napi_include
  command -v "$cxx" >/dev/null || { echo "build-prebuilt: $cxx not found (apt-get install g++-aarch64-linux-gnu)" >&2; exit 1; }
  napi_include=$(node -p "require('node-addon-api').include_dir")
  local node_include="${NODE_INCLUDE:-/usr/include/node}"  # node_api.h is the same on every architecture
  [ -f "$node_include/node_api.h" ] || { echo "build-prebuilt: no node_api.h in $node_include (set NODE_INCLUDE)" >&2; exit 1; }
  mkdir -p "$out/obj"
  # The same sources and flags as binding.gyp.
  local flags=(-O3 -std=c++17 -fexceptions -fPIC -pthread -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNDEBUG
               -I "$napi_include" -I "$node_include" -I native/core)
  local objects=() pids=() f o
  for f in native/core/*.cc native/napi/*.cc native/node/*.cc; do
    o="$out/obj/$(echo "$f" | tr / _ | sed 's/\.cc$/.o/')"
    objects+=("$o")
    if [ ! -e "$o" ] || [ "$f" -nt "$o" ] || [ -n "$(find native/core native/napi -name '*.h' -newer "$o" -print -quit)" ]; then
      "$cxx" "${flags[@]}" -c "$f" -o "$o" &
      pids+=($!)
      if (( ${#pids[@]} >= ${JOBS:-2} )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    fi
  done
  for p in "${pids[@]}"; do wait "$p"; done
  "$cxx" -shared -pthread -Wl,-soname=convnext_clip.node "${objects[@]}" -o npm/linux-arm64-gnu/convnext_clip.node
  stamp linux-arm64-gnu
}

case "${1:-}" in
  x64) shift; build_x64 "$@" ;;
  arm64) build_arm64 ;;
  *) echo "usage: scripts/build-prebuilt.sh x64 [--reuse] | arm64" >&2; exit 2 ;;
esac
