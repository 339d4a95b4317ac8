// The image tower: timm ConvNeXt trunk (patch stem, 4 stages of ConvNeXt blocks, avg pool + head norm) and
// OpenCLIP's projection head. Activations are NHWC fp32.
#pragma once
#include <vector>

#include "spec.h"
#include "ops.h"
#include "scratch.h"
#include "weights.h"

namespace cclip {

struct ConvNeXtBlock {
  std::vector<float> dw_weight;  // pack_depthwise_weight of PyTorch's [C, 1, 7, 7]
  std::vector<float> dw_bias, norm_weight, norm_bias, gamma;  // [C]
  LinearLayer fc1;  // [4C, C]
  LinearLayer fc2;  // [C, 4C]
};

struct ConvNeXtStage {
  std::vector<float> downsample_norm_weight, downsample_norm_bias;  // [C_in]; empty for stage 0
  LinearLayer downsample;  // 2x2/s2 conv as a linear over (ky, kx, C_in) patches: [C_out, 4 * C_in]
  std::vector<ConvNeXtBlock> blocks;
};

class VisionTower {
 public:
  void load(const VisionConfig& config, int embed_dim, WeightLoader& loader, Precision precision);

  // pixels: [n, 3, S, S] NCHW normalized -> features [n, embed_dim]. Reentrant (each call leases its own scratch).
  void encode(const float* pixels, int n, float* features, Captures* captures, ThreadPool& pool) const;

  size_t bytes() const;

 private:
  VisionConfig config_;
  int embed_dim_ = 0;
  LinearLayer stem_;  // 4x4/s4 conv as a linear over (channel, ky, kx) patches: [C0, 48]
  std::vector<float> stem_norm_weight_, stem_norm_bias_;
  ConvNeXtStage stages_[4];
  std::vector<float> head_norm_weight_, head_norm_bias_;
  LinearLayer proj_;      // linear head [E, C3], or the MLP head's fc1 [2E, C3]
  LinearLayer proj_fc2_;  // MLP head only: [E, 2E]
  enum { kX, kPatches, kNormed, kHidden, kBuffers };  // encode()'s activation buffers
  mutable ScratchPool<kBuffers> scratch_;
};

}  // namespace cclip
