#include "mapped_file.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "file_reader.h"
#include "spec.h"

#if !defined(__EMSCRIPTEN__) && !defined(_WIN32)
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define CCLIP_HAVE_MMAP 1
#endif

namespace cclip {

bool load_mmap_enabled() {
#if defined(CCLIP_HAVE_MMAP)
  const char* env = std::getenv("CCLIP_LOAD_MMAP");
  return !(env && std::strcmp(env, "0") == 0);
#else
  return false;
#endif
}

MappedFile::MappedFile(const FileReader& reader, const unsigned char* data, uint64_t size)
    : reader_(reader), data_(data), size_(size) {}

#if defined(CCLIP_HAVE_MMAP)

std::unique_ptr<MappedFile> MappedFile::map(const FileReader& reader) {
  const uint64_t size = reader.size();
  if (!load_mmap_enabled() || size == 0 || size > SIZE_MAX) return nullptr;
  void* p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, reader.fd(), 0);
  if (p == MAP_FAILED) return nullptr;
  return std::unique_ptr<MappedFile>(new MappedFile(reader, static_cast<const unsigned char*>(p), size));
}

MappedFile::~MappedFile() { ::munmap(const_cast<unsigned char*>(data_), static_cast<size_t>(size_)); }

void MappedFile::check_still_holds(uint64_t end) const {
  struct stat st;
  if (::fstat(reader_.fd(), &st) != 0 || static_cast<uint64_t>(st.st_size) < end) {
    throw Error("E_CHECKPOINT_CORRUPT", reader_.path() + " shrank while the model was loading (now " +
                                            std::to_string(static_cast<long long>(st.st_size)) + " bytes, " +
                                            std::to_string(end) + " needed)");
  }
}

void MappedFile::release(uint64_t offset, uint64_t bytes) const {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t begin = offset / page * page;
  const uint64_t end = std::min(size_, offset + bytes);
  if (end > begin) ::madvise(const_cast<unsigned char*>(data_) + begin, static_cast<size_t>(end - begin), MADV_DONTNEED);
}

#else  // no mmap (wasm: a "file" is a source JavaScript reads for us): every read goes through FileReader

std::unique_ptr<MappedFile> MappedFile::map(const FileReader&) { return nullptr; }
MappedFile::~MappedFile() = default;
void MappedFile::check_still_holds(uint64_t) const { (void)reader_; }
void MappedFile::release(uint64_t, uint64_t) const {}

#endif

}  // namespace cclip
