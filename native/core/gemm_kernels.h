// The GEMM kernels, written once with GCC/Clang vector extensions and instantiated per instruction set by
// including this file with (all required):
//   CCLIP_K_NS      namespace of this variant (e.g. avx2)
//   CCLIP_K_TARGET  function attribute selecting the ISA (e.g. __attribute__((target("avx2,fma")))), or empty
//   CCLIP_K_VBYTES  vector register width in bytes (16, 32, 64); NR = 2 vectors of floats
//   CCLIP_K_MR      register tile rows (2 * MR accumulators + 3 registers must fit the register file)
//   CCLIP_K_MC, CCLIP_K_KC, CCLIP_K_NC   cache blocking (see KernelSet)
// and optionally CCLIP_K_RCP_ESTIMATE(vf) -> vf, a reciprocal estimate (>= 11 bits) used instead of a division,
// CCLIP_K_FMS(a, b, c) -> a * b - c with one rounding (a fused multiply-subtract), CCLIP_K_FMA(a, b, c) -> a * b + c
// (default: the plain expression) and CCLIP_K_BF16_LO(w) / CCLIP_K_BF16_HI(w), the widening of the low / high bf16
// halves of each 32-bit lane to fp32 (default: shift / mask), and CCLIP_K_PREFETCH(p), a read prefetch of the line at
// p (default: __builtin_prefetch).
// Everything here has internal linkage except CCLIP_K_NS::kernel_set().
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gemm_internal.h"

