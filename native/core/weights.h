// Reads tensors named in a manifest (file, offset, dtype, shape, strides) straight from the checkpoint files,
// converting F32/F16/BF16/F64 to fp32 through a bounded staging buffer, checking that every weight is finite
// and of sane magnitude (one pass over values converted anyway), and reporting bytes loaded. Every engine
// reads its weights through this class (the torch engine then moves them to its device).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "spec.h"

namespace cclip {

class FileReader;

using ProgressFn = std::function<void(uint64_t loaded_bytes, uint64_t total_bytes)>;

class WeightLoader {
 public:
  // Checks that every tensor of `expected` is present with its shape, and that each source's strides and
  // byte range are consistent, before anything is read. Throws Error (E_TENSOR_MISSING, E_TENSOR_SHAPE,
  // E_CHECKPOINT_CORRUPT).
  WeightLoader(const std::vector<TensorSource>& sources, const std::vector<std::pair<std::string, Shape>>& expected,
               ProgressFn progress);
  ~WeightLoader();

  // The tensor as fp32 in logical row-major order.
  std::vector<float> read(const std::string& name);
  // The same into a buffer the loader reuses (valid until the next read_reused): big weights that are packed
  // right away then cost no fresh allocation and page faults each.
  const float* read_reused(const std::string& name);
  // The same into `out` (element_count(shape) floats), e.g. a pinned host buffer of another engine.
  void read_to(const std::string& name, float* out);
  const TensorSource& source(const std::string& name) const;

  uint64_t total_bytes() const { return total_bytes_; }

 private:
  const FileReader& file(const std::string& path);
  void read_into(const TensorSource& src, float* out);
  void read_contiguous(const TensorSource& src, float* out);
  void read_strided(const TensorSource& src, float* out);
  void advance(uint64_t bytes, bool force_report);

  std::map<std::string, TensorSource> sources_;
  std::map<std::string, std::unique_ptr<FileReader>> files_;
  std::vector<unsigned char> staging_;
  std::vector<float> reused_;
  ProgressFn progress_;
  uint64_t total_bytes_ = 0, loaded_bytes_ = 0, last_reported_ = 0;
};

}  // namespace cclip
