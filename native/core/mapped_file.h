// A read-only memory mapping of a whole checkpoint file, so weights are converted and packed straight from the
// page cache (no staging copy, no read syscalls). Consumed ranges are dropped from the process's RSS as the
// load goes, so at no point does it hold the checkpoint and the packed weights both.
//
// SIGBUS: touching a mapped page past the end of a file that shrank after it was mapped kills the process.
// The loader checks every tensor's range against the size at map time (a file truncated after its manifest was
// read is refused with E_CHECKPOINT_CORRUPT) and again, with a fresh fstat, right before reading each tensor.
// What remains is a file cut by another process during the few milliseconds one tensor takes to read: writers
// that replace a checkpoint by rename (safetensors' save, our convert, every download) never cause it, since
// the mapping keeps the old inode. CCLIP_LOAD_MMAP=0 in the environment reads with pread instead.
#pragma once
#include <cstdint>
#include <memory>

namespace cclip {

class FileReader;

class MappedFile {
 public:
  // Maps the whole file `reader` has open; null when it cannot be mapped (the wasm build, an empty file, mmap
  // refused, CCLIP_LOAD_MMAP=0), and the caller reads through `reader` instead.
  static std::unique_ptr<MappedFile> map(const FileReader& reader);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  uint64_t size() const { return size_; }
  // Throws E_CHECKPOINT_CORRUPT unless the file still holds at least `end` bytes (see SIGBUS above).
  void check_still_holds(uint64_t end) const;
  // Drops the pages of [offset, offset + bytes) from this process (the page cache keeps them; a later read
  // maps them again).
  void release(uint64_t offset, uint64_t bytes) const;

 private:
  MappedFile(const FileReader& reader, const unsigned char* data, uint64_t size);
  const FileReader& reader_;
  const unsigned char* data_;
  uint64_t size_;
};

// Whether loads map their checkpoints (false in the wasm build and with CCLIP_LOAD_MMAP=0).
bool load_mmap_enabled();

}  // namespace cclip
