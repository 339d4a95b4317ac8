#!/usr/bin/env bash
# Fills .gpu-carry/ (git-ignored through .git/info/exclude) with what scripts/gpu-check.sh needs from ../shared
# on a GPU machine: clip_reference.py and three small fixture models (about 41 MB in all). Then, with the run
# tool: command "bash scripts/gpu-check.sh", carry [".gpu-carry"], timeout_s 590.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${SHARED:-../shared}
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude
rm -rf .gpu-carry && mkdir -p .gpu-carry/fixtures
cp "$shared/reference/clip_reference.py" .gpu-carry/
for m in xxlarge-tiny xxlarge-deep256 large-d-tiny; do
  mkdir -p ".gpu-carry/fixtures/$m"
  cp "$shared/fixtures/models/$m/"{open_clip_config.json,open_clip_model.safetensors,expected.safetensors} ".gpu-carry/fixtures/$m/"
done
du -sh .gpu-carry
