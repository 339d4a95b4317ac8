#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine: system packages, npm dependencies, the native addons and the JS build.
#   CONVNEXT_CLIP_SKIP_TORCH=1  skips libtorch and the torch backend (the package works without it)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Compilers for the native addon (node-gyp) and the C++ core tests.
apt_install g++ make python3
# Chromium for the page test of the wasm build (committed in wasm/prebuilt; `npm run build:wasm` needs emscripten).
apt_install chromium
# Redis for the queue tests (they start their own instance on a loopback port).
apt_install redis-server
# libtorch (CPU, 1.13) + OpenBLAS for the torch backend, cmake for cmake-js.
if [ -z "${CONVNEXT_CLIP_SKIP_TORCH:-}" ]; then apt_install libtorch-dev libopenblas0-pthread cmake; fi

# node-gyp builds against the headers of the running Node (Debian's nodejs ships them in /usr/include/node).
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi

npm ci --no-audit --no-fund   # no install scripts of ours: the addon comes prebuilt or is built here
npm run build:native          # the native addon from source (build/Release), which the loader prefers
npm run build:ts
if [ -z "${CONVNEXT_CLIP_SKIP_TORCH:-}" ]; then npm run build:torch; fi
