// Model weights on the target device, laid out for the forward passes in vision.cc and text.cc.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <functional>
#include <unordered_map>
#include <vector>

#include "../core/spec.h"
#include "../core/weights.h"

namespace cclip {

struct Norm {
  at::Tensor w, b;  // [C], compute dtype
};

struct Linear {
  at::Tensor w, b;  // w [out, in]; b [out] or undefined
};

struct ConvBlock {
  at::Tensor dw_w, dw_b;  // [C, 1, 7, 7], [C] compute dtype (ATen conv2d path)
  Norm norm;
  Linear fc1, fc2;  // fc2 already scaled by the block's layer scale (gamma)
  // fp32 copies for the fused CUDA kernel: taps [7, 7, C], conv bias, norm weight and bias [C]
  at::Tensor tap_w32, dw_b32, norm_w32, norm_b32;
};

struct Downsample {
  Norm norm;    // over Cin
  Linear conv;  // 2x2 stride-2 conv as a GEMM: w [Cout, 2*2*Cin] in (kh, kw, cin) order
};

struct VisionWeights {
  Linear stem;  // 4x4 stride-4 conv as a GEMM: w [C0, 3*4*4] in (cin, kh, kw) order
  Norm stem_norm;
  std::array<Downsample, 4> down;  // down[0] unused
  std::array<std::vector<ConvBlock>, 4> blocks;
  Norm head_norm;
  Linear proj;  // linear head, or fc1 of the mlp head
  Linear proj2;  // fc2 of the mlp head (undefined for a linear head)
};

struct TextBlock {
  Norm ln1, ln2;
  Linear qkv, out, fc, proj;
};

struct TextWeights {
  at::Tensor tok_emb;  // [vocab, W]
  at::Tensor pos_emb;  // [ctx, W]
  std::vector<TextBlock> blocks;
  Norm ln_final;
  at::Tensor projection;  // [W, D]
};

struct Weights {
  VisionWeights vision;
  TextWeights text;
  int64_t bytes = 0;  // bytes held on the device
};

// Reads every tensor the architecture needs through the core's WeightLoader (which checks presence, shape,
// layout and finiteness) and lays them out on `device`. `fused_copies` also keeps the fp32 copies the fused
// CUDA kernels read.
Weights load_weights(const ClipConfig& config, const std::vector<TensorSource>& sources, const at::Device& device, at::ScalarType dtype,
                     bool fused_copies, const ProgressFn& progress);

}  // namespace cclip
