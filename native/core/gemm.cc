// Blocked GEMM with a fused epilogue (see gemm.h). Loop nest, per work item (an MC-row block of x times a range
// of W's column panels):
//   pack A[MC, K] once (MR-row panels, one block per K pass)
//   for each NC-column block:  for each K pass (KC):  for each NR panel:  for each MR panel:  MR x NR tile
//   -> C scratch [MC, NC] (L2), then the epilogue writes y (so `residual` may alias y: y is written once, last).
// Work items are handed to the thread pool; both the M and the N split are used so that 2 threads stay busy
// from M = 1 up. The kernels themselves live in gemm_kernels.h, instantiated per instruction set.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu_features.h"
#include "gemm_internal.h"

// Portable variant: 16-byte vectors (SSE2, NEON, wasm SIMD128), 6 x 8 tile (4 x 8 in wasm).
#define CCLIP_K_NS generic
#define CCLIP_K_NAME "generic"
#define CCLIP_K_TARGET
#define CCLIP_K_VBYTES 16
#if defined(__wasm__)
#define CCLIP_K_MR 4  // V8 keeps 15 xmm registers for wasm: a 6 x 8 tile (15 live vectors) spills; 4 x 8 is 25% faster
// Half as many K passes (C scratch round trips) as 256; the B panel (16 KB) and the A tile (8 KB) still fit L1.
#define CCLIP_K_KC 512
// wasm has no prefetch instruction (__builtin_prefetch emits nothing): a byte load per line pulls the next B panel in.
#define CCLIP_K_PREFETCH(p) ((void)*reinterpret_cast<const volatile char*>(p))
#else
#define CCLIP_K_MR 6
#define CCLIP_K_KC 256
#endif
#define CCLIP_K_MC 132
#define CCLIP_K_NC 256
#include "gemm_kernels.h"

namespace cclip {

namespace gemm_detail {

const KernelSet* kernels_generic() { return generic::kernel_set(); }

#if !defined(__x86_64__)
const KernelSet* kernels_avx2() { return nullptr; }
const KernelSet* kernels_avx512() { return nullptr; }
#endif
#if !defined(__aarch64__)
const KernelSet* kernels_neon() { return nullptr; }
#endif
#if !(defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10)
const KernelSet* kernels_avx512bf16() { return nullptr; }  // gemm_avx512bf16.cc builds it with GCC >= 10 only
#endif

int isa_ceiling(const char* env) {
  return !env || !*env                       ? 3
         : std::strcmp(env, "generic") == 0 ? 0
         : std::strcmp(env, "avx2") == 0    ? 1
         : std::strcmp(env, "avx512") == 0  ? 2
                                            : 3;
}

const KernelSet* choose_kernels(int ceiling, const CpuFeatures& cpu, Precision precision) {
  if (precision == Precision::BF16 && ceiling >= 3 && cpu.avx512bf16 && kernels_avx512bf16()) return kernels_avx512bf16();
  if (ceiling >= 2 && cpu.avx512f && kernels_avx512()) return kernels_avx512();
  if (ceiling >= 1 && cpu.avx2_fma && kernels_avx2()) return kernels_avx2();
  if (ceiling >= 1 && kernels_neon()) return kernels_neon();  // NEON is part of every aarch64 CPU
  return kernels_generic();
}

const KernelSet* best_kernels() {
  static const KernelSet* ks = choose_kernels(isa_ceiling(std::getenv("CCLIP_GEMM_ISA")), cpu_features(), Precision::F32);
  return ks;
}

const KernelSet* best_bf16_kernels() {
  static const KernelSet* ks = choose_kernels(isa_ceiling(std::getenv("CCLIP_GEMM_ISA")), cpu_features(), Precision::BF16);
  return ks;
}

namespace {

void* aligned_alloc64(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, std::max<size_t>(bytes, 64)) != 0) throw std::bad_alloc();
  return p;
}

// Per-thread scratch that grows and is kept (each thread runs one linear() piece at a time).
struct Scratch {
  float* p = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(p); }
  float* get(size_t floats) {
    if (floats > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      p = static_cast<float*>(aligned_alloc64(floats * sizeof(float)));
      cap = floats;
    }
    return p;
  }
};

thread_local Scratch t_abuf, t_cbuf;

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
inline int round_up(int a, int b) { return ceil_div(a, b) * b; }

}  // namespace

