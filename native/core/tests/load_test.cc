// Tests of the load path (weights.cc, mapped_file.cc, gemm_pack.cc): weights packed from a mapping are
// bit-identical to the documented layout (gemm.h) packed from the values the pread path reads, for every source
// dtype, aligned / unaligned / strided sources, both precisions, every kernel variant's panel width, with and
// without a pool; the first bad element is the one named, whichever thread meets a bad value first; files
// truncated before or while loading are refused with E_CHECKPOINT_CORRUPT (no SIGBUS); consumed pages leave RSS.
// Built and run by `native/core/tests/run.sh --test load_test`, from test/core-load.test.ts.
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "check.h"
#include "../gemm.h"
#include "../gemm_internal.h"
#include "../gemm_pack.h"
#include "../mapped_file.h"
#include "../weights.h"

using namespace cclip;
using cclip_test::check;

namespace {

// "CODE: message" of what fn throws, or "none".
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return std::string(e.code()) + ": " + e.what();
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  }
  return "none";
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::vector<unsigned char>& bytes) {
    char name[] = "/tmp/cclip-load-test-XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0 || write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
      throw std::runtime_error("cannot write a temp file");
    }
    close(fd);
    path = name;
  }
  ~TempFile() { unlink(path.c_str()); }
};

void with_mmap(bool on) {
  if (on) {
    unsetenv("CCLIP_LOAD_MMAP");
  } else {
    setenv("CCLIP_LOAD_MMAP", "0", 1);
  }
}

// The layout gemm.h documents, written here independently of gemm_pack.cc: panel jp, row kk, lane j holds
// W[jp * nr + j, kk] (zero past N); in bf16 (float_to_bf16) u16 slot 2j holds lane j, slot 2j + 1 lane j + nr/2.
// The bf16_dot variants' layout (gemm_internal.h) instead: panel jp, pair row q: [nr][2] = (W[col, 2q],
// W[col, 2q + 1]) in bf16, zero past N and K (K padded to a multiple of k_align).
std::vector<unsigned char> reference_pack_k_pairs(const std::vector<float>& w, int n, int k, int nr, int k_align) {
  const int panels = (n + nr - 1) / nr, kp = (k + k_align - 1) / k_align * k_align / 2;
  std::vector<unsigned char> out(static_cast<size_t>(panels) * nr * kp * 4, 0);
  for (int jp = 0; jp < panels; ++jp)
    for (int q = 0; q < kp; ++q)
      for (int j = 0; j < nr; ++j)
        for (int half = 0; half < 2; ++half) {
          const int col = jp * nr + j, kk = 2 * q + half;
          const uint16_t h = col < n && kk < k ? float_to_bf16(w[static_cast<size_t>(col) * k + kk]) : 0;
          std::memcpy(&out[(((static_cast<size_t>(jp) * kp + q) * nr + j) * 2 + half) * 2], &h, 2);
        }
  return out;
}

std::vector<unsigned char> reference_pack(const std::vector<float>& w, int n, int k, int nr, Precision precision) {
  const int panels = (n + nr - 1) / nr;
  const size_t esize = precision == Precision::F32 ? 4 : 2;
  std::vector<unsigned char> out(static_cast<size_t>(panels) * nr * k * esize, 0);
  for (int jp = 0; jp < panels; ++jp)
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < nr; ++j) {
        const int col = jp * nr + j;
        const float v = col < n ? w[static_cast<size_t>(col) * k + kk] : 0.f;
        const size_t row = (static_cast<size_t>(jp) * k + kk) * nr;
        if (precision == Precision::F32) {
          std::memcpy(&out[(row + j) * 4], &v, 4);
        } else {
          const int slot = j < nr / 2 ? 2 * j : 2 * (j - nr / 2) + 1;
          const uint16_t h = col < n ? float_to_bf16(v) : 0;
          std::memcpy(&out[(row + slot) * 2], &h, 2);
        }
      }
  return out;
}

// The reference layout of what `p` was packed for.
std::vector<unsigned char> reference_for(const PackedWeight& p, const std::vector<float>& w) {
  return p.kernels->bf16_dot ? reference_pack_k_pairs(w, p.n, p.k, p.nr, p.kernels->k_align) : reference_pack(w, p.n, p.k, p.nr, p.precision);
}

bool same_bytes(const PackedWeight& p, const std::vector<unsigned char>& want) {
  return p.data_bytes == want.size() && std::memcmp(p.data.get(), want.data(), want.size()) == 0;
}

