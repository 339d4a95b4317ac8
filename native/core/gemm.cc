// Blocked GEMM with a fused epilogue (see gemm.h), in two paths (linear_impl picks by rows):
//   a few rows (linear_stream): each thread packs A and streams a range of W panels once, passes back to back;
//   more rows (linear_shared): the threads pack A together once, then share out (M block x W panel range) items;
// each item (run_item), per NC-column block: K passes (KC) x NR panels x MR panels of MR x NR tiles -> C scratch
// [MC, NC] (L2), then the epilogue writes y (so `residual` may alias y: y is written once, last).
// The kernels themselves live in gemm_kernels.h, instantiated per instruction set.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#if !defined(_WIN32)
#include <unistd.h>
#endif

#include "cpu_features.h"
#include "gemm_internal.h"
#include "scratch.h"

// Portable variant: 16-byte vectors (SSE2, NEON, wasm SIMD128), 6 x 8 tile (4 x 8 in wasm without relaxed SIMD).
#define CCLIP_K_NS generic
#define CCLIP_K_NAME "generic"
#define CCLIP_K_TARGET
#define CCLIP_K_VBYTES 16
#if defined(__wasm__)
#if defined(__wasm_relaxed_simd__)
// wasm/build.sh's second module: f32x4.relaxed_madd, one FMA where V8 has one (x64 FMA3, arm64). Without the
// separate product's register a 6 x 8 tile (12 accumulators) fits V8's 15 xmm registers (4 x 8: base_w image and
// 77-token text 9-10% slower).
#if __has_builtin(__builtin_wasm_relaxed_madd_f32x4)
#define CCLIP_K_FMA(a, b, c) __builtin_wasm_relaxed_madd_f32x4(a, b, c)
#else  // clang 14 (Emscripten 3.1.6) has only the prototype's f32x4.fma; wasm/src/relaxed-opcodes.mjs re-encodes it.
// Its operands must never be compile-time constants: wasm-opt would fold them with the prototype's a + b * c.
#define CCLIP_K_FMA(a, b, c) __builtin_wasm_fma_f32x4(a, b, c)
#endif
#define CCLIP_K_MR 6
#else
#define CCLIP_K_MR 4  // V8 keeps 15 xmm registers for wasm: a 6 x 8 tile (15 live vectors) spills; 4 x 8 is 25% faster
#endif
// Half as many K passes (C scratch round trips) as 256; the B panel (16 KB) and the A tile (8 KB; 12 KB for 6 rows)
// still fit L1.
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
#if !(defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11)
const KernelSet* kernels_amx() { return nullptr; }  // gemm_amx.cc builds it on Linux with GCC >= 11 only
#endif

const KernelSet* choose_kernels(int ceiling, const CpuFeatures& cpu, Precision precision) {
  // AMX tiles where the CPU has them; else the bf16 dot kernel where it outpaces fp32 FMAs on this CPU (or is asked
  // for); else bf16 weights are widened to fp32 in the FMA kernels below, which also read half the bytes.
  const bool unset = ceiling_allows_amx(ceiling);  // CCLIP_GEMM_ISA=amx: as unset, the tiles where the CPU has them
  if (precision == Precision::BF16 && cpu.amx_bf16 && kernels_amx() && unset) return kernels_amx();
  if (precision == Precision::BF16 && cpu.avx512bf16 && kernels_avx512bf16() &&
      (ceiling == 4 || (unset && cpu.bf16_dot_fast)))
    return kernels_avx512bf16();
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

// Per-thread scratch that grows and is kept (each thread runs one linear() piece at a time).
thread_local FloatBuffer t_abuf, t_cbuf;

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
inline int round_up(int a, int b) { return ceil_div(a, b) * b; }

}  // namespace

