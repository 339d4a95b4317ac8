// A model spec file for the C++ tools: architecture, weight tensors and inputs, one tab-separated record a line,
// written by scripts/gpu/model_spec.py from a model directory (so the tools need no JSON parser):
//   arch <key> <value...>                                        (embed_dim, depths, dims, norm_eps, ...)
//   tensor <name> <dtype> <file> <offset> <byte_length> <ndim> <dims...>   (row-major contiguous)
//   input <name> <dtype> <file> <offset> <byte_length> <ndim> <dims...>    (pixels F32, tokens I64)
#pragma once
#include <map>
#include <string>
#include <vector>

#include "arch.h"

namespace cclip::tools {

struct Spec {
  Arch arch;
  std::vector<TensorSpec> tensors;
  std::map<std::string, TensorSpec> inputs;
};

// Throws std::runtime_error naming the line of a malformed record.
Spec read_spec(const std::string& path);

// The bytes of one input tensor.
std::vector<char> read_bytes(const TensorSpec& t);

}  // namespace cclip::tools
