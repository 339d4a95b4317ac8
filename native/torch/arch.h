// The architecture and tensor list the libtorch backend runs: a mirror of lib/architecture.ts.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cclip {

struct Arch {
  int64_t embed_dim = 0;
  // vision: timm ConvNeXt trunk + open_clip head
  std::array<int64_t, 4> depths{}, dims{};
  double norm_eps = 1e-6;
  int64_t image_size = 0;
  bool proj_mlp = false;   // 'mlp' head (fc1+bias, GELU, fc2) instead of a linear projection
  bool proj_bias = false;  // bias on the last projection
  // text: open_clip transformer
  int64_t width = 0, heads = 0, layers = 0, context_length = 0, vocab_size = 0;
};

// Where one tensor's bytes live (lib/manifest.ts TensorEntry).
struct TensorSpec {
  std::string name, dtype, file;  // dtype: F32 | F16 | BF16 | F64
  std::vector<int64_t> shape, strides;
  int64_t offset = 0, byte_length = 0;
};

// Throws std::invalid_argument when the architecture is inconsistent (sizes, heads, image size).
void validate_arch(const Arch& arch);

// Every tensor the towers read, in load order, with its shape (logit_scale excluded).
std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const Arch& arch);

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace cclip
