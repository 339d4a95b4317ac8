// bf16 x bf16 -> fp32 GEMM kernels for x86-64 CPUs with AMX-BF16 (Intel Sapphire Rapids and later), for bf16
// weights only. One `tdpbf16ps` multiplies a 16 x 32 bf16 tile of A by a 32 x 16 tile of B into 16 x 16 fp32
// accumulators: 8192 multiply-adds, 16 times a zmm FMA's per cycle. As in the avx512bf16 variant, the activations are
// rounded to bf16 as they are packed, products accumulate in fp32, and everything outside the GEMMs stays fp32.
//
// Register tile: 32 rows x 32 columns = C tiles 0-3 (2 x 2 of 16 x 16), A tiles 4-5 (rows 0-15, 16-31), B tiles 6-7
// (columns 0-15, 16-31); the 8 tile registers of palette 1.
// Layouts (KernelSet::bf16_dot, k_align 32):
//   W panel: the avx512bf16 one, [K/2][NR = 32][2] bf16 (lane j of pair row q = (W[j, 2q], W[j, 2q + 1])), with K
//     padded with zeros to a multiple of 32. A B tile is 16 pair rows x 16 lanes of it: rows 128 bytes apart.
//   A pass: [kc/32 K steps][rows padded to 32][32] bf16 in the float-sized slots of pack_a's buffer: each A tile is
//     16 contiguous 64-byte rows. K past kc and rows past `rows` are zero.
// AMX needs the kernel's permission for its 8 KB of tile state (arch_prctl, cpu_features.cc); each macro call loads
// the tile configuration and releases the tiles when it returns. Epilogue, GELU and fp32 weights: the avx512 variant.
#include "gemm_internal.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace cclip {
namespace gemm_detail {
namespace amx {
namespace {

#define TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16,avx2,fma")))

constexpr int MR = 32, NR = 32;
constexpr int KSTEP = 32;                    // K per tdpbf16ps
constexpr int kAStep = 16 * KSTEP;           // bf16 per A tile (16 rows x 32)
constexpr int kBStep = KSTEP / 2 * NR * 2;   // bf16 per K step of a W panel (16 pair rows x 32 lanes x 2)
constexpr int kBRowBytes = NR * 4;           // bytes between pair rows of a W panel
constexpr int kStreamAhead = 4096;           // bytes of W prefetched ahead when a few rows stream it

// ldtilecfg's 64-byte operand, palette 1: every tile 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
  TileConfig() {
    for (int t = 0; t < 8; ++t) bytes_per_row[t] = 64, rows[t] = 16;
  }
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// C[rows, panels * 32] (+)= A . B over `steps` K steps of 32, one 32 x 32 block (16 x 32 for a last block of <= 16
// rows) at a time. Up to 4 blocks (Stream), the first block of each panel prefetches its W 4 KB ahead into L1 (the
// others find it there); with more, every K step fetches a slice of the pass that follows into L2, so no block waits
// on memory. Against prefetching 4 KB ahead in every block (2 threads, weights rotated through 96 MB, 9 interleaved
// rounds): stage 0-2 GEMMs +2-13%, text at M = 77 +2-4%, M = 7 and M = 64 within 1%.
template <bool Stream>
TARGET void macro_rows(int rows, int panels, int steps, const uint16_t* a, const uint16_t* b, size_t b_stride,
                       float* c, int ldc, bool accumulate) {
  const int blocks = ceil_div(rows, MR);                               // of 32 rows (2 A tiles)
  const size_t a_stride = static_cast<size_t>(2 * blocks) * kAStep;  // between K steps of one 16-row A tile
  const size_t cs = static_cast<size_t>(ldc) * 4;                     // bytes between C rows
  const int pf_lines = ceil_div(steps * kBStep * 2 / 64, blocks * steps);  // of the next pass, per K step
  for (int jp = 0; jp < panels; ++jp) {
    const uint16_t* bp = b + jp * b_stride;
    // The pass that follows this one (the next panel's, or after the last panel the first panel's next pass, which
    // is also the next in memory when panels == 1): its lines fetched into L2 while this pass runs.
    const char* next = reinterpret_cast<const char*>(jp + 1 < panels ? bp + b_stride : b + static_cast<size_t>(steps) * kBStep);
    float* cp = c + jp * NR;
    for (int i = 0; i < rows; i += MR) {
      const bool two = rows - i > 16;
      float* ci = cp + static_cast<size_t>(i) * ldc;
      if (accumulate) {
        _tile_loadd(0, ci, cs);
        _tile_loadd(1, ci + 16, cs);
        if (two) {
          _tile_loadd(2, ci + 16 * ldc, cs);
          _tile_loadd(3, ci + 16 * ldc + 16, cs);
        }
      } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
      }
      const uint16_t* aq = a + static_cast<size_t>(i / 16) * kAStep;  // rows i.., K step 0
      const uint16_t* bq = bp;
      for (int q = 0; q < steps; ++q, aq += a_stride, bq += kBStep) {
        if (Stream && i == 0)
          for (int o = 0; o < kBStep * 2; o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(bq) + kStreamAhead + o, _MM_HINT_T0);
        if (!Stream) {
          const char* p = next + static_cast<size_t>((i / MR) * steps + q) * pf_lines * 64;
          for (int l = 0; l < pf_lines; ++l) _mm_prefetch(p + l * 64, _MM_HINT_T1);
        }
        _tile_loadd(4, aq, 64);
        _tile_loadd(6, bq, kBRowBytes);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, bq + 32, kBRowBytes);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
          _tile_loadd(5, aq + kAStep, 64);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      _tile_stored(0, ci, cs);
      _tile_stored(1, ci + 16, cs);
      if (two) {
        _tile_stored(2, ci + 16 * ldc, cs);
        _tile_stored(3, ci + 16 * ldc + 16, cs);
      }
    }
  }
}

TARGET void macro(int rows, int panels, int kc, const float* a_slots, const void* bv, size_t b_stride, bool /*bf16*/,
                  float* c, int ldc, bool accumulate) {
  static const TileConfig config;
  _tile_loadconfig(&config);
  const uint16_t* a = reinterpret_cast<const uint16_t*>(a_slots);
  const uint16_t* b = static_cast<const uint16_t*>(bv);
  const int steps = ceil_div(kc, KSTEP);
  if (rows <= 4 * MR)
    macro_rows<true>(rows, panels, steps, a, b, b_stride, c, ldc, accumulate);
  else
    macro_rows<false>(rows, panels, steps, a, b, b_stride, c, ldc, accumulate);
  _tile_release();
}

// dst (bf16 in float slots) [ceil(kc / 32)][round_up(rows, 32)][32]: x[r, k0 + 32q + t] rounded to bf16 (vcvtne2ps2bf16,
// round to nearest even as float_to_bf16), zero past kc and past `rows`.
TARGET void pack_a(const float* x, size_t ldx, int rows, int k0, int kc, float* dst_slots) {
  uint16_t* dst = reinterpret_cast<uint16_t*>(dst_slots);
  const int rows_pad = ceil_div(rows, MR) * MR, steps = ceil_div(kc, KSTEP);
  for (int q = 0; q < steps; ++q) {
    const int kq = q * KSTEP, left = kc - kq;
    const __mmask16 lo_mask = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
    const __mmask16 hi_mask = left >= 32 ? 0xffff : left <= 16 ? 0 : static_cast<__mmask16>((1u << (left - 16)) - 1);
    uint16_t* d = dst + static_cast<size_t>(q) * rows_pad * KSTEP;
    for (int r = 0; r < rows; ++r) {
      const float* src = x + static_cast<size_t>(r) * ldx + k0 + kq;
      const __m512 lo = _mm512_maskz_loadu_ps(lo_mask, src), hi = _mm512_maskz_loadu_ps(hi_mask, src + 16);
      _mm512_storeu_si512(d + static_cast<size_t>(r) * KSTEP, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    for (int r = rows; r < rows_pad; ++r) _mm512_storeu_si512(d + static_cast<size_t>(r) * KSTEP, _mm512_setzero_si512());
  }
}

#undef TARGET

}  // namespace

const KernelSet* kernel_set() {
  // Passes of 512 (a W panel pass of 512 x 32 bf16 = 32 KB); 256 and 1024, and mc 128, measured -18% to +10%.
  // Where the rows stream (<= 64), passes of 2048: fewer C round trips and tile configurations per byte of W. The
  // pass length does not change a result here (C goes through memory unrounded), so rows still do not depend on
  // the batch. Against 512, 2 threads, weights rotated through 200 MB, 7 rounds: M = 7 text +2-8%, M = 64 (stage 3)
  // +9-15%, M = 1 +9%, the same bits.
  static const KernelSet ks = ((void)cpu_features(),  // asks Linux for the tile state (unless CCLIP_GEMM_ISA rules it out)
                               bf16_dot_variant(kernels_avx512(), "amx", MR, NR, KSTEP, 256, 512, pack_a, macro, 2048));
  return &ks;
}

}  // namespace amx

const KernelSet* kernels_amx() { return amx::kernel_set(); }

}  // namespace gemm_detail
}  // namespace cclip

#endif
