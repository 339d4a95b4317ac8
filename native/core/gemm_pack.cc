// Packs W[N, K] into column panels (layout: gemm.h, PackedWeight), one panel at a time from the rows that
// feed it, panels spread over the thread pool (each thread writes, and page-faults in, its own panels).
#include "gemm_pack.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

#include "gemm_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#endif

#if defined(__linux__) && !defined(__EMSCRIPTEN__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels refuse it (EINVAL) and the pages fault in as written
#endif
#define CCLIP_PREFAULT 1
#endif

namespace cclip {

namespace {
thread_local const PackedMemory* t_packed_memory = nullptr;  // the innermost ScopedPackedMemory's, or null
}  // namespace

ScopedPackedMemory::ScopedPackedMemory(PackedMemory memory) : memory_(std::move(memory)), outer_(t_packed_memory) {
  t_packed_memory = &memory_;
}
ScopedPackedMemory::~ScopedPackedMemory() { t_packed_memory = outer_; }

namespace gemm_detail {
namespace {

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Faults in the whole pages of [begin, end) in one call: cheaper than a page fault per page as the pack writes.
void prefault(char* begin, char* end) {
#if defined(CCLIP_PREFAULT)
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
  const uintptr_t e = reinterpret_cast<uintptr_t>(end) / page * page;
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_WRITE);
#else
  (void)begin;
  (void)end;
#endif
}

// Row j of `rows` (j < valid) converted to bf16 over [k0, k1), or zeros past the valid rows.
void bf16_row_block(const float* rows, int valid, int k, int j, int k0, int k1, uint16_t* out) {
  if (j < valid) {
    const float* src = rows + static_cast<size_t>(j) * k;
    for (int kk = k0; kk < k1; ++kk) out[kk - k0] = float_to_bf16(src[kk]);
  } else {
    std::fill(out, out + (k1 - k0), uint16_t{0});
  }
}

// Copies a packed K block from an L1 buffer to its place in the panel with non-temporal stores where the ISA has
// them (x86-64: SSE2), so the fresh destination lines are written without first being read from memory. src is
// 16-byte aligned; the panel is complete only after store_fence().
void stream_out(void* dst, const void* src, size_t bytes) {
#if defined(__x86_64__) || defined(_M_X64)
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  if (reinterpret_cast<uintptr_t>(d) % 16 != 0) {  // (packed weights start 64-byte aligned: not expected)
    std::memcpy(d, s, bytes);
    return;
  }
  size_t i = 0;
  for (; i + 16 <= bytes; i += 16)
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), _mm_load_si128(reinterpret_cast<const __m128i*>(s + i)));
  std::memcpy(d + i, s + i, bytes - i);
#else
  std::memcpy(dst, src, bytes);
#endif
}

void store_fence() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_sfence();  // non-temporal stores are weakly ordered: visible to other threads before the pool's barrier
#endif
}

constexpr int kPackBlock = 64;  // K rows per block (even: a bf16 pair block holds whole pairs)
constexpr int kMaxPackNr = 32;  // the widest panel of any KernelSet (AVX-512: 2 x 16 floats)

