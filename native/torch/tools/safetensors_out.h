// Writes float32 tensors as a safetensors file (what clip_reference.py check and scripts/gpu/compare.py read).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace cclip::tools {

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace cclip::tools
