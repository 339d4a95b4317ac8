// Packed-weights cache file (packed_cache.h). Layout, native byte order (the file is for this machine only):
//   [0, 4096)      header: "CCLIPPK1", u32 layout version, u32 entry count, u64 index offset, u64 index bytes,
//                  u64 key bytes, then the key (the header grows past 4096 bytes when the key needs it, in pages)
//   pages          each entry's packed bytes at a 4096-byte-aligned offset
//   index          per entry: u32 name bytes, name, i32 n, i32 k, u64 offset, u64 bytes
#include "packed_cache.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>
#include <unordered_map>

#include "gemm_internal.h"

#if !defined(__EMSCRIPTEN__) && !defined(_WIN32)
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define CCLIP_HAVE_PACKED_CACHE 1
#endif

namespace cclip {

#if defined(CCLIP_HAVE_PACKED_CACHE)

namespace {

constexpr char kMagic[8] = {'C', 'C', 'L', 'I', 'P', 'P', 'K', '1'};
// Bump whenever the packed layout of any kernel variant changes (gemm.h, gemm_pack.cc).
constexpr uint32_t kLayoutVersion = 1;
constexpr uint64_t kPage = 4096;
constexpr size_t kFixedHeader = 8 + 4 + 4 + 8 + 8 + 8;
constexpr char kSuffix[] = ".cclip-packed";
constexpr char kLockSuffix[] = ".cclip-lock";  // <prefix><key hash>.cclip-lock: held by the one writer of that file
// How long a load waits for another process writing the same file before it loads without the cache.
constexpr int kWriterWaitSeconds = 120;

uint64_t round_page(uint64_t v) { return (v + kPage - 1) / kPage * kPage; }

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Reads a T at p if [p, p + sizeof(T)) lies before end.
template <class T>
bool take(const unsigned char*& p, const unsigned char* end, T* v) {
  if (static_cast<size_t>(end - p) < sizeof(T)) return false;
  std::memcpy(v, p, sizeof(T));
  p += sizeof(T);
  return true;
}

// mkdir -p (existing directories are fine; errors show up when the file is created).
void make_dirs(const std::string& dir) {
  for (size_t at = dir.find('/', 1); ; at = dir.find('/', at + 1)) {
    ::mkdir(dir.substr(0, at).c_str(), 0755);
    if (at == std::string::npos) break;
  }
}

// The packed bytes of a small fixed W [37, 21] (a partial panel, odd K, bf16 rounding ties) in this precision: a
// change to any variant's layout or rounding changes the key without anyone bumping kLayoutVersion.
uint64_t layout_fingerprint(Precision precision) {
  constexpr int n = 37, k = 21;
  std::vector<float> w(static_cast<size_t>(n) * k);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<float>(static_cast<int>((i * 2654435761u) % 20001u) - 10000) / 256.0f;
  const PackedWeight p = pack_weight(w.data(), n, k, precision);
  return fnv1a64(std::string(static_cast<const char*>(p.data.get()), p.data_bytes));
}

}  // namespace

// Which version of the checkpoint files this is (false if one cannot be stat'ed).
bool PackedCache::files_state(std::string* out) const {
  std::string state;
  for (const std::string& file : files_) {
    struct stat st;
    if (::stat(file.c_str(), &st) != 0) return false;
    state += ";file=" + file + ";dev=" + std::to_string(st.st_dev) + ";ino=" + std::to_string(st.st_ino) +
             ";size=" + std::to_string(st.st_size) + ";mtime=" + std::to_string(st.st_mtim.tv_sec) + "." +
             std::to_string(st.st_mtim.tv_nsec) + ";ctime=" + std::to_string(st.st_ctim.tv_sec) + "." +
             std::to_string(st.st_ctim.tv_nsec);
  }
  *out = std::move(state);
  return true;
}

std::unique_ptr<PackedCache> PackedCache::open(const std::string& dir, const std::vector<TensorSource>& tensors,
                                               Precision precision) {
  if (dir.empty()) return nullptr;
  const gemm_detail::KernelSet* ks = gemm_detail::kernels_for(precision);
  std::string key = "layout=" + std::to_string(kLayoutVersion) + ";precision=" +
                    (precision == Precision::BF16 ? "bf16" : "fp32") + ";kernels=" + ks->name +
                    ";nr=" + std::to_string(ks->nr) + ";k_align=" + std::to_string(ks->k_align) +
                    ";bf16_dot=" + (ks->bf16_dot ? "1" : "0") + ";packed=" + std::to_string(layout_fingerprint(precision));
  std::set<std::string> files;
  for (const TensorSource& t : tensors) files.insert(t.file);
  // What is cached: the variant, the files, and where each tensor lies in them (as the manifest read it).
  std::string identity = key, sources;
  for (const std::string& file : files) identity += ";file=" + file;
  for (const TensorSource& t : tensors) {
    sources += t.name + "@" + t.file + ":" + std::to_string(t.offset) + "+" + std::to_string(t.byte_length) + ":" +
               std::to_string(static_cast<int>(t.dtype));
    for (int64_t d : t.shape) sources += "," + std::to_string(d);
    for (int64_t d : t.strides) sources += "/" + std::to_string(d);
    sources += ";";
  }
  identity += ";sources=" + std::to_string(fnv1a64(sources));
  std::unique_ptr<PackedCache> cache(new PackedCache());
  cache->files_.assign(files.begin(), files.end());
  std::string state;
  if (!cache->files_state(&state)) return nullptr;  // the load itself reports the missing file
  cache->state_ = state;
  cache->dir_ = dir;
  cache->key_ = identity + state;
  cache->precision_ = precision;
  // <identity hash>-<key hash>: a new file for a changed checkpoint replaces the one of its earlier state.
  char name[40];
  std::snprintf(name, sizeof(name), "%016llx-", static_cast<unsigned long long>(fnv1a64(identity)));
  cache->prefix_ = name;
  std::snprintf(name, sizeof(name), "%016llx", static_cast<unsigned long long>(fnv1a64(cache->key_)));
  cache->path_ = dir + "/" + cache->prefix_ + name + kSuffix;
  if (cache->map_existing()) return cache;
  // One writer per file: a concurrent first load of the same checkpoint is waited for, and its file mapped.
  if (!cache->lock_writer()) return cache;  // still being written elsewhere: this load goes without the cache
  if (cache->map_existing()) {
    cache->unlock_writer();
    return cache;
  }
  cache->start_file();
  if (cache->fd_ < 0) cache->unlock_writer();  // no file will come from this load: let the next one try
  return cache;
}

// Takes the file's writer lock (flock: released by the kernel if the holder dies), waiting up to
// kWriterWaitSeconds for another holder. True when held, or when no lock can be made here (then start_file finds
// out whether the directory is writable); false after the wait.
bool PackedCache::lock_writer() {
  make_dirs(dir_);
  const std::string lock_path = path_.substr(0, path_.size() - (sizeof(kSuffix) - 1)) + kLockSuffix;
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  struct stat st;
  // Only a regular file of this user (another's, or a FIFO, could be held to stall every load).
  if (lock_fd_ >= 0 && (::fstat(lock_fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()))
    unlock_writer();
  if (lock_fd_ < 0) return true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kWriterWaitSeconds);
  while (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    const bool busy = errno == EWOULDBLOCK;
    if (!busy || std::chrono::steady_clock::now() >= deadline) {  // no locks here (e.g. ENOLCK): go on unlocked
      unlock_writer();
      return !busy;
    }
    ::usleep(50 * 1000);
  }
  return true;
}

void PackedCache::unlock_writer() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // closing the only descriptor releases the flock
  lock_fd_ = -1;
}

