// Tests of the packed-weights cache (packed_cache.cc) through WeightLoader: the first load writes the file, the
// next maps it and gets bit-identical weights without reading the checkpoint; a checkpoint rewritten in place, a
// damaged or foreign file, another precision or shape never reuse stale bytes; a new state replaces the file of
// the old one; a concurrent first load waits for the writer and maps its file; a directory that cannot be written
// only loses the cache.
// Built and run by `native/core/tests/run.sh --test packed_cache_test`, from test/core-load.test.ts.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "../gemm.h"
#include "../packed_cache.h"
#include "../weights.h"

using namespace cclip;
using cclip_test::check;

namespace {

constexpr int kN = 70, kK = 300;  // a partial last panel for every panel width

std::string g_dir;  // a fresh temporary directory

std::vector<std::string> cache_files() {
  std::vector<std::string> out;
  if (DIR* d = opendir(g_dir.c_str())) {
    while (const dirent* e = readdir(d))
      if (std::strstr(e->d_name, ".cclip-packed")) out.push_back(g_dir + "/" + e->d_name);
    closedir(d);
  }
  return out;
}

// A checkpoint of two F32 tensors: "w" [kN, kK] and "b" [kN], values from `seed`.
void write_checkpoint(const std::string& path, float seed) {
  std::vector<float> values(static_cast<size_t>(kN) * kK + kN);
  for (size_t i = 0; i < values.size(); ++i) values[i] = seed * static_cast<float>((i * 7919) % 1000) / 1000.f - 0.5f;
  FILE* f = std::fopen(path.c_str(), "r+b");
  if (!f) f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(values.data(), 4, values.size(), f) != values.size() || std::fclose(f) != 0)
    throw std::runtime_error("cannot write " + path);
}

std::vector<TensorSource> sources_of(const std::string& path) {
  const uint64_t w_bytes = static_cast<uint64_t>(kN) * kK * 4;
  return {TensorSource{"w", SourceDType::F32, {kN, kK}, {kK, 1}, path, 0, w_bytes},
          TensorSource{"b", SourceDType::F32, {kN}, {1}, path, w_bytes, static_cast<uint64_t>(kN) * 4}};
}

struct Loaded {
  PackedWeight w;
  bool hit = false, committed = false;
};

// One load of "w" through the cache in `dir` (as ClipModel::load does it).
Loaded load(const std::string& path, Precision precision, ThreadPool& pool, const std::string& dir = g_dir) {
  const std::vector<TensorSource> sources = sources_of(path);
  WeightLoader loader(sources, {{"w", Shape{kN, kK}}, {"b", Shape{kN}}}, nullptr, &pool);
  std::unique_ptr<PackedCache> cache = PackedCache::open(dir, sources, precision);
  if (!cache) throw std::runtime_error("no cache on this platform");
  loader.use_cache(cache.get());
  Loaded out;
  out.w = loader.read_packed("w", kN, kK, precision);
  out.hit = cache->hit();
  out.committed = cache->commit();
  return out;
}

bool same(const PackedWeight& a, const PackedWeight& b) {
  return a.n == b.n && a.k == b.k && a.nr == b.nr && a.kernels == b.kernels && a.precision == b.precision &&
         a.data_bytes == b.data_bytes && std::memcmp(a.data.get(), b.data.get(), a.data_bytes) == 0;
}

// Packed from the checkpoint without any cache.
PackedWeight uncached(const std::string& path, Precision precision, ThreadPool& pool) {
  WeightLoader loader(sources_of(path), {{"w", Shape{kN, kK}}, {"b", Shape{kN}}}, nullptr, &pool);
  return loader.read_packed("w", kN, kK, precision);
}

// The /proc/self/maps line of the mapping that holds `p` ("" if none).
std::string mapping_of(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    unsigned long long begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &begin, &end) == 2 && at >= begin && at < end) return line;
  }
  return "";
}

