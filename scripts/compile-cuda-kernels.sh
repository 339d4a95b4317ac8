#!/usr/bin/env bash
# Compiles every CUDA file of the torch backend (native/torch/kernels/*.cu) for sm_90 with nvcc, object
# files only (no GPU needed). Exits non-zero on the first failure; exits 0 with a note when nvcc is absent
# and CCLIP_REQUIRE_NVCC is unset. Usage: scripts/compile-cuda-kernels.sh [arch, default sm_90]
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-sm_90}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$nvcc" ]; then
  if [ -n "${CCLIP_REQUIRE_NVCC:-}" ]; then echo "nvcc not found" >&2; exit 1; fi
  echo "nvcc not found: skipped"; exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for f in native/torch/kernels/*.cu; do
  if nice -n 10 "$nvcc" -std=c++17 -O3 -arch="$arch" -Werror all-warnings -Inative/torch/kernels -c "$f" -o "$out/$(basename "$f").o"; then
    echo "ok   $f ($arch)"
  else
    echo "FAIL $f ($arch)"; status=1
  fi
done
exit $status