bool PackedCache::map_existing() {
  try {
    return map_existing_checked();
  } catch (const std::exception&) {  // e.g. bad_alloc for a hostile index: not a usable file
    entries_.clear();
    by_name_.clear();
    return false;
  }
}

bool PackedCache::map_existing_checked() {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  struct stat st;
  // Only a regular file of this user that nobody else may write (another user's could hold any bytes), and its key
  // checked before the whole file is mapped and read.
  std::string head(kFixedHeader + key_.size(), '\0');
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0 ||
      st.st_size < static_cast<off_t>(kPage) ||
      ::pread(fd, &head[0], head.size(), 0) != static_cast<ssize_t>(head.size()) ||
      head.compare(kFixedHeader, key_.size(), key_) != 0) {
    ::close(fd);
    return false;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return false;
  std::shared_ptr<const unsigned char> mapping(static_cast<const unsigned char*>(p),
                                               [size](const unsigned char* q) { ::munmap(const_cast<unsigned char*>(q), size); });
  const unsigned char* base = mapping.get();
  const unsigned char *at = base + sizeof(kMagic), *end = base + size;
  uint32_t version = 0, count = 0;
  uint64_t index_offset = 0, index_bytes = 0, key_bytes = 0;
  if (std::memcmp(base, kMagic, sizeof(kMagic)) != 0 || !take(at, end, &version) || !take(at, end, &count) ||
      !take(at, end, &index_offset) || !take(at, end, &index_bytes) || !take(at, end, &key_bytes) ||
      version != kLayoutVersion || key_bytes != key_.size() || key_bytes > size - kFixedHeader ||
      std::memcmp(at, key_.data(), key_.size()) != 0 || index_offset > size || index_bytes != size - index_offset)
    return false;
  const uint64_t data_begin = round_page(kFixedHeader + key_bytes);
  constexpr uint64_t kMinEntryBytes = 4 + 4 + 4 + 8 + 8;  // an entry with an empty name
  if (count == 0 || count > index_bytes / kMinEntryBytes) return false;
  at = base + index_offset;
  std::vector<Entry> entries(count);
  std::unordered_map<std::string, size_t> by_name;
  for (Entry& e : entries) {
    uint32_t name_bytes = 0;
    if (!take(at, end, &name_bytes) || name_bytes > static_cast<size_t>(end - at)) return false;
    e.name.assign(reinterpret_cast<const char*>(at), name_bytes);
    at += name_bytes;
    if (!take(at, end, &e.n) || !take(at, end, &e.k) || !take(at, end, &e.offset) || !take(at, end, &e.bytes) ||
        e.offset % kPage != 0 || e.offset < data_begin || e.offset > index_offset ||
        e.bytes > index_offset - e.offset || !by_name.emplace(e.name, by_name.size()).second)
      return false;
  }
  if (at != end) return false;
  entries_ = std::move(entries);
  by_name_ = std::move(by_name);
  mapping_ = std::move(mapping);
  return true;
}