namespace cclip {
namespace gemm_detail {
namespace CCLIP_K_NS {
namespace {

#define KINL inline __attribute__((always_inline)) CCLIP_K_TARGET
#ifndef CCLIP_K_FMA
#define CCLIP_K_FMA(a, b, c) ((a) * (b) + (c))
#endif
#ifndef CCLIP_K_PREFETCH
#define CCLIP_K_PREFETCH(p) __builtin_prefetch(p, 0, 3)
#endif
#ifndef CCLIP_K_BF16_LO
#define CCLIP_K_BF16_LO(w) as_f((w) << 16)
#define CCLIP_K_BF16_HI(w) as_f((w) & 0xffff0000u)
#endif

constexpr int V = CCLIP_K_VBYTES / 4;  // floats per vector
constexpr int NR = 2 * V;
constexpr int MR = CCLIP_K_MR;

typedef float vf __attribute__((vector_size(CCLIP_K_VBYTES)));
typedef int32_t vi __attribute__((vector_size(CCLIP_K_VBYTES)));
typedef uint32_t vu __attribute__((vector_size(CCLIP_K_VBYTES)));

// Unaligned, aliasing-safe access through may_alias vector types (plain vmovups-style loads; memcpy into a
// vector may be lowered as an integer-domain move).
typedef float vf_mem __attribute__((vector_size(CCLIP_K_VBYTES), aligned(4), may_alias));
typedef uint32_t vu_mem __attribute__((vector_size(CCLIP_K_VBYTES), aligned(2), may_alias));
KINL vf loadf(const float* p) { return *reinterpret_cast<const vf_mem*>(p); }
KINL void storef(float* p, vf v) { *reinterpret_cast<vf_mem*>(p) = v; }
KINL vu loadu(const void* p) { return *reinterpret_cast<const vu_mem*>(p); }
KINL vf splat(float s) { return s - vf{}; }  // s - 0 == s for every s (s + 0 is not, for -0)
KINL vf as_f(vu u) { return (vf)u; }
KINL vu as_u(vf f) { return (vu)f; }
KINL vf select(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }

KINL vf vmin(vf a, vf b) {
#if defined(__clang__) && __clang_major__ < 13
  return select(a < b, a, b);
#else
  return a < b ? a : b;  // vminps / f32x4.pmin where available
#endif
}

// 1 / d: the ISA's reciprocal estimate plus one Newton step where one is defined (~1 ulp), else a division.
KINL vf recip(vf d) {
#ifdef CCLIP_K_RCP_ESTIMATE
  const vf r = CCLIP_K_RCP_ESTIMATE(d);
  return r * (splat(2.0f) - d * r);
#else
  return splat(1.0f) / d;
#endif
}

// GELU(x) = x/2 * (1 + erf(x/sqrt2)) on U vectors at once (independent chains interleaved to hide latency).
// With a = |x|/sqrt2: 1 + erf = erfc(a) for x < 0 and 2 - erfc(a) otherwise, erfc(a) = exp(-x^2/2) * erfcx(a),
// erfcx fitted as a degree-10 polynomial in t = 1/(1 + a/2) on [0, 9.2] (rel err 4e-8; 4e-7 evaluated in fp32).
// x^2 is carried as hi + lo, so exp(-x^2/2) and hence gelu(x < 0) keep full relative accuracy.
template <int U>
KINL void gelu_n(vf* v) {
  vf ax[U], h[U], l[U], t[U], q[U], e[U];
  for (int u = 0; u < U; ++u) {
    ax[u] = vmin(as_f(as_u(v[u]) & 0x7fffffffu), splat(12.9f));  // exp() stays normal; erfc ~0 past here
    const vf xh = as_f(as_u(ax[u]) & 0xfffff000u);  // 12 significant bits: the partial products are exact
    const vf xl = ax[u] - xh;
    h[u] = ax[u] * ax[u];
#ifdef CCLIP_K_FMS
    l[u] = CCLIP_K_FMS(ax[u], ax[u], h[u]);  // ax^2 - h, exact
    (void)xh, (void)xl;
#else
    l[u] = ((xh * xh - h[u]) + splat(2.0f) * xh * xl) + xl * xl;  // ax^2 - h
#endif
  }
  for (int u = 0; u < U; ++u) t[u] = recip(splat(1.0f) + splat(0.35355339059327377f) * ax[u]);
  // exp(-h/2 - l/2): 2^n * p(r), |r| <= ln2/2, p minimax degree 6.
  vf fn[U], r[U];
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  for (int u = 0; u < U; ++u) fn[u] = (h[u] * splat(-0.72134752044448170f) + magic) - magic;
  for (int u = 0; u < U; ++u) {
    r[u] = h[u] * splat(-0.5f) - fn[u] * splat(0.693145751953125f);  // ln2 hi part: fn * hi is exact
    r[u] = (r[u] - fn[u] * splat(1.42860682030941723e-6f)) - splat(0.5f) * l[u];
  }
  for (int u = 0; u < U; ++u) q[u] = splat(2.399329282e-02f);
  for (int u = 0; u < U; ++u) e[u] = splat(1.383990864e-03f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(-1.902615577e-01f);
  for (int u = 0; u < U; ++u) e[u] = e[u] * r[u] + splat(8.368880488e-03f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(5.961072445e-01f);
  for (int u = 0; u < U; ++u) e[u] = e[u] * r[u] + splat(4.166779667e-02f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(-9.088843465e-01f);
  for (int u = 0; u < U; ++u) e[u] = e[u] * r[u] + splat(1.666649580e-01f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(6.371344924e-01f);
  for (int u = 0; u < U; ++u) e[u] = e[u] * r[u] + splat(4.999999702e-01f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(-2.268985957e-01f);
  for (int u = 0; u < U; ++u) e[u] = e[u] * r[u] + splat(1.0f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(2.765403986e-01f);
  for (int u = 0; u < U; ++u) e[u] = e[u] * r[u] + splat(1.0f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(2.253750414e-01f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(2.850212455e-01f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(2.818649113e-01f);
  for (int u = 0; u < U; ++u) q[u] = q[u] * t[u] + splat(7.903879123e-06f);
  for (int u = 0; u < U; ++u) {
    const vi n = __builtin_convertvector(fn[u], vi);
    const vf scale = as_f((vu)((n + 127) << 23));
    const vf ec = e[u] * scale * q[u];  // erfc(|x| / sqrt2)
    v[u] = (splat(0.5f) * v[u]) * select(v[u] < splat(0.0f), ec, splat(2.0f) - ec);
  }
}

KINL vf gelu_v(vf x) {
  gelu_n<1>(&x);
  return x;
}

CCLIP_K_TARGET float gelu1(float x) {
  vf v = gelu_v(splat(x));
  return v[0];
}

// Bytes ahead of the B row in use that a streaming tile prefetches (see tile's Stream).
constexpr int kStreamAhead = 4096;
// Into every cache level (prefetcht0), not non-temporal: the other tiles of the pass read it again, and on Intel
// (Emerald Rapids) prefetchnta lines miss for them: text fp32 GEMMs at M = 7 ran at a third of the speed.
constexpr int kStreamLocality = 3;
// Rows in at most this many register tiles stream the weights (linear_impl: rows <= kStreamTiles * MR).
constexpr int kStreamTiles = 2;

// One MR x NR (R <= MR rows) register tile over kc: c[R, NR] (+)= a[kc][MR] . b[kc][NR].
// Stream: B is read once from memory (a few rows of x: linear_impl runs a panel's K passes back to back, and the
// panels lie back to back), so each step prefetches the B bytes kStreamAhead ahead, on into the next pass.
// NextPass: every second step prefetches (into L2) one more of the next_lines lines at `next`, the tile's share of
// the pass that follows this one (see macro_t).
template <int R, bool BF16, bool Stream = false, bool NextPass = false>
KINL void tile(int kc, const float* __restrict a, const void* __restrict bv, float* __restrict c, int ldc,
               bool accumulate, const char* next = nullptr, int next_lines = 0) {
  vf c0[R], c1[R];
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = vf{};
  constexpr int row_bytes = NR * (BF16 ? 2 : 4);
  // The loop steps pointers to A and B and ends on B's end pointer, so that V8 adds a constant to each per step
  // instead of recomputing base + k * stride (wasm has base + constant addressing only): in V8's code for a bare
  // 4 x 8 tile, 29 instructions a step instead of 33. Zen 4 runs that loop at its instruction rate, not at its
  // multiply and add pipes' rate: the wasm GEMMs ran 4-20% faster (1 and 2 threads, fp32 and bf16, the same bits).
  // GCC's native loops run as fast as before.
  const char* bk = static_cast<const char*>(bv);
  const char* const b_end = bk + static_cast<size_t>(kc) * row_bytes;
  const float* ak = a;
  for (int k = 0; bk != b_end; ++k, bk += row_bytes, ak += MR) {
    if (NextPass && (k & 1) == 0 && (k >> 1) < next_lines) __builtin_prefetch(next + (k >> 1) * 64, 0, 2);
    if (Stream)
      for (int o = 0; o < row_bytes; o += 64) __builtin_prefetch(bk + kStreamAhead + o, 0, kStreamLocality);
    vf b0, b1;
    if (BF16) {  // lane j holds bf16 columns j (low half) and j + V (high half)
      const vu w = loadu(bk);
      b0 = CCLIP_K_BF16_LO(w);
      b1 = CCLIP_K_BF16_HI(w);
    } else {
      b0 = loadf(reinterpret_cast<const float*>(bk));
      b1 = loadf(reinterpret_cast<const float*>(bk) + V);
    }
    for (int r = 0; r < R; ++r) {
      const vf ar = splat(ak[r]);
      c0[r] = CCLIP_K_FMA(ar, b0, c0[r]);
      c1[r] = CCLIP_K_FMA(ar, b1, c1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* cr = c + static_cast<size_t>(r) * ldc;
    if (accumulate) {
      c0[r] += loadf(cr);
      c1[r] += loadf(cr + V);
    }
    storef(cr, c0[r]);
    storef(cr + V, c1[r]);
  }
}

template <int R, bool BF16, bool Stream = false, bool NextPass = false>
KINL void tile_rows(int rows, int kc, const float* a, const void* b, float* c, int ldc, bool accumulate,
                    const char* next = nullptr, int next_lines = 0) {
  if constexpr (R > 0) {
    if (rows == R) return tile<R, BF16, Stream, NextPass>(kc, a, b, c, ldc, accumulate, next, next_lines);
    tile_rows<R - 1, BF16, Stream, NextPass>(rows, kc, a, b, c, ldc, accumulate, next, next_lines);
  }
}

// Whether the full tiles of `rows` can fetch the whole next pass (pass_bytes) at a line every second step.
KINL bool covers_next_pass(int rows, int kc, int pass_bytes) { return (rows / MR) * ((kc + 1) / 2) >= pass_bytes / 64; }

// The full MR-row tiles of `rows` over one pass of b (BF16: bf16 lanes, else fp32), tile t fetching its kc / 2 of the
// `lines` lines at `next` as it runs (see covers_next_pass). Returns the rows done.
template <bool BF16>
KINL int full_tiles_fetching_next(int rows, int kc, const float* a, const void* b, float* c, int ldc, bool accumulate,
                                  const char* next, int lines) {
  const int per_tile = (kc + 1) / 2;
  int i = 0;
  for (int t = 0; i + MR <= rows; i += MR, ++t) {
    const int left = lines - t * per_tile, share = left < 0 ? 0 : left < per_tile ? left : per_tile;
    tile<MR, BF16, false, true>(kc, a + static_cast<size_t>(i) * kc, b, c + static_cast<size_t>(i) * ldc, ldc,
                                accumulate, share ? next + t * per_tile * 64 : next, share);
  }
  return i;
}

// Rows [i, rows) of one panel's pass, MR-row tiles then the remainder, the tile t prefetching its pf_step bytes of
// `next` (if any). Not inlined into macro_t: there V8 compiled the bf16 macro_t, which held both the widened and the
// bf16 tile loops, to slower loops than the fp32 one (cclip-relaxed.wasm, base_w, 2 threads, one process: bf16 image
// 469 -> 406 ms and 77-token text 101 -> 93 ms; fp32 420 -> 409 ms).
template <bool BF16>
__attribute__((noinline)) CCLIP_K_TARGET void panel_tiles(int i, int rows, int kc, const float* a, const void* b, float* cp,
                                                        int ldc, bool accumulate, const char* next, int pf_step,
                                                        int pf_bytes) {
  for (int t = 0; i + MR <= rows; i += MR, ++t) {
    if (next)
      for (int o = t * pf_step; o < (t + 1) * pf_step && o < pf_bytes; o += 64) CCLIP_K_PREFETCH(next + o);
    tile<MR, BF16>(kc, a + static_cast<size_t>(i) * kc, b, cp + static_cast<size_t>(i) * ldc, ldc, accumulate);
  }
  if (i < rows)
    tile_rows<MR - 1, BF16>(rows - i, kc, a + static_cast<size_t>(i) * kc, b, cp + static_cast<size_t>(i) * ldc, ldc,
                            accumulate);
}

template <bool BF16>
CCLIP_K_TARGET void macro_t(int rows, int panels, int kc, const float* a, const void* b, size_t b_stride, float* c,
                            int ldc, bool accumulate) {
  const size_t esize = BF16 ? 2 : 4;
  // The next B panel is prefetched a slice per tile, so its first tile does not wait on memory.
  const int ntiles = (rows + MR - 1) / MR;
  const int pf_bytes = kc * NR * static_cast<int>(esize);
  const int pf_step = ((pf_bytes + ntiles - 1) / ntiles + 63) & ~63;
  // bf16 panels used by several tiles are widened to fp32 once (an L1-resident copy) rather than per tile.
  const bool widen = BF16 && ntiles > 1 && kc <= CCLIP_K_KC;
  alignas(64) float wide[BF16 ? CCLIP_K_KC * NR : 1];
  // The weights stream: a few rows, or one panel at a time (linear_impl then runs each panel's passes back to back,
  // so the data after this pass is the next pass of the same panel). With a few rows the first tile prefetches ahead
  // as it reads the pass; the others read it from cache.
  if (ntiles <= kStreamTiles || (panels == 1 && !widen)) {
#if !defined(__wasm__)  // (no prefetch instruction there)
    if (ntiles > kStreamTiles && covers_next_pass(rows, kc, pf_bytes)) {
      // One panel's pass, many tiles: the tiles fetch the pass after this one into L2 as they run, a line every second
      // step of the first few, so the next pass's first tile does not wait on memory and the fetches do not queue up
      // at once. Against the first tile streaming its own pass: text fp32 M = 77, fc1 +17%, fc2 +15%; s2 fc1 +5%,
      // s3 fc1 +16% (Emerald Rapids, 2 threads, interleaved).
      const int i = full_tiles_fetching_next<BF16>(rows, kc, a, b, c, ldc, accumulate,
                                                   static_cast<const char*>(b) + pf_bytes, pf_bytes / 64);
      if (i < rows)
        tile_rows<MR - 1, BF16>(rows - i, kc, a + static_cast<size_t>(i) * kc, b, c + static_cast<size_t>(i) * ldc, ldc,
                                accumulate);
      return;
    }
#endif
    for (int jp = 0; jp < panels; ++jp) {
      const char* bp = static_cast<const char*>(b) + jp * b_stride * esize;
      const int first = rows < MR ? rows : MR;
      tile_rows<MR, BF16, true>(first, kc, a, bp, c + jp * NR, ldc, accumulate);
      int i = MR;
      for (; i + MR <= rows; i += MR)
        tile<MR, BF16>(kc, a + static_cast<size_t>(i) * kc, bp, c + jp * NR + static_cast<size_t>(i) * ldc, ldc, accumulate);
      if (i < rows)
        tile_rows<MR - 1, BF16>(rows - i, kc, a + static_cast<size_t>(i) * kc, bp,
                                c + jp * NR + static_cast<size_t>(i) * ldc, ldc, accumulate);
    }
    return;
  }
  for (int jp = 0; jp < panels; ++jp) {
    const char* bp = static_cast<const char*>(b) + jp * b_stride * esize;
    // What this call reads next: the next panel; with one panel, the pass after this one, which follows it in memory
    // (linear_impl runs a lone panel's passes in order). Not in wasm, whose stand-in prefetch is a real load that
    // must stay inside the weights.
    const char* next = jp + 1 < panels ? bp + b_stride * esize : nullptr;
#if !defined(__wasm__)
    if (panels == 1) next = bp + pf_bytes;
#endif
    float* cp = c + jp * NR;
    if (widen) {
      const uint16_t* bh = reinterpret_cast<const uint16_t*>(bp);
      for (int k = 0; k < kc; ++k) {
        const vu w = loadu(bh + static_cast<size_t>(k) * NR);
        storef(wide + k * NR, CCLIP_K_BF16_LO(w));
        storef(wide + k * NR + V, CCLIP_K_BF16_HI(w));
      }
    }
    int i = 0;
#if !defined(__wasm__)
    // A lone bf16 panel (panel major): its widened tiles fetch the next pass as the fp32 ones do above (text M = 77,
    // bf16: fc1 +6%, fc2 +4%; s3 fc1 +6%; Emerald Rapids, 2 threads, interleaved).
    if (panels == 1 && widen && covers_next_pass(rows, kc, pf_bytes))
      i = full_tiles_fetching_next<false>(rows, kc, a, wide, cp, ldc, accumulate, next, pf_bytes / 64);
#endif
    if (widen)
      panel_tiles<false>(i, rows, kc, a, wide, cp, ldc, accumulate, next, pf_step, pf_bytes);
    else
      panel_tiles<BF16>(i, rows, kc, a, bp, cp, ldc, accumulate, next, pf_step, pf_bytes);
  }
}

CCLIP_K_TARGET void macro(int rows, int panels, int kc, const float* a, const void* b, size_t b_stride, bool bf16,
                          float* c, int ldc, bool accumulate) {
  if (bf16)
    macro_t<true>(rows, panels, kc, a, b, b_stride, c, ldc, accumulate);
  else
    macro_t<false>(rows, panels, kc, a, b, b_stride, c, ldc, accumulate);
}

// 4-float vectors for pack_a's transposes (every target here has 16-byte vectors).
typedef float vf4 __attribute__((vector_size(16)));
typedef float vf4_mem __attribute__((vector_size(16), aligned(4), may_alias));
#if defined(__clang__)
#define CCLIP_K_SHUF4(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
typedef int32_t vi4 __attribute__((vector_size(16)));
#define CCLIP_K_SHUF4(a, b, i, j, k, l) __builtin_shuffle(a, b, vi4{i, j, k, l})
#endif
KINL vf4 load4(const float* p) { return *reinterpret_cast<const vf4_mem*>(p); }
KINL void store4(float* p, vf4 v) { *reinterpret_cast<vf4_mem*>(p) = v; }

// A tile [MR rows of x][kc] -> dst[kc][MR]: 4 x 4 blocks transposed in registers (2 x 4 for a last pair of rows),
// the K tail one element at a time.
CCLIP_K_TARGET void pack_a(const float* x, size_t ldx, int rows, int k0, int kc, float* dst) {
  for (int i = 0; i < rows; i += MR) {
    const int r_n = rows - i < MR ? rows - i : MR;
    const float* src[MR];
    for (int r = 0; r < MR; ++r) src[r] = x + static_cast<size_t>(i + (r < r_n ? r : r_n - 1)) * ldx + k0;
    float* d = dst + static_cast<size_t>(i) * kc;
    const int kc4 = kc / 4 * 4;
    for (int k = 0; k < kc4; k += 4) {
      int r = 0;
      for (; r + 4 <= MR; r += 4) {
        const vf4 a = load4(src[r] + k), b = load4(src[r + 1] + k), c = load4(src[r + 2] + k), e = load4(src[r + 3] + k);
        const vf4 ab_lo = CCLIP_K_SHUF4(a, b, 0, 4, 1, 5), ab_hi = CCLIP_K_SHUF4(a, b, 2, 6, 3, 7);
        const vf4 ce_lo = CCLIP_K_SHUF4(c, e, 0, 4, 1, 5), ce_hi = CCLIP_K_SHUF4(c, e, 2, 6, 3, 7);
        store4(d + (k + 0) * MR + r, CCLIP_K_SHUF4(ab_lo, ce_lo, 0, 1, 4, 5));
        store4(d + (k + 1) * MR + r, CCLIP_K_SHUF4(ab_lo, ce_lo, 2, 3, 6, 7));
        store4(d + (k + 2) * MR + r, CCLIP_K_SHUF4(ab_hi, ce_hi, 0, 1, 4, 5));
        store4(d + (k + 3) * MR + r, CCLIP_K_SHUF4(ab_hi, ce_hi, 2, 3, 6, 7));
      }
      if (r + 2 <= MR) {
        const vf4 a = load4(src[r] + k), b = load4(src[r + 1] + k);
        const vf4 lo = CCLIP_K_SHUF4(a, b, 0, 4, 1, 5), hi = CCLIP_K_SHUF4(a, b, 2, 6, 3, 7);  // a0 b0 a1 b1, a2 b2 a3 b3
        alignas(16) float pairs[8];
        store4(pairs, lo);
        store4(pairs + 4, hi);
        for (int j = 0; j < 4; ++j) std::memcpy(d + (k + j) * MR + r, pairs + 2 * j, 8);
        r += 2;
      }
      for (; r < MR; ++r)
        for (int j = 0; j < 4; ++j) d[(k + j) * MR + r] = src[r][k + j];
    }
    for (int k = kc4; k < kc; ++k)
      for (int r = 0; r < MR; ++r) d[k * MR + r] = src[r][k];
  }
}
#undef CCLIP_K_SHUF4

// U vectors of one row: v = res + scale * act(v + bias).
template <int U, bool Bias, bool Gelu, bool Scale, bool Res>
KINL void epi_n(vf* v, const float* bias, const float* scale, const float* res) {
  if (Bias)
    for (int u = 0; u < U; ++u) v[u] += loadf(bias + u * V);
  if (Gelu) gelu_n<U>(v);
  if (Scale)
    for (int u = 0; u < U; ++u) v[u] *= loadf(scale + u * V);
  if (Res)
    for (int u = 0; u < U; ++u) v[u] += loadf(res + u * V);
}

template <bool Bias, bool Gelu, bool Scale, bool Res>
CCLIP_K_TARGET void epilogue_t(const float* c, int ldc, int rows, int cols, float* y, size_t ldy, const float* residual,
                               const float* bias, const float* scale) {
  constexpr int U = 2;  // more independent GELU chains spill on 16 registers
  const int full = cols / V * V;
  float tb[V] = {}, ts[V] = {}, tr[V] = {}, tc[V] = {};
  if (Bias)
    for (int j = full; j < cols; ++j) tb[j - full] = bias[j];
  if (Scale)
    for (int j = full; j < cols; ++j) ts[j - full] = scale[j];
  for (int r = 0; r < rows; ++r) {
    const float* cr = c + static_cast<size_t>(r) * ldc;
    float* yr = y + r * ldy;
    const float* rr = Res ? residual + r * ldy : nullptr;
    int j = 0;
    for (; j + U * V <= full; j += U * V) {
      vf v[U];
      for (int u = 0; u < U; ++u) v[u] = loadf(cr + j + u * V);
      epi_n<U, Bias, Gelu, Scale, Res>(v, Bias ? bias + j : nullptr, Scale ? scale + j : nullptr, Res ? rr + j : nullptr);
      for (int u = 0; u < U; ++u) storef(yr + j + u * V, v[u]);
    }
    for (; j < full; j += V) {
      vf v = loadf(cr + j);
      epi_n<1, Bias, Gelu, Scale, Res>(&v, Bias ? bias + j : nullptr, Scale ? scale + j : nullptr, Res ? rr + j : nullptr);
      storef(yr + j, v);
    }
    if (j < cols) {
      for (int t = 0; t < cols - j; ++t) {
        tc[t] = cr[j + t];
        if (Res) tr[t] = rr[j + t];
      }
      vf v = loadf(tc);
      epi_n<1, Bias, Gelu, Scale, Res>(&v, tb, ts, tr);
      for (int t = 0; t < cols - j; ++t) yr[j + t] = v[t];
    }
  }
}

CCLIP_K_TARGET void epilogue(const float* c, int ldc, int rows, int cols, float* y, size_t ldy, const float* residual,
                             const float* bias, const float* scale, bool gelu) {
  const int key = (bias ? 8 : 0) | (gelu ? 4 : 0) | (scale ? 2 : 0) | (residual ? 1 : 0);
#define CCLIP_EPI_CASE(K)                                                                                 \
  case K:                                                                                                 \
    return epilogue_t<(K & 8) != 0, (K & 4) != 0, (K & 2) != 0, (K & 1) != 0>(c, ldc, rows, cols, y, ldy, \
                                                                               residual, bias, scale);
  switch (key) {
    CCLIP_EPI_CASE(0) CCLIP_EPI_CASE(1) CCLIP_EPI_CASE(2) CCLIP_EPI_CASE(3)
    CCLIP_EPI_CASE(4) CCLIP_EPI_CASE(5) CCLIP_EPI_CASE(6) CCLIP_EPI_CASE(7)
    CCLIP_EPI_CASE(8) CCLIP_EPI_CASE(9) CCLIP_EPI_CASE(10) CCLIP_EPI_CASE(11)
    CCLIP_EPI_CASE(12) CCLIP_EPI_CASE(13) CCLIP_EPI_CASE(14) CCLIP_EPI_CASE(15)
  }
#undef CCLIP_EPI_CASE
}

#undef KINL
#undef CCLIP_K_FMA
#undef CCLIP_K_PREFETCH
#undef CCLIP_K_BF16_LO
#undef CCLIP_K_BF16_HI

}  // namespace

const KernelSet* kernel_set() {
  static const KernelSet ks = {CCLIP_K_NAME, MR, NR, CCLIP_K_MC, CCLIP_K_KC, CCLIP_K_NC,
                               pack_a,       macro, epilogue, gelu1};
  return &ks;
}

}  // namespace CCLIP_K_NS
}  // namespace gemm_detail
}  // namespace cclip

// Each inclusion defines one variant: its parameters end here, so the next inclusion can set its own.
#undef CCLIP_K_RCP_ESTIMATE
#undef CCLIP_K_FMS
#undef CCLIP_K_NS
#undef CCLIP_K_NAME
#undef CCLIP_K_TARGET
#undef CCLIP_K_VBYTES
#undef CCLIP_K_MR
#undef CCLIP_K_MC
#undef CCLIP_K_KC
#undef CCLIP_K_NC