// Panel row kk: [nr] values rows[j][kk] for j < valid, zero past them. Walked in 64-deep K blocks so the source
// rows are read sequentially; each block (64 x nr) is built in an L1 buffer and streamed out. In bf16 the u16 slot
// 2j holds column j and slot 2j + 1 column j + nr/2: the pair is stored as one 32-bit write.
void pack_panel(const float* rows /* [valid, k] */, int valid, int k, int nr, Precision precision, void* panel) {
  const int half = nr / 2;
  const size_t esize = precision == Precision::F32 ? 4 : 2;
  alignas(64) unsigned char block[kPackBlock * kMaxPackNr * 4];
  float* bf = reinterpret_cast<float*>(block);
  uint16_t* bh = reinterpret_cast<uint16_t*>(block);
  for (int k0 = 0; k0 < k; k0 += kPackBlock) {
    const int k1 = std::min(k, k0 + kPackBlock);
    if (precision == Precision::F32) {
      for (int j = 0; j < nr; ++j) {
        const float* src = j < valid ? rows + static_cast<size_t>(j) * k : nullptr;
        for (int kk = k0; kk < k1; ++kk) bf[static_cast<size_t>(kk - k0) * nr + j] = src ? src[kk] : 0.0f;
      }
    } else {
      for (int j = 0; j < half; ++j) {
        uint16_t low[kPackBlock], high[kPackBlock];  // columns j and j + nr/2
        bf16_row_block(rows, valid, k, j, k0, k1, low);
        bf16_row_block(rows, valid, k, j + half, k0, k1, high);
        for (int kk = k0; kk < k1; ++kk) {
          const uint16_t pair[2] = {low[kk - k0], high[kk - k0]};
          std::memcpy(bh + static_cast<size_t>(kk - k0) * nr + 2 * j, pair, sizeof pair);
        }
      }
    }
    stream_out(static_cast<char*>(panel) + static_cast<size_t>(k0) * nr * esize, block,
               static_cast<size_t>(k1 - k0) * nr * esize);
  }
}

// words[q] = the bf16 pair (src[2q], src[2q + 1]) as one 32-bit word, the first in the low half; count pairs.
void bf16_pair_words(const float* __restrict src, int count, uint32_t* __restrict words) {
  uint32_t converted[kPackBlock];  // count <= kPackBlock / 2
  for (int i = 0; i < 2 * count; ++i) converted[i] = float_to_bf16(src[i]);  // (vectorised)
  for (int q = 0; q < count; ++q) words[q] = converted[2 * q] | (converted[2 * q + 1] << 16);
}

// The bf16_dot layout (gemm_internal.h): panel pair row q: [nr][2] = (rows[j][2q], rows[j][2q + 1]), zero past
// the valid rows and past K up to k_stored (K padded to the variant's k_align). Built a K block (32 pair rows) at a
// time in an L1 buffer, each column converted a pair per 32-bit word, and streamed out. Before, each value was
// converted and each pair stored alone, column by column into the whole panel (up to 768 KB): 27% of a bf16
// XXLarge load's CPU time.
void pack_panel_k_pairs(const float* rows /* [valid, k] */, int valid, int k, int k_stored, int nr, void* panel) {
  alignas(64) uint32_t block[kPackBlock / 2 * kMaxPackNr];
  for (int k0 = 0; k0 < k; k0 += kPackBlock) {
    const int k1 = std::min(k, k0 + kPackBlock), full = (k1 - k0) / 2, pairs = (k1 - k0 + 1) / 2;
    for (int j = 0; j < nr; ++j) {
      uint32_t words[kPackBlock / 2] = {};
      if (j < valid) {
        const float* src = rows + static_cast<size_t>(j) * k + k0;
        bf16_pair_words(src, full, words);
        if (pairs > full) words[full] = float_to_bf16(src[2 * full]);  // the partner past an odd K is zero
      }
      for (int q = 0; q < pairs; ++q) block[static_cast<size_t>(q) * nr + j] = words[q];
    }
    stream_out(static_cast<uint32_t*>(panel) + static_cast<size_t>(k0 / 2) * nr, block,
               static_cast<size_t>(pairs) * nr * sizeof(uint32_t));
  }
  const int pairs = (std::max(k, 0) + 1) / 2, padding = k_stored / 2 - pairs;  // < kPackBlock / 2 (k_align <= 64)
  if (padding > 0) {
    std::memset(block, 0, static_cast<size_t>(padding) * nr * sizeof(uint32_t));
    stream_out(static_cast<uint32_t*>(panel) + static_cast<size_t>(pairs) * nr, block,
               static_cast<size_t>(padding) * nr * sizeof(uint32_t));
  }
}

// This thread's [nr, k] rows buffer, kept between panels and weights.
float* row_scratch(size_t floats) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < floats) scratch = std::vector<float>(floats);
  return scratch.data();
}

// K as a variant stores it: padded to its k_align, as linear() reads it.
int stored_k(const KernelSet* ks, int k) { return ceil_div(std::max(k, 0), ks->k_align) * ks->k_align; }

}  // namespace

