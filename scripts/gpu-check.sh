#!/usr/bin/env bash
# GPU check of the torch backend on a lent GPU machine with PyTorch and nvcc but no Node. Everything goes
# through native/torch/tools/gpu_check.cc (cclip_gpu_check), built here against PyTorch's libtorch:
#   1. the fused CUDA kernels against a float64 CPU reference (cclip_kernel_test: fp32 and bf16, odd shapes)
#   2. the fixture models on CUDA: fp32 to 1e-4 relative on every tensor (intermediates included) and bf16 to
#      cosine 0.999, with and without graphs / fused kernels
#   3. full-size random ConvNeXt-XXLarge weights (clip_reference.py make): our bf16 CUDA outputs against the
#      fp32 reference (clip_reference.py check, cosine >= 0.995), then our timings beside the PyTorch peer's
#      (clip_reference.py bench) on the same card in the same run
# Logs go to $OUT (one file per step, summary.txt, bench.jsonl). Prepare here with scripts/gpu/prepare-carry.sh,
# then run `bash scripts/gpu-check.sh` carrying .gpu-carry. Exit status 0 only when every step passed.
# Expect about 6-8 minutes on an H100/H200 (build ~1.5 min, XXLarge make ~1.5 min); on a warm machine the build
# is incremental, so a run can be split: SKIP_XXL=1 first, then SKIP_FIXTURES=1.
# Env: OUT, WORK (scratch, default /tmp/cclip-gpu), CONFIG (convnext_xxlarge; prepare-carry.sh must be given the same), BATCHES (1,8,64), SKIP_XXL=1, SKIP_FIXTURES=1,
# BUILD_DIR (build-gpu), DEVICE=cpu (a dry run of the plumbing without a GPU: kernels compiled, not run; CPU build; fixtures on the CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
WORK=${WORK:-/tmp/cclip-gpu}
CARRY=${CARRY:-$PWD/.gpu-carry}
CONFIG=${CONFIG:-convnext_xxlarge}
BATCHES=${BATCHES:-1,8,64}
DEVICE=${DEVICE:-cuda}
BUILD_DIR=${BUILD_DIR:-build-gpu}
REF=$CARRY/clip_reference.py
[ -f "$REF" ] || REF=$PWD/../shared/reference/clip_reference.py
mkdir -p "$OUT" "$WORK"
summary=$OUT/summary.txt
: > "$summary"
failed=0
t0=$(date +%s)

# step NAME CMD...: runs CMD with its output in $OUT/NAME.log; records ok / FAILED and the seconds it took.
step() {
  local name=$1 start=$(date +%s) rc
  shift
  "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  local line
  if [ $rc -eq 0 ]; then line="ok      $name ($(( $(date +%s) - start )) s)"; else line="FAILED  $name (rc $rc, $(( $(date +%s) - start )) s; see $name.log)"; failed=1; fi
  echo "$line" | tee -a "$summary"
  [ $rc -eq 0 ] || tail -n 15 "$OUT/$name.log"
  return $rc
}

env_info() {
  nvidia-smi || true
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))' || true
  nvcc --version | tail -n 2
  cmake --version | head -n 1
  echo "DEVICE=$DEVICE BUILD_DIR=$BUILD_DIR CARRY=$CARRY REF=$REF"
}
step env env_info

kernel_test() {
  nvcc -std=c++17 -O3 -arch=sm_90 -Inative/torch/kernels native/torch/kernels/dwconv_ln.cu native/torch/kernels/dwconv_ln_test.cu -o "$WORK/cclip_kernel_test" || return 1
  if [ "$DEVICE" = cuda ]; then "$WORK/cclip_kernel_test"; else echo "DEVICE=$DEVICE: compiled, not run"; fi
}
step kernels kernel_test

build() {
  local args=(-DCMAKE_BUILD_TYPE=Release -DCCLIP_TOOLS=ON -DCCLIP_ADDON=OFF) tp
  command -v ninja > /dev/null && args+=(-G Ninja)
  # PyTorch's libtorch when Python has torch (the GPU machines), else a system one (Debian's libtorch-dev)
  tp=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2> /dev/null) && args+=(-DCMAKE_PREFIX_PATH="$tp")
  if [ "$DEVICE" = cuda ]; then
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
    args+=(-DCCLIP_CUDA=ON -DCMAKE_CUDA_COMPILER="$(command -v nvcc)")
  else
    args+=(-DCCLIP_CUDA=OFF)
  fi
  cmake -S . -B "$BUILD_DIR" "${args[@]}" && cmake --build "$BUILD_DIR" -j "$(nproc)"
}
step build build || { echo "build failed: nothing else can run"; exit 1; }
TOOL=$PWD/$BUILD_DIR/cclip_gpu_check

