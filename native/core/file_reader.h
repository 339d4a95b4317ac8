// The one place that touches files: positional reads (pread) from read-only files, with clear errors.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace cclip {

class FileReader {
 public:
  explicit FileReader(const std::string& path);  // throws std::runtime_error if it cannot be opened
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }  // the open descriptor (mapped_file.cc maps it; a JS source id in the wasm build)
  // Reads exactly `bytes` bytes at `offset` or throws (short file, I/O error).
  void read_at(void* dst, size_t bytes, uint64_t offset) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace cclip
