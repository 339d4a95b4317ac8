// A file of packed weights (LoadOptions::packed_cache): the first load of a checkpoint writes every packed linear
// weight to <dir>/<key hash>.cclip-packed; later loads map that file and use its pages as they are, so loading
// neither converts nor packs those weights nor faults in fresh memory for them (page-cache pages, shared by every
// process that maps the file), as llama.cpp maps its weights.
//
// The key names what the bytes depend on: the layout version, the precision, the kernel variant that packed them
// (name, panel width, K alignment), and for each checkpoint file its path, device, inode, size, and modification
// and status-change times in nanoseconds. A checkpoint rewritten in place changes its ctime; one replaced changes
// its inode: either makes a different key, so a changed checkpoint never reuses a stale file. The file holds the
// full key and is checked entry by entry against what the model asks for; a file that does not match is ignored
// and replaced. A file written for a checkpoint's new state removes those of its earlier states (same identity:
// files, precision, variant), so updates do not pile up copies of the weights. Writing is best effort (a read-only or full directory only loses the cache), through a temporary
// file renamed into place, so a reader never sees a partial file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gemm.h"
#include "spec.h"
#include "threadpool.h"

namespace cclip {

class PackedCache {
 public:
  // Null where the platform has no mmap (wasm). Never throws for a missing, foreign or damaged cache file.
  static std::unique_ptr<PackedCache> open(const std::string& dir, const std::vector<TensorSource>& tensors,
                                           Precision precision);
  ~PackedCache();

  // The cached weight `name` if the file holds it as [n, k] for this precision and variant.
  bool lookup(const std::string& name, int n, int k, Precision precision, PackedWeight* out) const;
  // Records a weight packed during this load (only when the file was not usable).
  void record(const std::string& name, const PackedWeight& w);
  // After a complete load: writes the recorded weights, if any were recorded, on `pool` (null: this thread).
  // Returns false if it could not.
  bool commit(ThreadPool* pool = nullptr);

  bool hit() const { return mapping_ != nullptr; }  // weights come from the file
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    std::string name;
    int32_t n = 0, k = 0;
    uint64_t offset = 0, bytes = 0;
    PackedWeight weight;  // write mode: what to write
  };
  PackedCache() = default;
  bool map_existing();
  void remove_superseded() const;

  std::string dir_, path_, key_, prefix_;
  Precision precision_ = Precision::F32;
  std::vector<Entry> entries_;
  std::shared_ptr<const unsigned char> mapping_;  // read mode: the mapped file
};

}  // namespace cclip
