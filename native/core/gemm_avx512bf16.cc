// bf16 x bf16 -> fp32 GEMM kernels for x86-64 CPUs with AVX512_BF16 (vdpbf16ps: 16 lanes, each
// acc += a.lo * b.lo + a.hi * b.hi over one pair of bf16 values), used for bf16 weights only: there the
// activations are rounded to bf16 as they are packed, so each instruction does twice the multiply-adds of an fp32
// FMA and the weights are read as stored. Accumulation stays fp32. (Full-size XXLarge: image cosine 0.999992 and
// text 0.99997 against the fp32 reference, from 0.999995 / 0.99998 with fp32 activations.)
//
// Layouts (KernelSet::bf16_dot, k_align 2):
//   W panel: [ceil(K/2)][NR = 32][2] bf16: lane j of a k-pair row holds (W[j, k], W[j, k+1]); zero past N and K.
//   A panel: [ceil(kc/2)][MR][2] bf16 in the float-sized slots of pack_a's buffer (one slot per row and k pair).
// The epilogue, GELU and cache blocking are the AVX-512 fp32 variant's.
#include "gemm_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#include <immintrin.h>

#include <cstring>

namespace cclip {
namespace gemm_detail {
namespace avx512bf16 {
namespace {

#define TARGET __attribute__((target("avx512f,avx512bf16,avx2,fma")))
#define KINL inline __attribute__((always_inline)) TARGET

constexpr int MR = 12;  // 24 accumulators + 2 B vectors + 1 broadcast of the 32 zmm registers
constexpr int NR = 32;
constexpr int kStreamAhead = 4096;  // bytes of W prefetched ahead when streaming (a few rows of x)
constexpr int kStreamLocality = 3;  // prefetcht0, as in gemm_kernels.h (prefetchnta misses on Intel)

inline uint32_t pair(float lo, float hi) {
  return static_cast<uint32_t>(float_to_bf16(lo)) | static_cast<uint32_t>(float_to_bf16(hi)) << 16;
}

// c[R, NR] (+)= a[kp][MR] pairs . b[kp][NR] pairs over kp = ceil(kc / 2) k pairs.
template <int R, bool Stream>
KINL void tile(int kp, const uint32_t* __restrict a, const uint16_t* __restrict b, float* __restrict c, int ldc,
               bool accumulate) {
  __m512 c0[R], c1[R];
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int k = 0; k < kp; ++k) {
    const uint16_t* bk = b + static_cast<size_t>(k) * 2 * NR;
    if (Stream) {
      __builtin_prefetch(reinterpret_cast<const char*>(bk) + kStreamAhead, 0, kStreamLocality);
      __builtin_prefetch(reinterpret_cast<const char*>(bk) + kStreamAhead + 64, 0, kStreamLocality);
    }
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bk);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bk + 32);
    const uint32_t* ak = a + static_cast<size_t>(k) * MR;
    for (int r = 0; r < R; ++r) {
      const __m512bh ar = (__m512bh)_mm512_set1_epi32(static_cast<int>(ak[r]));
      c0[r] = _mm512_dpbf16_ps(c0[r], ar, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], ar, b1);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* cr = c + static_cast<size_t>(r) * ldc;
    if (accumulate) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_loadu_ps(cr));
      c1[r] = _mm512_add_ps(c1[r], _mm512_loadu_ps(cr + 16));
    }
    _mm512_storeu_ps(cr, c0[r]);
    _mm512_storeu_ps(cr + 16, c1[r]);
  }
}

template <int R, bool Stream>
KINL void tile_rows(int rows, int kp, const uint32_t* a, const uint16_t* b, float* c, int ldc, bool accumulate) {
  if constexpr (R > 0) {
    if (rows == R) return tile<R, Stream>(kp, a, b, c, ldc, accumulate);
    tile_rows<R - 1, Stream>(rows, kp, a, b, c, ldc, accumulate);
  }
}

