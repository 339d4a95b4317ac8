#!/usr/bin/env bash
# Fills .gpu-carry/ (git-ignored through .git/info/exclude) with what scripts/gpu-check.sh needs from ../shared
# on a GPU machine: clip_reference.py and three small fixture models (about 41 MB in all). Then, with the run
# tool: command "bash scripts/gpu-check.sh", carry [".gpu-carry"], timeout_s 590.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${SHARED:-../shared}
exclude=$(git rev-parse --git-path info/exclude)  # a worktree's .git is a file
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu-carry/' "$exclude" 2>/dev/null || echo '/.gpu-carry/' >> "$exclude"
rm -rf .gpu-carry && mkdir -p .gpu-carry/fixtures
cp "$shared/reference/clip_reference.py" .gpu-carry/
# The architecture of each model, parsed here by the library (scripts/gpu/architecture.ts): the GPU machine
# has no Node, and scripts/gpu/model_spec.py puts it in the load request as is.
architecture() { node --import tsx scripts/gpu/architecture.ts "$1"; }
for m in xxlarge-tiny xxlarge-deep256 large-d-tiny; do
  mkdir -p ".gpu-carry/fixtures/$m"
  cp "$shared/fixtures/models/$m/"{open_clip_config.json,open_clip_model.safetensors,expected.safetensors} ".gpu-carry/fixtures/$m/"
  architecture ".gpu-carry/fixtures/$m/open_clip_config.json" > ".gpu-carry/fixtures/$m/architecture.json"
done
# The full-size model clip_reference.py makes on the GPU machine: its model_cfg, taken from the reference
# (without importing torch), parsed the same way.
config=${CONFIG:-convnext_xxlarge}
python3 - "$shared/reference/clip_reference.py" "$config" > .gpu-carry/xxl_open_clip_config.json <<'PY'
import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
keep = [n for n in tree.body if (isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "CONFIGS") or (isinstance(n, ast.FunctionDef) and n.name == "model_cfg_for")]
scope = {}
exec(compile(ast.Module(body=keep, type_ignores=[]), "clip_reference.py", "exec"), scope)
print(json.dumps({"model_cfg": scope["model_cfg_for"](sys.argv[2])}))
PY
architecture .gpu-carry/xxl_open_clip_config.json > .gpu-carry/xxl_architecture.json
du -sh .gpu-carry