PackedCache::~PackedCache() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
  unlock_writer();
}

bool PackedCache::lookup(const std::string& name, int n, int k, Precision precision, PackedWeight* out) const {
  if (!mapping_ || precision != precision_) return false;
  const auto found = by_name_.find(name);
  missed_ = missed_ || found == by_name_.end();
  if (found != by_name_.end()) {
    const Entry& e = entries_[found->second];
    PackedWeight w = gemm_detail::packed_layout(gemm_detail::kernels_for(precision), n, k, precision);
    if (e.n != n || e.k != k || e.bytes != w.data_bytes) {
      missed_ = true;
      return false;
    }
    // Aliases the mapping: the file stays mapped while any weight from it lives.
    w.data = std::shared_ptr<void>(mapping_, const_cast<unsigned char*>(mapping_.get() + e.offset));
    *out = std::move(w);
    return true;
  }
  return false;
}

// Write mode: a temporary file beside the final one, its first data page after the header (lock_writer made the
// directory).
void PackedCache::start_file() {
  remove_superseded(false);  // temporary files of dead writers
  tmp_path_ = path_ + ".XXXXXX";
  fd_ = ::mkostemp(&tmp_path_[0], O_CLOEXEC);  // mode 0600: the cache is this user's
  if (fd_ < 0) tmp_path_.clear();
  next_offset_ = round_page(kFixedHeader + key_.size());
}

PackedMemory PackedCache::file_memory() {
  if (mapping_ || fd_ < 0) return nullptr;
  return [this](size_t bytes) { return allocate(bytes); };
}

// `bytes` at the file's next page: reserved on disk, then mapped shared and writable (null, and the file given up,
// if either fails: the weight then goes to the heap).
std::shared_ptr<void> PackedCache::allocate(size_t bytes) {
  if (fd_ < 0 || broken_) return nullptr;
  const uint64_t length = round_page(std::max<uint64_t>(bytes, 1));
  void* p = MAP_FAILED;
  if (::posix_fallocate(fd_, static_cast<off_t>(next_offset_), static_cast<off_t>(length)) == 0)
    p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, static_cast<off_t>(next_offset_));
  if (p == MAP_FAILED) {
    give_up_file();
    return nullptr;
  }
  last_pages_ = p;
  last_offset_ = next_offset_;
  next_offset_ += length;
  return std::shared_ptr<void>(p, [length](void* q) { ::munmap(q, length); });
}

void PackedCache::record(const std::string& name, const PackedWeight& w) {
  if (mapping_ || fd_ < 0) return;
  if (w.data.get() != last_pages_) {  // packed on the heap: the file would miss it
    give_up_file();
    return;
  }
  Entry e;
  e.name = name;
  e.n = w.n;
  e.k = w.k;
  e.offset = last_offset_;
  e.bytes = w.data_bytes;
  e.pages = w.data;
#if defined(__linux__)
  // Start writing this weight to disk now, so commit's fdatasync waits for less.
  ::sync_file_range(fd_, static_cast<off_t>(e.offset), static_cast<off_t>(round_page(std::max<uint64_t>(e.bytes, 1))),
                    SYNC_FILE_RANGE_WRITE);
#endif
  entries_.push_back(std::move(e));
  last_pages_ = nullptr;
}