uint32_t next_random(uint32_t& state) {
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

// `count` finite values of `dtype`, random bits over the whole exponent range (subnormals and rounding ties
// of the bf16 conversion included), as the checkpoint stores them.
std::vector<unsigned char> random_elements(SourceDType dtype, size_t count, uint32_t seed) {
  std::vector<unsigned char> out;
  uint32_t state = seed;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits = next_random(state);
    if (dtype == SourceDType::F32 || dtype == SourceDType::F64) {
      bits = (bits & 0x807fffffu) | ((bits >> 23) % 150 + 20) << 23;  // |x| < 2^43: far below the 1e18 limit
      if (i % 5 == 0) bits = (bits & 0xffff0000u) | 0x8000u;            // a bf16 rounding tie
      if (i % 97 == 0) bits &= 0x807fffffu;                             // a subnormal
      float f;
      std::memcpy(&f, &bits, 4);
      if (dtype == SourceDType::F32) {
        out.insert(out.end(), reinterpret_cast<unsigned char*>(&f), reinterpret_cast<unsigned char*>(&f) + 4);
      } else {
        const double d = f;
        out.insert(out.end(), reinterpret_cast<const unsigned char*>(&d), reinterpret_cast<const unsigned char*>(&d) + 8);
      }
    } else {
      uint16_t h = static_cast<uint16_t>(bits);
      if (dtype == SourceDType::F16 && ((h >> 10) & 0x1f) == 0x1f) h &= 0xbfff;  // not inf / NaN
      if (dtype == SourceDType::BF16) h &= 0xbfff;                            // |x| < 2: far below the limit
      out.push_back(static_cast<unsigned char>(h));
      out.push_back(static_cast<unsigned char>(h >> 8));
    }
  }
  return out;
}

struct Checkpoint {
  std::vector<unsigned char> bytes;
  std::vector<TensorSource> sources;
  std::vector<std::pair<std::string, Shape>> expected;

  // W [n, k]; `transposed` stores it column-major (strides [1, n]) as torch.save of a .t() does; `misalign`
  // bytes of padding before it break 4-byte alignment.
  void add(const std::string& name, SourceDType dtype, int n, int k, bool transposed, int misalign, uint32_t seed) {
    bytes.resize(bytes.size() + misalign, 0);
    const std::vector<unsigned char> data = random_elements(dtype, static_cast<size_t>(n) * k, seed);
    const Shape strides = transposed ? Shape{1, n} : Shape{k, 1};
    sources.push_back(TensorSource{name, dtype, {n, k}, strides, "", bytes.size(), data.size()});
    expected.emplace_back(name, Shape{n, k});
    bytes.insert(bytes.end(), data.begin(), data.end());
  }
  void set_file(const std::string& path) {
    for (TensorSource& s : sources) s.file = path;
  }
};

const char* dtype_name(SourceDType d) {
  return d == SourceDType::F32 ? "F32" : d == SourceDType::F16 ? "F16" : d == SourceDType::BF16 ? "BF16" : "F64";
}

void test_packed_bit_identical(ThreadPool& pool) {
  Checkpoint ckpt;
  struct Case {
    std::string name;
    int n, k;
  };
  std::vector<Case> cases;
  uint32_t seed = 1;
  for (SourceDType dtype : {SourceDType::F32, SourceDType::F16, SourceDType::BF16, SourceDType::F64}) {
    for (const auto& [n, k] : std::vector<std::pair<int, int>>{{37, 70}, {300, 520}, {1, 3}}) {
      for (const auto& [transposed, misalign] : std::vector<std::pair<bool, int>>{{false, 0}, {false, 2}, {true, 0}}) {
        const std::string name = std::string(dtype_name(dtype)) + " " + std::to_string(n) + "x" + std::to_string(k) +
                                 (transposed ? " strided" : misalign ? " unaligned" : "");
        ckpt.add(name, dtype, n, k, transposed, misalign, seed++);
        cases.push_back({name, n, k});
      }
    }
  }
  const TempFile file(ckpt.bytes);
  ckpt.set_file(file.path);
  with_mmap(false);
  WeightLoader pread_loader(ckpt.sources, ckpt.expected, nullptr, nullptr);  // the path loads took before mmap
  WeightLoader pread_pooled(ckpt.sources, ckpt.expected, nullptr, &pool);
  with_mmap(true);
  WeightLoader mapped(ckpt.sources, ckpt.expected, nullptr, &pool);
  WeightLoader mapped_one_thread(ckpt.sources, ckpt.expected, nullptr, nullptr);
  check(!pread_loader.mapped(cases[0].name), "CCLIP_LOAD_MMAP=0 reads with pread");
  check(mapped.mapped(cases[0].name), "a checkpoint file is mapped by default");
  int identical = 0, total = 0;
  for (const Case& c : cases) {
    const std::vector<float> values = pread_loader.read(c.name);
    for (Precision precision : {Precision::F32, Precision::BF16}) {
      const PackedWeight from_map = mapped.read_packed(c.name, c.n, c.k, precision);
      const std::vector<unsigned char> want = reference_for(from_map, values);
      const bool ok = same_bytes(from_map, want) && same_bytes(mapped_one_thread.read_packed(c.name, c.n, c.k, precision), want) &&
                      same_bytes(pread_loader.read_packed(c.name, c.n, c.k, precision), want) &&
                      same_bytes(pread_pooled.read_packed(c.name, c.n, c.k, precision), want) &&
                      same_bytes(pack_weight(values.data(), c.n, c.k, precision), want);
      check(ok, c.name + (precision == Precision::F32 ? " fp32" : " bf16") +
                    ": packed from the mapping (pool and one thread), from pread and by pack_weight, bit-identical to the reference layout");
      identical += ok;
      ++total;
    }
    check(mapped.read(c.name) == values, c.name + ": read() from the mapping equals read() with pread");
  }
  std::printf("# %d of %d packed weights bit-identical\n", identical, total);
}