const KernelSet* kernels_for(Precision precision) {
  return precision == Precision::BF16 ? best_bf16_kernels() : best_kernels();
}

PackedWeight packed_layout(const KernelSet* ks, int n, int k, Precision precision) {
  if (ks->bf16_dot && precision == Precision::F32) ks = ks->for_f32;  // a bf16-only variant: fp32 weights go here
  PackedWeight p;
  p.n = n;
  p.k = k;
  p.precision = precision;
  p.kernels = ks;
  p.nr = ks->nr;
  const int panels = ceil_div(std::max(n, 0), ks->nr);
  p.data_bytes = static_cast<size_t>(panels) * ks->nr * stored_k(ks, k) * (precision == Precision::F32 ? 4 : 2);
  return p;
}

PackedWeight pack_weight_rows_with(const KernelSet* ks, int n, int k, Precision precision, const WeightRows& rows,
                                   ThreadPool* pool) {
  PackedWeight p = packed_layout(ks, n, k, precision);
  ks = p.kernels;
  const bool k_pairs = ks->bf16_dot;
  const int nr = ks->nr;
  if (nr > kMaxPackNr) throw std::logic_error("GEMM panel wider than the pack buffer");
  const int panels = ceil_div(std::max(n, 0), nr);
  const int k_stored = stored_k(ks, k);
  const size_t panel_bytes = panels > 0 ? p.data_bytes / panels : 0;
  if (t_packed_memory && *t_packed_memory) p.data = (*t_packed_memory)(p.data_bytes);
  if (!p.data) {
    void* heap = nullptr;
    if (posix_memalign(&heap, 64, std::max<size_t>(p.data_bytes, 64)) != 0) throw std::bad_alloc();
    p.data.reset(heap, std::free);
  }
  void* data = p.data.get();
  auto pack_panels = [&](int64_t begin, int64_t end) {
    float* scratch = row_scratch(static_cast<size_t>(nr) * std::max(k, 0));
    prefault(static_cast<char*>(data) + begin * panel_bytes, static_cast<char*>(data) + end * panel_bytes);
    for (int64_t jp = begin; jp < end; ++jp) {
      const int first = static_cast<int>(jp) * nr, valid = std::min(nr, n - first);
      const float* panel_rows = rows(first, valid, scratch);
      char* panel = static_cast<char*>(data) + jp * panel_bytes;
      if (k_pairs) {
        pack_panel_k_pairs(panel_rows, valid, k, k_stored, nr, panel);
      } else {
        pack_panel(panel_rows, valid, k, nr, precision, panel);
      }
    }
    store_fence();
  };
  if (pool && pool->size() > 1 && panels > 1) {
    pool->parallel_for(panels, 1, pack_panels);
  } else {
    pack_panels(0, panels);
  }
  return p;
}

PackedWeight pack_weight_with(const KernelSet* ks, const float* w, int n, int k, Precision precision) {
  return pack_weight_parallel_with(ks, w, n, k, precision, nullptr);
}

PackedWeight pack_weight_parallel_with(const KernelSet* ks, const float* w, int n, int k, Precision precision,
                                       ThreadPool* pool) {
  const size_t row = static_cast<size_t>(std::max(k, 0));
  return pack_weight_rows_with(ks, n, k, precision, [w, row](int first, int, float*) { return w + first * row; }, pool);
}

}  // namespace gemm_detail

using gemm_detail::kernels_for;

PackedWeight pack_weight_rows(int n, int k, Precision precision, const WeightRows& rows, ThreadPool* pool) {
  return gemm_detail::pack_weight_rows_with(kernels_for(precision), n, k, precision, rows, pool);
}

PackedWeight pack_weight_parallel(const float* w, int n, int k, Precision precision, ThreadPool* pool) {
  return gemm_detail::pack_weight_parallel_with(kernels_for(precision), w, n, k, precision, pool);
}

PackedWeight pack_weight(const float* w, int n, int k, Precision precision) {
  return pack_weight_parallel(w, n, k, precision, nullptr);
}

}  // namespace cclip
