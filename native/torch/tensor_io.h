// Reads checkpoint tensors straight from their files (pread), without any JavaScript buffer in between.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>

#include "arch.h"

namespace cclip {

// Keeps one read-only descriptor per checkpoint file for the duration of a load.
class TensorReader {
 public:
  TensorReader() = default;
  TensorReader(const TensorReader&) = delete;
  TensorReader& operator=(const TensorReader&) = delete;
  ~TensorReader();

  // The tensor in its own dtype and shape, contiguous, on `device`. For CUDA the bytes land in pinned host
  // staging and go up with a non-blocking copy on the current stream (the pinned block is reused only once
  // that copy is done), so the next pread overlaps the transfer.
  at::Tensor read(const TensorSpec& spec, const at::Device& device);

 private:
  int fd_of(const std::string& file);
  std::map<std::string, int> fds_;
};

// F32 | F16 | BF16 | F64 -> the ATen type; throws std::invalid_argument otherwise.
at::ScalarType scalar_type_of(const std::string& dtype, const std::string& tensor);

}  // namespace cclip