void test_hit_and_miss(const std::string& ckpt, ThreadPool& pool) {
  for (Precision precision : {Precision::F32, Precision::BF16}) {
    const std::string p = precision == Precision::F32 ? "fp32" : "bf16";
    const Loaded first = load(ckpt, precision, pool);
    check(!first.hit && first.committed, p + ": the first load packs from the checkpoint and writes the cache file");
    const std::string map = mapping_of(first.w.data.get());
    check(map.find(".cclip-packed") != std::string::npos && map.find(" r--s ") != std::string::npos,
          p + ": the first load packed straight into the file's pages, read-only once committed (" + map + ")");
    check(same(first.w, uncached(ckpt, precision, pool)), p + ": and they equal the weight packed on the heap");
    const Loaded second = load(ckpt, precision, pool);
    check(second.hit, p + ": the second load maps the cache file");
    check(same(second.w, uncached(ckpt, precision, pool)), p + ": the mapped weight equals the packed one, bit for bit");
    check(reinterpret_cast<uintptr_t>(second.w.data.get()) % 64 == 0, p + ": mapped panels are 64-byte aligned");
  }
  check(cache_files().size() == 2, "one file per precision (" + std::to_string(cache_files().size()) + ")");
}

void test_changed_checkpoint(const std::string& ckpt, ThreadPool& pool) {
  const PackedWeight before = load(ckpt, Precision::F32, pool).w;
  usleep(20000);  // a distinct mtime / ctime even on coarse clocks
  write_checkpoint(ckpt, 3.0f);  // rewritten in place: same size, same inode
  const Loaded after = load(ckpt, Precision::F32, pool);
  check(!after.hit, "a checkpoint rewritten in place does not reuse the cache file");
  check(same(after.w, uncached(ckpt, Precision::F32, pool)) && !same(after.w, before), "and its new values are packed");
  check(load(ckpt, Precision::F32, pool).hit, "the file written for the new state is used next");
  // Temporary files a dead writer left: removed once untouched for 10 minutes, a live writer's kept.
  const std::string own = PackedCache::open(g_dir, sources_of(ckpt), Precision::F32)->path();
  const std::string dead = own + ".dead01", live = own + ".live01";
  write_checkpoint(dead, 1.0f);
  write_checkpoint(live, 1.0f);
  const struct timespec old_times[2] = {{time(nullptr) - 3600, 0}, {time(nullptr) - 3600, 0}};
  utimensat(AT_FDCWD, dead.c_str(), old_times, 0);
  usleep(20000);
  write_checkpoint(ckpt, 4.0f);
  load(ckpt, Precision::F32, pool);
  check(access(dead.c_str(), F_OK) != 0 && access(live.c_str(), F_OK) == 0,
        "a new state's write removes a dead writer's temporary file, not a live one's");
  unlink(live.c_str());
  check(cache_files().size() == 2, "the new state's file replaced the old one (" + std::to_string(cache_files().size()) + " files)");
}

void test_damaged_files(const std::string& ckpt, ThreadPool& pool) {
  const PackedWeight want = uncached(ckpt, Precision::F32, pool);
  load(ckpt, Precision::F32, pool);
  for (const char* damage : {"truncated", "bad magic", "bad index", "huge count", "empty"}) {
    for (const std::string& f : cache_files()) {
      struct stat st;
      stat(f.c_str(), &st);
      if (!std::strcmp(damage, "truncated")) {
        truncate(f.c_str(), st.st_size - 100);
      } else if (!std::strcmp(damage, "empty")) {
        truncate(f.c_str(), 0);
      } else {
        FILE* h = std::fopen(f.c_str(), "r+b");
        std::fseek(h, !std::strcmp(damage, "bad magic") ? 0 : !std::strcmp(damage, "huge count") ? 12 : st.st_size - 12, SEEK_SET);
        std::fputs(!std::strcmp(damage, "huge count") ? "\xff\xff\xff\x7f" : "garbage!", h);  // count: 2^31 - 1
        std::fclose(h);
      }
    }
    const Loaded l = load(ckpt, Precision::F32, pool);
    check(!l.hit && same(l.w, want) && l.committed, std::string(damage) + " cache files are ignored and rewritten");
    check(load(ckpt, Precision::F32, pool).hit, std::string("after the ") + damage + " file was rewritten, it is used");
  }
}