TARGET void macro(int rows, int panels, int kc, const float* a_slots, const void* bv, size_t b_stride, bool /*bf16*/,
                  float* c, int ldc, bool accumulate) {
  const uint32_t* a = reinterpret_cast<const uint32_t*>(a_slots);
  const uint16_t* b = static_cast<const uint16_t*>(bv);
  const int kp = (kc + 1) / 2;
  const int ntiles = (rows + MR - 1) / MR;
  if (ntiles <= 2 || panels == 1) {  // the weights stream (a few rows, or one panel at a time: see gemm_kernels.h)
    for (int jp = 0; jp < panels; ++jp) {
      const uint16_t* bp = b + jp * b_stride;
      const int first = rows < MR ? rows : MR;
      tile_rows<MR, true>(first, kp, a, bp, c + jp * NR, ldc, accumulate);
      int i = MR;
      for (; i + MR <= rows; i += MR)
        tile<MR, false>(kp, a + static_cast<size_t>(i) * kp, bp, c + jp * NR + static_cast<size_t>(i) * ldc, ldc, accumulate);
      if (i < rows)
        tile_rows<MR - 1, false>(rows - i, kp, a + static_cast<size_t>(i) * kp, bp, c + jp * NR + static_cast<size_t>(i) * ldc,
                                 ldc, accumulate);
    }
    return;
  }
  // Prefetch the next panel's pass a slice per tile (as the fp32 kernels do).
  const int pf_bytes = kp * NR * 4;
  const int pf_step = ((pf_bytes + ntiles - 1) / ntiles + 63) & ~63;
  for (int jp = 0; jp < panels; ++jp) {
    const uint16_t* bp = b + jp * b_stride;
    const char* next = jp + 1 < panels ? reinterpret_cast<const char*>(bp + b_stride) : nullptr;
    float* cp = c + jp * NR;
    int i = 0;
    for (int t = 0; i + MR <= rows; i += MR, ++t) {
      if (next)
        for (int o = t * pf_step; o < (t + 1) * pf_step && o < pf_bytes; o += 64) __builtin_prefetch(next + o, 0, 3);
      tile<MR, false>(kp, a + static_cast<size_t>(i) * kp, bp, cp + static_cast<size_t>(i) * ldc, ldc, accumulate);
    }
    if (i < rows)
      tile_rows<MR - 1, false>(rows - i, kp, a + static_cast<size_t>(i) * kp, bp, cp + static_cast<size_t>(i) * ldc,
                               ldc, accumulate);
  }
}

// dst (uint32 slots)[ceil(rows / MR)][ceil(kc / 2)][MR]: (x[r, k0 + 2q], x[r, k0 + 2q + 1]) as bf16, the second
// zero past kc; rows past `rows` repeat the last row (never read back). 16 pairs of each of the MR rows are
// converted at once (vcvtne2ps2bf16, round to nearest even as float_to_bf16) and then transposed.
TARGET void pack_a(const float* x, size_t ldx, int rows, int k0, int kc, float* dst_slots) {
  uint32_t* dst = reinterpret_cast<uint32_t*>(dst_slots);
  const int kp = (kc + 1) / 2;
  const int kp_vec = kc / 32 * 16;  // pairs converted 16 at a time
  alignas(64) uint32_t block[MR][16];
  for (int i = 0; i < rows; i += MR) {
    const int r_n = rows - i < MR ? rows - i : MR;
    const float* src[MR];
    for (int r = 0; r < MR; ++r) src[r] = x + static_cast<size_t>(i + (r < r_n ? r : r_n - 1)) * ldx + k0;
    uint32_t* d = dst + static_cast<size_t>(i) * kp;
    for (int q = 0; q < kp_vec; q += 16) {
      for (int r = 0; r < MR; ++r) {
        const __m512 lo = _mm512_loadu_ps(src[r] + 2 * q), hi = _mm512_loadu_ps(src[r] + 2 * q + 16);
        _mm512_store_si512(block[r], (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
      }
      for (int p = 0; p < 16; ++p)
        for (int r = 0; r < MR; ++r) d[(q + p) * MR + r] = block[r][p];
    }
    for (int q = kp_vec; q < kp; ++q)
      for (int r = 0; r < MR; ++r) d[q * MR + r] = pair(src[r][2 * q], 2 * q + 1 < kc ? src[r][2 * q + 1] : 0.0f);
  }
}

#undef KINL
#undef TARGET

}  // namespace

const KernelSet* kernel_set() {
  // Passes of 256 (a W panel pass of 256 x 32 bf16 = 16 KB, as the fp32 variant's 128 x 32 floats), its row blocks.
  static const KernelSet ks =
      bf16_dot_variant(kernels_avx512(), "avx512bf16", MR, NR, 2, kernels_avx512()->mc, 256, pack_a, macro);
  return &ks;
}

}  // namespace avx512bf16

const KernelSet* kernels_avx512bf16() { return avx512bf16::kernel_set(); }

}  // namespace gemm_detail
}  // namespace cclip

#endif