void test_every_panel_width_and_special_values(ThreadPool& pool) {
  // NaN, infinities, signed zeros, subnormals and bf16 ties through pack_weight_rows_with of every variant.
  const int n = 45, k = 131;
  std::vector<float> w(static_cast<size_t>(n) * k);
  const uint32_t specials[] = {0x7fc00000u, 0xff800000u, 0x7f800000u, 0x80000000u, 0x00000001u, 0x3f808000u,
                               0x3f818000u, 0x7f7fffffu, 0xff7fffffu, 0x7fa00000u, 0x00800000u};
  uint32_t state = 7;
  for (size_t i = 0; i < w.size(); ++i) {
    uint32_t bits = i % 3 == 0 ? specials[(i / 3) % (sizeof specials / 4)] : next_random(state);
    std::memcpy(&w[i], &bits, 4);
  }
  using gemm_detail::KernelSet;
  for (const KernelSet* ks : {gemm_detail::kernels_generic(), gemm_detail::kernels_avx2(), gemm_detail::kernels_avx512(),
                              gemm_detail::kernels_avx512bf16(), gemm_detail::kernels_amx(), gemm_detail::kernels_neon()}) {
    if (!ks) continue;
    for (Precision precision : {Precision::F32, Precision::BF16}) {
      const PackedWeight parallel = gemm_detail::pack_weight_parallel_with(ks, w.data(), n, k, precision, &pool);
      const std::vector<unsigned char> want = reference_for(parallel, w);
      const bool ok = same_bytes(parallel, want) && same_bytes(gemm_detail::pack_weight_with(ks, w.data(), n, k, precision), want) &&
                      parallel.kernels->bf16_dot == (ks->bf16_dot && precision == Precision::BF16);
      check(ok, std::string(ks->name) + (precision == Precision::F32 ? " fp32" : " bf16") +
                    ": NaN / inf / subnormal / tie values pack bit-identically (pool and one thread)");
    }
  }
}

void test_first_bad_element(ThreadPool& pool) {
  // Two bad values in different panels (and pool chunks): the first is named whichever thread meets the other first.
  for (SourceDType dtype : {SourceDType::F32, SourceDType::F16}) {
    Checkpoint ckpt;
    const int n = 2048, k = 640;  // over 1M elements: read() converts on the pool too
    ckpt.add("w", dtype, n, k, false, 0, 99);
    // The tensor's first bad value ends the pool's first chunk (2 threads x 4 chunks: rows 0-255, conversion
    // blocks 0-19), the other starts the second, so the second thread meets its bad value first.
    const size_t second = static_cast<size_t>(255) * k + 448, first = static_cast<size_t>(256) * k + 3;
    const size_t itemsize = dtype == SourceDType::F32 ? 4 : 2;
    for (size_t at : {first, second}) {
      unsigned char* p = ckpt.bytes.data() + ckpt.sources[0].offset + at * itemsize;
      if (dtype == SourceDType::F32) {
        const float nan = NAN;
        std::memcpy(p, &nan, 4);
      } else {
        p[0] = 0x00, p[1] = 0x7c;  // +inf
      }
    }
    const TempFile file(ckpt.bytes);
    ckpt.set_file(file.path);
    for (bool use_mmap : {true, false}) {
      with_mmap(use_mmap);
      WeightLoader loader(ckpt.sources, ckpt.expected, nullptr, &pool);
      const std::string label = std::string(dtype_name(dtype)) + (use_mmap ? " mapped" : " pread");
      for (int round = 0; round < 4; ++round) {
        const std::string e1 = error_of([&] { loader.read_packed("w", n, k, Precision::BF16); });
        const std::string e2 = error_of([&] { loader.read("w"); });
        const std::string want = "element " + std::to_string(second) + ":";
        const bool ok = e1.rfind("E_CHECKPOINT_CORRUPT: tensor w holds", 0) == 0 && e1.find(want) != std::string::npos &&
                        e2.rfind("E_CHECKPOINT_CORRUPT", 0) == 0 && e2.find(want) != std::string::npos;
        check(ok, label + ": a bad weight fails with E_CHECKPOINT_CORRUPT naming the tensor's first bad element (" + e1 + ")");
      }
    }
  }
  with_mmap(true);
}

