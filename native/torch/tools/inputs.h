// Files the GPU tools read: the JSON load request (native/core/spec.h, written by scripts/gpu/model_spec.py)
// and the bytes of its inputs.
#pragma once
#include <string>
#include <vector>

#include "../../core/spec.h"

namespace cclip::tools {

// The whole file as text (refuses anything over 64 MB: a request is far smaller).
std::string read_text_file(const std::string& path);

// The bytes of one input tensor.
std::vector<char> read_input_bytes(const InputTensor& t);

}  // namespace cclip::tools
