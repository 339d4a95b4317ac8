#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine: system packages, npm dependencies, the native addon and the JS build.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Compilers for the native addon (node-gyp) and the C++ core tests.
if ! command -v g++ >/dev/null || ! command -v make >/dev/null || ! command -v python3 >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ make python3 >/dev/null
fi

# node-gyp builds against the headers of the running Node (Debian's nodejs ships them in /usr/include/node).
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi

npm ci --no-audit --no-fund   # runs `node-gyp rebuild` for the native addon
npm run build:ts