uint64_t rss_file_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("RssFile:", 0) == 0) return std::strtoull(line.c_str() + 8, nullptr, 10);
  return 0;
}

void test_truncation_and_release(ThreadPool& pool) {
  Checkpoint ckpt;
  const int n = 2048, k = 2048;  // 16 MB each
  ckpt.add("a", SourceDType::F32, n, k, false, 0, 5);
  ckpt.add("b", SourceDType::F32, n, k, false, 0, 6);
  ckpt.add("c", SourceDType::BF16, n, k, false, 0, 7);
  const TempFile file(ckpt.bytes);
  ckpt.set_file(file.path);
  with_mmap(true);
  {
    WeightLoader loader(ckpt.sources, ckpt.expected, nullptr, &pool);
    check(loader.mapped("a"), "the test checkpoint is mapped");
    const uint64_t before = rss_file_kb();
    const PackedWeight a = loader.read_packed("a", n, k, Precision::F32);
    const std::vector<float> b = loader.read("b");
    const uint64_t after = rss_file_kb();
    check(after < before + 4096, "pages of consumed tensors leave the process's RSS (file-backed RSS grew " +
                                     std::to_string(static_cast<long long>(after) - static_cast<long long>(before)) +
                                     " KB after reading 32 MB)");
    // The file shrinks under the open mapping: reading "c" (now past the end) must throw, not raise SIGBUS.
    if (truncate(file.path.c_str(), static_cast<off_t>(ckpt.sources[2].offset + 100)) != 0) throw std::runtime_error("truncate");
    const std::string e1 = error_of([&] { loader.read_packed("c", n, k, Precision::BF16); });
    const std::string e2 = error_of([&] { loader.read("c"); });
    check(e1.rfind("E_CHECKPOINT_CORRUPT", 0) == 0 && e1.find("shrank") != std::string::npos,
          "a file cut while the model loads fails read_packed with E_CHECKPOINT_CORRUPT, no SIGBUS (" + e1 + ")");
    check(e2.rfind("E_CHECKPOINT_CORRUPT", 0) == 0, "and read() too (" + e2 + ")");
  }
  // Cut after the manifest was read, before the load: refused when the file is mapped (both paths).
  for (bool use_mmap : {true, false}) {
    with_mmap(use_mmap);
    const std::string e = error_of([&] { WeightLoader loader(ckpt.sources, ckpt.expected, nullptr, &pool); });
    check(e.rfind("E_CHECKPOINT_CORRUPT", 0) == 0 && e.find("truncated") != std::string::npos,
          std::string(use_mmap ? "mapped" : "pread") + ": a file truncated after its manifest was read is E_CHECKPOINT_CORRUPT (" + e + ")");
  }
  with_mmap(true);
  // An empty file cannot be mapped: the pread fallback serves it (here: a zero-element tensor).
  const TempFile empty(std::vector<unsigned char>{});
  std::vector<TensorSource> sources = {TensorSource{"z", SourceDType::F32, {0, 4}, {4, 1}, empty.path, 0, 0}};
  WeightLoader loader(sources, {{"z", Shape{0, 4}}}, nullptr, &pool);
  check(!loader.mapped("z") && loader.read_packed("z", 0, 4, Precision::F32).n == 0, "an empty file falls back to pread");
}

}  // namespace

int main() {
  ThreadPool pool(2);
  test_packed_bit_identical(pool);
  test_every_panel_width_and_special_values(pool);
  test_first_bad_element(pool);
  test_truncation_and_release(pool);
  return cclip_test::summary();
}