namespace {

// This CPU's L2 data cache per core (sysconf where glibc reports it; else 256 KB, the smallest in common use).
size_t l2_cache_bytes() {
#if defined(_SC_LEVEL2_CACHE_SIZE)
  static const long reported = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (reported > 0) return static_cast<size_t>(reported);
#endif
  return size_t{256} << 10;
}

// Whether linear_shared may run panel major. Not in wasm: it has no prefetch instruction, and the byte loads that
// stand in for one (CCLIP_K_PREFETCH) are issued for the next panel in pass-major order only; panel major there
// made 77-token text 25% slower (base_w, 2 threads).
#if defined(__wasm__)
constexpr bool kPanelMajor = false;
#else
constexpr bool kPanelMajor = true;
#endif

// Rows of x packed at once by the shared path (bounds its buffer; one chunk at batch 1 for every XXLarge layer).
constexpr size_t kSharedPackBytes = size_t{8} << 20;
thread_local FloatBuffer t_shared_a;  // the calling thread's: all threads of one call read it

// C blocks of at most nc columns, equal in a range of up to max_range panels.
int c_block_panels(int max_range, const KernelSet& ks) {
  return ceil_div(max_range, ceil_div(max_range, std::max(1, ks.nc / ks.nr)));
}

// One work item: rows [i0, i0 + rows) of y over W panels [p_begin, p_end), from A packed for these rows (the pass at
// k0 at a + round_up(rows, MR) * k0), in C blocks of nc_panels. Each block runs its K passes panel major in K blocks
// of k_block (a multiple of kc, or >= k for one block; each panel's passes in the block back to back, so its
// weights are read in long runs and the first tile prefetches them, while the block's A stays in L2), or, with
// k_block 0, pass major (each A pass slice reused by the block's panels), into cbuf; then the epilogue writes y (so
// `residual` may alias y: y is written once, last). Every order adds each output's passes in the same K order: the
// results are identical.
void run_item(const float* a, int rows, int i0, int p_begin, int p_end, int nc_panels, int k_block, int kc,
              const PackedWeight& w, const float* bias, float* y, const Epilogue& ep, float* cbuf) {
  const KernelSet& ks = *w.kernels;
  const int n = w.n, k = w.k, nr = ks.nr, rows_pad = round_up(rows, ks.mr);
  const bool bf16 = w.precision == Precision::BF16;
  const size_t esize = bf16 ? 2 : 4;
  const size_t panel_stride = static_cast<size_t>(round_up(k, ks.k_align)) * nr;  // elements between W panels
  const char* wp = static_cast<const char*>(w.data.get());
  for (int p0 = p_begin; p0 < p_end; p0 += nc_panels) {
    const int np = std::min(nc_panels, p_end - p0), ldc = np * nr;
    if (k == 0) std::fill(cbuf, cbuf + static_cast<size_t>(rows) * ldc, 0.0f);
    const bool panel_major = k_block > 0;
    const int kb = panel_major ? k_block : k;
    for (int kb0 = 0; kb0 < k; kb0 += kb)
      for (int jp = 0; jp < (panel_major ? np : 1); ++jp)
        for (int k0 = kb0; k0 < std::min(k, kb0 + kb); k0 += kc) {
          const char* b = wp + ((p0 + jp) * panel_stride + static_cast<size_t>(k0) * nr) * esize;
          ks.macro(rows, panel_major ? 1 : np, std::min(kc, k - k0), a + static_cast<size_t>(rows_pad) * k0, b,
                   panel_stride, bf16, cbuf + jp * nr, ldc, k0 > 0);
        }
    const int j0 = p0 * nr, cols = std::min(ldc, n - j0);
    const size_t off = static_cast<size_t>(i0) * n + j0;
    ks.epilogue(cbuf, ldc, rows, cols, y + off, n, ep.residual ? ep.residual + off : nullptr,
                bias ? bias + j0 : nullptr, ep.scale ? ep.scale + j0 : nullptr, ep.gelu);
  }
}

// First panel of range jr of nj.
int range_begin(int jr, int nj, int panels) { return static_cast<int>(static_cast<int64_t>(jr) * panels / nj); }

// A few rows (<= 2 register tiles): work items are ranges of W panels; each thread packs the (tiny) A itself and
// runs each panel's K passes back to back, so its weights stream from memory start to end, once.
void linear_stream(const float* x, int m, const PackedWeight& w, int kc, const float* bias, float* y,
                   const Epilogue& ep, ThreadPool& pool) {
  const KernelSet& ks = *w.kernels;
  const int k = w.k, rows_pad = round_up(m, ks.mr), panels = ceil_div(w.n, ks.nr), threads = pool.size();
  // Ranges of at least 4 panels, about 4 per thread (consecutive ranges lie back to back in memory).
  const int nj = threads > 1 ? std::max(1, std::min(panels / 4, 4 * threads)) : 1;
  const int nc_panels = c_block_panels(ceil_div(panels, nj), ks);
  std::atomic<int> next_item{0};
  pool.parallel_for(std::min(threads, nj), 1, [&](int64_t, int64_t) {
    float* abuf = t_abuf.reserve(static_cast<size_t>(rows_pad) * round_up(std::max(k, 1), ks.k_align));
    float* cbuf = t_cbuf.reserve(static_cast<size_t>(rows_pad) * nc_panels * ks.nr);
    bool packed = false;
    for (int jr; (jr = next_item.fetch_add(1, std::memory_order_relaxed)) < nj;) {
      if (!packed) {  // A [m, K]: the pass at k0 starts at abuf + rows_pad * k0
        for (int k0 = 0; k0 < k; k0 += kc) ks.pack_a(x, k, m, k0, std::min(kc, k - k0), abuf + static_cast<size_t>(rows_pad) * k0);
        packed = true;
      }
      run_item(abuf, m, 0, range_begin(jr, nj, panels), range_begin(jr + 1, nj, panels), nc_panels, std::max(k, 1), kc,
               w, bias, y, ep, cbuf);
    }
  });
}

// Ranges of W panels for `threads`: about 4 per thread, equal where a count that divides the panels allows (each
// range is one work item, so equal ranges let the threads finish together).
int panel_ranges(int panels, int threads) {
  if (threads <= 1) return 1;
  const int target = std::min(panels, 4 * threads);
  for (int c = target; c >= threads; --c)
    if (panels % c == 0 && c % threads == 0) return c;
  return target;
}

// How run_item orders an M block of rows_pad rows (see there): panel major over all of K where the block's A fits L2
// (it is then read again per panel; s3 fc1, M 64 K 3072, 1 thread: 183 -> 214 GFLOP/s); else panel major over K
// blocks whose A fills half of L2, where such a block holds at least kMinBlockPasses passes (s3 fc2, M 64 K 12288:
// +7-13%; text c_proj, M 77 K 4096: +4-10%; down3, M 64 K 6144: +11-16%; fp32 and bf16, 2 threads, against pass
// major in one process, Zen 4 with a 1 MB L2); else pass major (s2 fc2, M 256 K 6144: 3 passes a block here, and
// pass major measured 1-6% faster).
constexpr int kMinBlockPasses = 8;
int shared_k_block(int rows_pad, int k, int kc) {
  if (!kPanelMajor) return 0;
  const size_t a_row_bytes = sizeof(float) * static_cast<size_t>(rows_pad);
  if (a_row_bytes * k <= l2_cache_bytes()) return std::max(k, 1);
  const int kb = static_cast<int>(l2_cache_bytes() / 2 / a_row_bytes) / kc * kc;
  return kb >= kMinBlockPasses * kc ? kb : 0;
}

// More rows: A is packed once per call by all threads together (a chunk of rows at a time), then the threads share
// out (M block, W panel range) items over it, M block major:
//   chunk of rows -> pack A [chunk, K] (MR-row panels, per M block and K pass), in parallel
//   items (M block of <= mc rows x range of W panels) -> run_item, in the order shared_k_block picks.
void linear_shared(const float* x, int m, const PackedWeight& w, int kc, const float* bias, float* y,
                   const Epilogue& ep, ThreadPool& pool) {
  const KernelSet& ks = *w.kernels;
  const int k = w.k, mr = ks.mr;
  const int m_tiles = ceil_div(m, mr);
  // One packed MR-row panel, all of K (padded as the last pass's pack_a writes it).
  const size_t tile_floats = static_cast<size_t>(mr) * round_up(std::max(k, 1), ks.k_align);
  const int block_tiles = std::max(1, ks.mc / mr);
  const int chunk_tiles = std::max<int>(block_tiles, static_cast<int>(kSharedPackBytes / (tile_floats * sizeof(float))));
  const int panels = ceil_div(w.n, ks.nr);
  const int threads = pool.size();
  const int nj = panel_ranges(panels, threads);
  const int nc_panels = c_block_panels(ceil_div(panels, nj), ks);
  const int nk = ceil_div(std::max(k, 1), kc);
  float* abuf = t_shared_a.reserve(static_cast<size_t>(std::min(chunk_tiles, m_tiles)) * tile_floats);

  for (int ct0 = 0; ct0 < m_tiles; ct0 += chunk_tiles) {
    const int tiles = std::min(chunk_tiles, m_tiles - ct0);
    const int row0 = ct0 * mr, chunk_rows = std::min(m, (ct0 + tiles) * mr) - row0;
    // M blocks: the chunk's tiles shared out evenly (sizes differ by at most one tile), each <= mc rows.
    const int nic = ceil_div(tiles, block_tiles);
    auto block_tile = [&](int ic) { return static_cast<int>(static_cast<int64_t>(ic) * tiles / nic); };
    auto block_rows = [&](int ic) { return std::min(chunk_rows, block_tile(ic + 1) * mr) - block_tile(ic) * mr; };
    // Block ic at abuf + first tile * tile_floats; within it the pass at k0 at + rows_pad * k0.
    auto block_a = [&](int ic) { return abuf + static_cast<size_t>(block_tile(ic)) * tile_floats; };
    pool.parallel_for(static_cast<int64_t>(nic) * nk, 1, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int ic = static_cast<int>(u / nk), k0 = static_cast<int>(u % nk) * kc;
        const int rows = block_rows(ic), rows_pad = round_up(rows, mr);
        if (k0 < k)
          ks.pack_a(x + static_cast<size_t>(row0 + block_tile(ic) * mr) * k, k, rows, k0, std::min(kc, k - k0),
                    block_a(ic) + static_cast<size_t>(rows_pad) * k0);
      }
    });
    const int items = nic * nj;
    std::atomic<int> next_item{0};
    pool.parallel_for(std::min(threads, items), 1, [&](int64_t, int64_t) {
      float* cbuf = t_cbuf.reserve(static_cast<size_t>(block_tiles) * mr * nc_panels * ks.nr);
      for (int item; (item = next_item.fetch_add(1, std::memory_order_relaxed)) < items;) {
        const int ic = item / nj, jr = item % nj;
        const int rows = block_rows(ic);
        run_item(block_a(ic), rows, row0 + block_tile(ic) * mr, range_begin(jr, nj, panels),
                 range_begin(jr + 1, nj, panels), nc_panels, shared_k_block(round_up(rows, mr), k, kc), kc, w, bias,
                 y, ep, cbuf);
      }
    });
  }
}

