// Reads tensors named in a manifest (file, offset, dtype, shape, strides) straight from the checkpoint files,
// converting F32/F16/BF16/F64 to fp32, checking that every weight is finite and of sane magnitude (one pass
// over values converted anyway), and reporting bytes loaded. Every engine reads its weights through this class
// (the torch engine then moves them to its device). Files are mapped (mapped_file.h) where they can be, and
// contiguous tensors converted straight from the mapping, linear weights packed from it panel by panel, in
// parallel on the model's pool; otherwise (wasm, CCLIP_LOAD_MMAP=0, strided sources) read with pread through a
// bounded staging buffer.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gemm.h"
#include "spec.h"
#include "threadpool.h"

namespace cclip {

class FileReader;
class MappedFile;
class PackedCache;

using ProgressFn = std::function<void(uint64_t loaded_bytes, uint64_t total_bytes)>;

class WeightLoader {
 public:
  // Checks that every tensor of `expected` is present with its shape, and that each source's strides and
  // byte range are consistent, before anything is read. Throws Error (E_TENSOR_MISSING, E_TENSOR_SHAPE,
  // E_CHECKPOINT_CORRUPT). Conversion and packing run on `pool` (null: the calling thread).
  WeightLoader(const std::vector<TensorSource>& sources, const std::vector<std::pair<std::string, Shape>>& expected,
               ProgressFn progress, ThreadPool* pool = nullptr);
  ~WeightLoader();

  // The tensor as fp32 in logical row-major order.
  std::vector<float> read(const std::string& name);
  // The same into `out` (element_count(shape) floats), e.g. a pinned host buffer of another engine.
  void read_to(const std::string& name, float* out);
  // The tensor as W [n, k] (n * k elements, row-major) packed for linear() (pack_weight's layout, bit-identical).
  PackedWeight read_packed(const std::string& name, int n, int k, Precision precision);
  // A packed weight derived from the checkpoint (e.g. a permuted read): from the packed cache when it holds `key`,
  // else made by `make` (and recorded for the cache). `source_bytes`: what `make` reads, for progress.
  PackedWeight packed(const std::string& key, int n, int k, Precision precision, uint64_t source_bytes,
                      const std::function<PackedWeight()>& make);
  // Packed weights come from (and are recorded for) `cache` from here on (null: none). Not owned.
  void use_cache(PackedCache* cache) { cache_ = cache; }
  // Whether the tensor is read from a mapping (else with pread).
  bool mapped(const std::string& name) const;
  const TensorSource& source(const std::string& name) const;

  uint64_t total_bytes() const { return total_bytes_; }
  ThreadPool* pool() const { return pool_; }  // for the towers' own packing (null: the calling thread)

 private:
  struct OpenFile {
    std::unique_ptr<FileReader> reader;
    std::unique_ptr<MappedFile> mapping;  // null: read with pread
  };
  const OpenFile& file(const std::string& path);
  const MappedFile* mapping_of(const TensorSource& src) const;
  void read_into(const TensorSource& src, float* out);
  void read_mapped(const TensorSource& src, const MappedFile& mapping, float* out);
  void read_contiguous(const TensorSource& src, float* out);
  // convert_checked of `count` elements (the tensor's from `first_index` on) on the pool when large; a bad
  // value fails with the first bad element whichever thread met one.
  void convert_on_pool(const unsigned char* from, const TensorSource& src, size_t count, float* out, size_t first_index);
  void read_strided(const TensorSource& src, float* out);
  void advance(uint64_t bytes, bool force_report);
  PackedWeight read_packed_from_checkpoint(const TensorSource& src, int n, int k, Precision precision);

  std::map<std::string, TensorSource> sources_;
  std::map<std::string, OpenFile> files_;
  std::vector<unsigned char> staging_;
  std::vector<float> reused_;  // pread path: the source of read_packed, grown only
  ProgressFn progress_;
  ThreadPool* pool_;
  PackedCache* cache_ = nullptr;
  uint64_t total_bytes_ = 0, loaded_bytes_ = 0, last_reported_ = 0;
};

}  // namespace cclip
