// FileReader for the wasm build (replaces native/core/file_reader.cc): a "path" is the decimal id of a weight
// source that JavaScript registered (a Node file, a browser File/Blob or ArrayBuffer). Each read_at asks the
// JS host to copy that byte range into `dst`, which the core's loader points at its bounded staging buffer:
// weights stream into the heap a few MB at a time and no second copy of the checkpoint exists anywhere.
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "../../native/core/file_reader.h"
#include "host.h"

namespace cclip {

FileReader::FileReader(const std::string& path) : path_(path) {
  char* end = nullptr;
  const long id = std::strtol(path.c_str(), &end, 10);
  if (path.empty() || *end != '\0' || id < 0) throw std::runtime_error("unknown weight source " + path);
  fd_ = static_cast<int>(id);
  size_ = cclip_wasm::source_size(fd_);
}

FileReader::~FileReader() = default;

void FileReader::read_at(void* dst, size_t bytes, uint64_t offset) const {
  if (offset > size_ || bytes > size_ - offset) {
    throw std::runtime_error("source " + path_ + ": read of " + std::to_string(bytes) + " bytes at offset " +
                             std::to_string(offset) + " runs past its end (" + std::to_string(size_) +
                             " bytes; truncated?)");
  }
  if (bytes > 0) cclip_wasm::read_source(fd_, dst, bytes, offset);
}

}  // namespace cclip