void linear_impl(const float* x, int m, const PackedWeight& w, const float* bias, float* y, const Epilogue& ep,
                 ThreadPool& pool) {
  const KernelSet& ks = *w.kernels;
  if (m <= 0 || w.n <= 0) return;
  // K passes of equal length <= kc (a multiple of k_align), the same for every M, so that a row's result does not
  // depend on the other rows of the batch (each output sums its passes in the same order, in both paths); or, for a
  // variant whose results do not depend on the pass length, <= kc_stream where the rows stream.
  const bool stream = m <= 2 * ks.mr;  // gemm_kernels.h kStreamTiles
  const int kc_max = stream && ks.kc_stream > 0 ? ks.kc_stream : ks.kc;
  const int nk = std::max(1, ceil_div(w.k, kc_max));
  const int kc = round_up(ceil_div(w.k, nk), ks.k_align);
  if (stream)
    linear_stream(x, m, w, kc, bias, y, ep, pool);
  else
    linear_shared(x, m, w, kc, bias, y, ep, pool);
}

}  // namespace
}  // namespace gemm_detail

void linear(const float* x, int m, const PackedWeight& w, const float* bias, float* y, const Epilogue& ep,
            ThreadPool& pool) {
  gemm_detail::linear_impl(x, m, w, bias, y, ep, pool);
}

float gelu(float x) { return gemm_detail::best_kernels()->gelu1(x); }

}  // namespace cclip