bool PackedCache::commit() {
  if (mapping_) {
    if (missed_) ::unlink(path_.c_str());  // it lacks what this model asks for: the next load writes a new one
    return true;
  }
  if (fd_ < 0) {
    unlock_writer();
    return false;
  }
  std::string header(kMagic, sizeof(kMagic)), index;
  put<uint32_t>(header, kLayoutVersion);
  put<uint32_t>(header, static_cast<uint32_t>(entries_.size()));
  for (const Entry& e : entries_) {
    put<uint32_t>(index, static_cast<uint32_t>(e.name.size()));
    index += e.name;
    put<int32_t>(index, e.n);
    put<int32_t>(index, e.k);
    put<uint64_t>(index, e.offset);
    put<uint64_t>(index, e.bytes);
  }
  put<uint64_t>(header, next_offset_);  // the index follows the last entry's pages
  put<uint64_t>(header, index.size());
  put<uint64_t>(header, key_.size());
  header += key_;
  auto write_at = [this](const std::string& data, uint64_t at) {
    return ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(at)) == static_cast<ssize_t>(data.size());
  };
  // The checkpoint must not have changed while it was read (the key would name other bytes), and the data must be
  // on disk before the file is renamed into place (a crash must not leave a valid header over lost pages).
  std::string state;
  bool good = !broken_ && !entries_.empty() && files_state(&state) && state == state_ &&
              write_at(index, next_offset_) && write_at(header, 0) && ::fdatasync(fd_) == 0;
  good = ::close(fd_) == 0 && good;
  fd_ = -1;
  good = good && ::rename(tmp_path_.c_str(), path_.c_str()) == 0;
  if (!good) ::unlink(tmp_path_.c_str());
  tmp_path_.clear();
  unlock_writer();  // after the rename: a load waiting for this file maps it
  // The model keeps these pages; nothing may write them from here on.
  for (Entry& e : entries_) {
    ::mprotect(e.pages.get(), round_page(std::max<uint64_t>(e.bytes, 1)), PROT_READ);
    e.pages.reset();
  }
  if (good) remove_superseded(true);
  return good;
}

// Files of the same checkpoint, precision and variant for other states of the checkpoint (a process that maps
// one keeps its pages until it unmaps them), and temporary files of this identity that no writer has touched for
// 10 minutes (a writer that died; a live one updates its file's mtime with every write).
void PackedCache::remove_superseded(bool states) const {
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return;
  const std::string own = path_.substr(dir_.size() + 1), tmp_mark = std::string(kSuffix) + ".";
  const size_t suffix = sizeof(kSuffix) - 1;
  const time_t stale_before = ::time(nullptr) - 600;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name, path = dir_ + "/" + name;
    if (name == own || name.compare(0, prefix_.size(), prefix_) != 0) continue;
    struct stat st;
    const size_t lock_suffix = sizeof(kLockSuffix) - 1;
    if (name.size() == own.size() && name.compare(name.size() - suffix, suffix, kSuffix) == 0) {
      if (states) ::unlink(path.c_str());
    } else if (name.size() == own.size() - suffix + lock_suffix &&
               name.compare(name.size() - lock_suffix, lock_suffix, kLockSuffix) == 0 &&
               name.compare(0, name.size() - lock_suffix, own, 0, own.size() - suffix) != 0) {
      if (states) ::unlink(path.c_str());  // the writer lock of another state's file
    }
    else if (name.size() == own.size() + 7 && name.find(tmp_mark) == own.size() - suffix &&
             ::stat(path.c_str(), &st) == 0 && st.st_mtime < stale_before)
      ::unlink(path.c_str());
  }
  ::closedir(d);
}

#else  // no mmap: no cache

std::unique_ptr<PackedCache> PackedCache::open(const std::string&, const std::vector<TensorSource>&, Precision) {
  return nullptr;
}
PackedCache::~PackedCache() = default;
bool PackedCache::map_existing() { return false; }
bool PackedCache::lookup(const std::string&, int, int, Precision, PackedWeight*) const {
  (void)precision_, (void)fd_, (void)next_offset_, (void)last_offset_, (void)last_pages_, (void)broken_, (void)missed_;
  return false;
}
PackedMemory PackedCache::file_memory() { return nullptr; }
bool PackedCache::lock_writer() { return false; }
void PackedCache::unlock_writer() { (void)lock_fd_; }
void PackedCache::record(const std::string&, const PackedWeight&) {}
bool PackedCache::commit() { return true; }
void PackedCache::start_file() {}
std::shared_ptr<void> PackedCache::allocate(size_t) { return nullptr; }
void PackedCache::remove_superseded(bool) const {}
bool PackedCache::files_state(std::string*) const { return false; }
bool PackedCache::map_existing_checked() { return false; }

#endif

}  // namespace cclip
