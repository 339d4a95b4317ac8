// A file of packed weights (LoadOptions::packed_cache): the first load of a checkpoint packs every linear weight
// straight into the pages of <dir>/<identity hash>-<key hash>.cclip-packed; later loads map that file and use its
// pages as they are, so loading neither converts nor packs those weights nor faults in fresh memory for them
// (page-cache pages, shared by every process that maps the file), as llama.cpp maps its weights.
//
// The key names what the bytes depend on: the layout version, the precision, the kernel variant that packed them
// (name, panel width, K alignment), and for each checkpoint file its path, device, inode, size, and modification
// and status-change times in nanoseconds. A checkpoint rewritten in place changes its ctime; one replaced changes
// its inode: either makes a different key, so a changed checkpoint never reuses a stale file. The file holds the
// full key and is checked entry by entry against what the model asks for; a file that does not match is ignored
// and replaced. A new file's pages are reserved with posix_fallocate before they are mapped (a full disk is an
// error, not SIGBUS); the header and index are written last and the file renamed into place, so readers never see
// a partial file. A file written for a checkpoint's new state removes those of its earlier states (same identity:
// files, precision, variant), so updates do not pile up copies of the weights. One process writes a given file at a
// time (a flock on <prefix><key hash>.cclip-lock): a concurrent first load of the same checkpoint waits for it, up to
// two minutes, and maps the result, instead of packing and writing the weights a second time. Writing is best
// effort: a directory that cannot be written only loses the cache.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gemm.h"
#include "gemm_pack.h"
#include "spec.h"

namespace cclip {

class PackedCache {
 public:
  // Null where the platform has no mmap (wasm). Never throws for a missing, foreign or damaged cache file.
  static std::unique_ptr<PackedCache> open(const std::string& dir, const std::vector<TensorSource>& tensors,
                                           Precision precision);
  ~PackedCache();  // removes an uncommitted file

  // The cached weight `name` if the file holds it as [n, k] for this precision and variant.
  bool lookup(const std::string& name, int n, int k, Precision precision, PackedWeight* out) const;
  // Without a usable file: memory in a new file for the weights this load packs (pass to ScopedPackedMemory), so
  // they are packed straight into its pages; null where the directory cannot be written.
  PackedMemory file_memory();
  // Records `w`, just packed into file_memory() under `name`.
  void record(const std::string& name, const PackedWeight& w);
  // After a complete load: the new file, header and index written, made read-only and renamed into place.
  // Returns false if it could not (the weights stay valid either way).
  bool commit();

  bool hit() const { return mapping_ != nullptr; }  // weights come from the file
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    std::string name;
    int32_t n = 0, k = 0;
    uint64_t offset = 0, bytes = 0;
    std::shared_ptr<void> pages;  // write mode: the entry's mapping (made read-only at commit)
  };
  PackedCache() = default;
  bool map_existing();
  bool map_existing_checked();
  bool files_state(std::string* out) const;
  void start_file();
  bool lock_writer();
  void unlock_writer();
  // This load's file will not be committed: it stops writing, and the next load may write the file.
  void give_up_file() {
    broken_ = true;
    unlock_writer();
  }
  std::shared_ptr<void> allocate(size_t bytes);
  void remove_superseded(bool states) const;

  std::string dir_, path_, key_, prefix_, state_;
  std::vector<std::string> files_;  // the checkpoint files
  Precision precision_ = Precision::F32;
  std::vector<Entry> entries_;
  std::shared_ptr<const unsigned char> mapping_;    // read mode: the mapped file
  std::unordered_map<std::string, size_t> by_name_;  // read mode: entry index by name
  mutable bool missed_ = false;                       // read mode: a weight asked for was not in the file
  // write mode: the new file (tmp_path_, fd_), its next free page, the last allocation; broken_: a weight is not in it
  std::string tmp_path_;
  int fd_ = -1;
  uint64_t next_offset_ = 0, last_offset_ = 0;
  int lock_fd_ = -1;  // the writer lock (<prefix><key hash>.cclip-lock): held from a miss in open() while this load can write the file, released after the rename
  const void* last_pages_ = nullptr;
  bool broken_ = false;
};

}  // namespace cclip
