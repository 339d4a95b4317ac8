// FileReader for the wasm build (replaces native/core/file_reader.cc): a "path" names a weight source that
// JavaScript registered with the load request (a Node file, a browser File/Blob or ArrayBuffer). Each read_at asks the
// JS host to copy that byte range into `dst`, which the core's loader points at its bounded staging buffer:
// weights stream into the heap a few MB at a time and no second copy of the checkpoint exists anywhere.
#include <stdexcept>
#include <string>

#include "../../native/core/file_reader.h"
#include "host.h"

namespace cclip {

FileReader::FileReader(const std::string& path) : path_(path) { fd_ = cclip_wasm::source_id(path, &size_); }

FileReader::~FileReader() = default;

void FileReader::read_at(void* dst, size_t bytes, uint64_t offset) const {
  if (offset > size_ || bytes > size_ - offset) {
    throw std::runtime_error(path_ + ": read of " + std::to_string(bytes) + " bytes at offset " +
                             std::to_string(offset) + " runs past its end (" + std::to_string(size_) +
                             " bytes; truncated?)");
  }
  if (bytes > 0) cclip_wasm::read_source(fd_, dst, bytes, offset);
}

}  // namespace cclip