namespace {

void linear_impl(const float* x, int m, const PackedWeight& w, const float* bias, float* y, const Epilogue& ep,
                 ThreadPool& pool) {
  const KernelSet& ks = *w.kernels;
  const int n = w.n, k = w.k, mr = ks.mr, nr = ks.nr;
  if (m <= 0 || n <= 0) return;
  const bool bf16 = w.precision == Precision::BF16;
  const size_t esize = bf16 ? 2 : 4;
  const size_t panel_stride = static_cast<size_t>(round_up(k, ks.k_align)) * nr;  // elements between W panels

  // K passes of equal length <= kc (a multiple of k_align), the same for every M, so that a row's result does not
  // depend on the other rows of the batch (each output sums its passes in the same order).
  const int nk = std::max(1, ceil_div(k, ks.kc));
  const int kc = round_up(ceil_div(k, nk), ks.k_align);
  // Rows that fit two register tiles run each panel's passes back to back instead of each pass across the panels:
  // a panel's passes are contiguous, so each thread streams its weights from memory start to end, once.
  const bool stream = m <= 2 * mr;  // gemm_kernels.h kStreamTiles
  // M blocks: the MR-row tiles shared out evenly (sizes differ by at most one tile), each <= mc rows.
  const int m_tiles = ceil_div(m, mr);
  const int nic = ceil_div(m_tiles, std::max(1, ks.mc / mr));
  const int mc_pad = ceil_div(m_tiles, nic) * mr;  // tallest block
  // N ranges of W panels, shared out the same way: enough items (nic * nj) to keep the threads busy and
  // balanced (a multiple of the thread count where possible), each range at least 4 panels wide.
  const int panels = ceil_div(n, nr);
  const int threads = pool.size();
  int nj = 1;
  if (threads > 1) {
    const int max_nj = std::max(1, panels / 4);
    nj = std::min(max_nj, ceil_div(4 * threads, nic));
    while (nj < max_nj && (nic * nj) % threads != 0) ++nj;
  }
  // C blocks of at most nc columns within a range.
  const int max_range = ceil_div(panels, nj);
  const int nc_panels = ceil_div(max_range, ceil_div(max_range, std::max(1, ks.nc / nr)));

  // Items are handed out one at a time (not in parallel_for's coarser chunks) so the threads finish together.
  // Consecutive items share an N range, so the threads stream the same W panels at the same time.
  const int items = nic * nj;
  std::atomic<int> next_item{0};
  const int workers = std::min(threads, items);
  pool.parallel_for(workers, 1, [&](int64_t, int64_t) {
    float* abuf = t_abuf.get(static_cast<size_t>(mc_pad) * std::max(k, 1));
    float* cbuf = t_cbuf.get(static_cast<size_t>(mc_pad) * nc_panels * nr);
    int packed_ic = -1;
    for (int item; (item = next_item.fetch_add(1, std::memory_order_relaxed)) < items;) {
      const int ic = item % nic, jr = item / nic;
      const int i0 = static_cast<int>(static_cast<int64_t>(ic) * m_tiles / nic) * mr;
      const int i1 = std::min(m, static_cast<int>(static_cast<int64_t>(ic + 1) * m_tiles / nic) * mr);
      const int rows = i1 - i0, rows_pad = round_up(rows, mr);
      if (packed_ic != ic) {  // A block [rows, K]: pass at k0 starts at abuf + rows_pad * k0
        for (int k0 = 0; k0 < k; k0 += kc)
          ks.pack_a(x + static_cast<size_t>(i0) * k, k, rows, k0, std::min(kc, k - k0),
                    abuf + static_cast<size_t>(rows_pad) * k0);
        packed_ic = ic;
      }
      const int p_begin = static_cast<int>(static_cast<int64_t>(jr) * panels / nj);
      const int p_end = static_cast<int>(static_cast<int64_t>(jr + 1) * panels / nj);
      for (int p0 = p_begin; p0 < p_end; p0 += nc_panels) {
        const int np = std::min(nc_panels, p_end - p0);
        const int ldc = np * nr;
        if (k == 0) std::fill(cbuf, cbuf + static_cast<size_t>(rows) * ldc, 0.0f);
        const char* wp = static_cast<const char*>(w.data.get());
        for (int jp = 0; jp < (stream ? np : 1); ++jp) {  // stream: one panel at a time; else all np at once
          for (int k0 = 0; k0 < k; k0 += kc) {
            const char* b = wp + ((p0 + jp) * panel_stride + static_cast<size_t>(k0) * nr) * esize;
            ks.macro(rows, stream ? 1 : np, std::min(kc, k - k0), abuf + static_cast<size_t>(rows_pad) * k0, b,
                     panel_stride, bf16, cbuf + jp * nr, ldc, k0 > 0);
          }
        }
        const int j0 = p0 * nr, cols = std::min(ldc, n - j0);
        const size_t off = static_cast<size_t>(i0) * n + j0;
        ks.epilogue(cbuf, ldc, rows, cols, y + off, n, ep.residual ? ep.residual + off : nullptr,
                    bias ? bias + j0 : nullptr, ep.scale ? ep.scale + j0 : nullptr, ep.gelu);
      }
    }
  });
}

}  // namespace
}  // namespace gemm_detail

void linear(const float* x, int m, const PackedWeight& w, const float* bias, float* y, const Epilogue& ep,
            ThreadPool& pool) {
  gemm_detail::linear_impl(x, m, w, bias, y, ep, pool);
}

float gelu(float x) { return gemm_detail::best_kernels()->gelu1(x); }

}  // namespace cclip
