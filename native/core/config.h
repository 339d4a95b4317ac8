// Architecture of an OpenCLIP ConvNeXt CLIP model (mirrors lib/architecture.ts ClipArchitecture).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cclip {

struct VisionConfig {
  int depths[4] = {0, 0, 0, 0};
  int dims[4] = {0, 0, 0, 0};
  float norm_eps = 1e-6f;
  int image_size = 0;
  bool proj_mlp = false;  // false: linear projection; true: fc1 + GELU + fc2
  bool proj_bias = false;
};

struct TextConfig {
  int width = 0, heads = 0, layers = 0, context_length = 0, vocab_size = 0;
};

struct ClipConfig {
  int embed_dim = 0;
  VisionConfig vision;
  TextConfig text;

  // Throws std::runtime_error when a field is out of range or inconsistent.
  void validate() const;
};

using Shape = std::vector<int64_t>;

// Intermediate activations of the first row, by name (image0.stem, text0.block3, ...), in capture order.
using Captures = std::vector<std::pair<std::string, std::vector<float>>>;

// Every tensor the model reads, with its shape (same list and order as expectedTensors() in TypeScript,
// without logit_scale which the towers do not use).
std::vector<std::pair<std::string, Shape>> expected_tensors(const ClipConfig& config);

std::string shape_to_string(const Shape& shape);

}  // namespace cclip