# Fixture parity on CUDA: fp32 strict (intermediates too), bf16 by cosine; each path (graphs, fused) alone too.
fixture() {
  local m=$1 dir=$CARRY/fixtures/$1
  python3 scripts/gpu/model_spec.py "$dir" "$dir/architecture.json" > "$WORK/$m.json" || return 1
  local rc=0
  "$TOOL" --request "$WORK/$m.json" --device "$DEVICE" --precision fp32 --capture --out "$WORK/$m.fp32.safetensors" &&
    python3 scripts/gpu/compare.py "$dir/expected.safetensors" "$WORK/$m.fp32.safetensors" --max-rel 1e-4 || rc=1
  "$TOOL" --request "$WORK/$m.json" --device "$DEVICE" --precision fp32 --no-fused --capture --out "$WORK/$m.fp32-unfused.safetensors" &&
    python3 scripts/gpu/compare.py "$dir/expected.safetensors" "$WORK/$m.fp32-unfused.safetensors" --max-rel 1e-4 || rc=1
  # graphs: no --capture (a capture runs eagerly)
  "$TOOL" --request "$WORK/$m.json" --device "$DEVICE" --precision fp32 --out "$WORK/$m.fp32-graphs.safetensors" &&
    python3 scripts/gpu/compare.py "$dir/expected.safetensors" "$WORK/$m.fp32-graphs.safetensors" --max-rel 1e-4 || rc=1
  "$TOOL" --request "$WORK/$m.json" --device "$DEVICE" --precision bf16 --out "$WORK/$m.bf16.safetensors" &&
    python3 scripts/gpu/compare.py "$dir/expected.safetensors" "$WORK/$m.bf16.safetensors" --min-cos 0.999 || rc=1
  return $rc
}
for m in xxlarge-tiny xxlarge-deep256 large-d-tiny; do
  if [ -n "${SKIP_FIXTURES:-}" ]; then
    echo "skipped fixture-$m (SKIP_FIXTURES)" | tee -a "$summary"
  elif [ -d "$CARRY/fixtures/$m" ]; then step "fixture-$m" fixture "$m"; else echo "skipped fixture-$m (not carried)" | tee -a "$summary"; fi
done

if [ -z "${SKIP_XXL:-}" ]; then
  XXL=$WORK/xxl
  step make python3 "$REF" make --config "$CONFIG" --out "$XXL" --seed 0
  step spec sh -c "python3 scripts/gpu/model_spec.py '$XXL' '$CARRY/xxl_architecture.json' > '$WORK/xxl.json'"
  if [ "$DEVICE" = cuda ]; then
    # ours: bf16 outputs for the reference inputs, then timings (graphs + fused kernels, the defaults)
    step ours "$TOOL" --request "$WORK/xxl.json" --device cuda --precision bf16 --out "$OUT/xxl-ours-bf16.safetensors" --bench "$BATCHES" --iters 10
    step check python3 "$REF" check --model "$XXL" --got "$OUT/xxl-ours-bf16.safetensors" --min-cos 0.995
    # fp32 for the record (the reference's cuDNN convs may use TF32; ours do not): printed, not judged
    step ours-fp32 "$TOOL" --request "$WORK/xxl.json" --device cuda --precision fp32 --out "$WORK/xxl-ours-fp32.safetensors"
    step compare-fp32 python3 scripts/gpu/compare.py "$XXL/expected.safetensors" "$WORK/xxl-ours-fp32.safetensors"
    step peer python3 "$REF" bench --model "$XXL" --dtype bf16 --batches "$BATCHES"
  else
    step ours "$TOOL" --request "$WORK/xxl.json" --device "$DEVICE" --precision fp32 --out "$OUT/xxl-ours-fp32.safetensors"
    step check python3 "$REF" check --model "$XXL" --got "$OUT/xxl-ours-fp32.safetensors" --min-cos 0.995
  fi
  grep -h '^{' "$OUT/ours.log" "$OUT/peer.log" > "$OUT/bench.jsonl" 2> /dev/null
  { echo "--- parity ($CONFIG vs the fp32 reference)"; cat "$OUT/check.log" "$OUT/compare-fp32.log" 2> /dev/null
    echo "--- timings (median ms per call; ours include the host<->device copies of inputs and outputs)"; cat "$OUT/bench.jsonl"; } >> "$summary"
fi

echo "total $(( $(date +%s) - t0 )) s" >> "$summary"
echo "=== summary ($summary)"
cat "$summary"
exit $failed