void test_shape_and_unwritable(const std::string& ckpt, ThreadPool& pool) {
  const std::vector<TensorSource> sources = sources_of(ckpt);
  std::unique_ptr<PackedCache> cache = PackedCache::open(g_dir, sources, Precision::F32);
  PackedWeight w;
  check(cache->hit() && cache->lookup("w", kN, kK, Precision::F32, &w), "the cache holds w [70, 300]");
  check(!cache->lookup("w", kK, kN, Precision::F32, &w) && !cache->lookup("w", kN, kK, Precision::BF16, &w) &&
            !cache->lookup("x", kN, kK, Precision::F32, &w),
        "another shape, precision or name is not served from it");
  const std::string blocked = g_dir + "/a-file";
  write_checkpoint(blocked, 1.0f);  // a regular file where the directory would go
  const Loaded l = load(ckpt, Precision::F32, pool, blocked + "/cache");
  check(!l.hit && !l.committed && same(l.w, uncached(ckpt, Precision::F32, pool)),
        "a cache directory that cannot be created: the load still succeeds, without a cache");
}

void test_replaced_during_load_and_trust(const std::string& ckpt, ThreadPool& pool) {
  // Replaced by rename while the load runs: the file read is not the one the key names, so nothing is committed.
  for (const std::string& f : cache_files()) unlink(f.c_str());
  const std::vector<TensorSource> sources = sources_of(ckpt);
  std::unique_ptr<PackedCache> cache = PackedCache::open(g_dir, sources, Precision::F32);
  WeightLoader loader(sources, {{"w", Shape{kN, kK}}, {"b", Shape{kN}}}, nullptr, &pool);
  loader.use_cache(cache.get());
  loader.read_packed("w", kN, kK, Precision::F32);
  const std::string replacement = ckpt + ".new";
  write_checkpoint(replacement, 5.0f);
  rename(replacement.c_str(), ckpt.c_str());
  check(!cache->commit() && cache_files().empty(), "a checkpoint replaced during the load: no cache file is committed");
  // Written files are this user's alone; one that others may write is not trusted.
  load(ckpt, Precision::F32, pool);
  struct stat st;
  stat(cache_files()[0].c_str(), &st);
  check((st.st_mode & 077) == 0 && st.st_uid == geteuid(), "the cache file is private to its user (mode 0600)");
  chmod(cache_files()[0].c_str(), 0666);
  check(!load(ckpt, Precision::F32, pool).hit, "a cache file that others may write is not used");
  // A file that lacks a weight the model asks for is dropped at commit, so the next load writes a complete one.
  check(load(ckpt, Precision::F32, pool).hit, "the rewritten file is used");
  {
    std::unique_ptr<PackedCache> partial = PackedCache::open(g_dir, sources_of(ckpt), Precision::F32);
    PackedWeight w;
    check(!partial->lookup("not-there", kN, kK, Precision::F32, &w), "a weight the file lacks is a miss");
    partial->commit();
  }
  check(cache_files().empty(), "and the file that lacked it is removed");
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The writer lock beside a cache file.
std::string lock_of(const std::string& file) {
  return file.substr(0, file.size() - std::strlen(".cclip-packed")) + ".cclip-lock";
}

void test_concurrent_first_loads(const std::string& ckpt, ThreadPool& pool) {
  for (const std::string& f : cache_files()) unlink(f.c_str());
  // A writer that takes 300 ms between opening the cache and committing it, and a second load started meanwhile
  // (its own descriptors: flock treats it as another process would be treated).
  // The writer commits only 300 ms after the second load has begun, so that load always meets the lock.
  std::atomic<bool> writer_open{false}, second_started{false};
  Loaded second;
  std::thread other([&] {
    while (!writer_open.load()) usleep(1000);
    ThreadPool own_pool(1);
    second_started.store(true);
    second = load(ckpt, Precision::F32, own_pool);
  });
  {
    const std::vector<TensorSource> sources = sources_of(ckpt);
    std::unique_ptr<PackedCache> cache = PackedCache::open(g_dir, sources, Precision::F32);
    WeightLoader loader(sources, {{"w", Shape{kN, kK}}, {"b", Shape{kN}}}, nullptr, &pool);
    loader.use_cache(cache.get());
    loader.read_packed("w", kN, kK, Precision::F32);
    writer_open.store(true);
    while (!second_started.load()) usleep(1000);
    usleep(300 * 1000);
    check(!cache->hit() && cache->commit(), "the first of two concurrent loads writes the file");
  }
  other.join();
  // Without the lock, a second load that starts before the commit misses and packs its own copy.
  check(second.hit, "a second load started while the first was writing waits for it and maps its file");
  check(same(second.w, uncached(ckpt, Precision::F32, pool)), "and gets the packed weight");
  // A lock file left behind holds nobody up; nor does a writer that went away without committing.
  const std::string file = cache_files()[0];
  const std::string lock = lock_of(file);
  check(access(lock.c_str(), F_OK) == 0, "the writer's lock file sits beside its file");
  unlink(file.c_str());
  {
    std::unique_ptr<PackedCache> abandoned = PackedCache::open(g_dir, sources_of(ckpt), Precision::F32);
    check(!abandoned->hit(), "with the file gone, a load becomes its writer");
  }  // destroyed without commit
  const auto t0 = std::chrono::steady_clock::now();
  const Loaded after = load(ckpt, Precision::F32, pool);
  const double ms = ms_since(t0);
  check(!after.hit && after.committed && ms < 5000,
        "after an abandoned write, the next load writes the file without waiting (" + std::to_string(ms) + " ms)");
  // A writer that cannot write lets go of the lock at once: here the directory is read-only (for this user; root
  // ignores modes, so only where it applies).
  unlink(cache_files()[0].c_str());
  chmod(g_dir.c_str(), 0555);
  if (access(g_dir.c_str(), W_OK) != 0) {
    std::unique_ptr<PackedCache> cannot = PackedCache::open(g_dir, sources_of(ckpt), Precision::F32);
    double waited = 0;
    std::thread t([&] {
      const auto t0 = std::chrono::steady_clock::now();
      std::unique_ptr<PackedCache> next = PackedCache::open(g_dir, sources_of(ckpt), Precision::F32);
      waited = ms_since(t0);
    });
    t.join();
    check(waited < 5000, "a load that cannot write the file does not hold others up (" + std::to_string(waited) + " ms)");
  }
  chmod(g_dir.c_str(), 0755);
  // A new state's file removes the old state's lock with it.
  load(ckpt, Precision::F32, pool);
  const std::string old_file = cache_files()[0];
  const std::string old_lock = lock_of(old_file);
  usleep(20000);
  write_checkpoint(ckpt, 6.0f);
  check(load(ckpt, Precision::F32, pool).committed && access(old_lock.c_str(), F_OK) != 0,
        "the superseded state's lock file is removed with its file");
}

}  // namespace

int main() {
  char dir[] = "/tmp/cclip-packed-test-XXXXXX";
  if (!mkdtemp(dir)) return 2;
  g_dir = dir;
  const std::string ckpt = g_dir + "/model.bin";
  write_checkpoint(ckpt, 1.0f);
  ThreadPool pool(2);
  test_hit_and_miss(ckpt, pool);
  test_changed_checkpoint(ckpt, pool);
  test_damaged_files(ckpt, pool);
  test_shape_and_unwritable(ckpt, pool);
  test_replaced_during_load_and_trust(ckpt, pool);
  test_concurrent_first_loads(ckpt, pool);
  std::system(("rm -rf '" + g_dir + "'").c_str());
  return cclip_test::summary();
}
