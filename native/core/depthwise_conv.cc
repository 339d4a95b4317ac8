// ConvNeXt's depthwise 7x7 conv (pad 3) fused with the LayerNorm that follows it, channels-last.
// Portable C++ (GCC/clang vector extensions, scalar elsewhere), read straight from x (no padded copy). One output
// row is one task: for each channel vector, strips of T output pixels keep T accumulators in registers; per kernel
// row the 7 tap vectors are loaded once and every input pixel of the strip's window once (a sliding window: each
// input vector feeds up to 7 accumulators), so a strip costs (T + 6) + 7 loads per 7T FMAs. Out-of-image taps are
// skipped, not multiplied by padding. The conv lands in y's row, which the LayerNorm then normalises in place
// while it is still in cache. Weights are channel-blocked (blocks of 16, then 8, then 1 channel; a block's 49 taps
// contiguous), so a strip's taps stream through consecutive cache lines. On x86-64 the same source is also
// compiled for AVX2+FMA (8-lane vectors) and AVX-512 (16-lane vectors), picked at run time (function-level target
// attributes, no intrinsics).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "depthwise_conv.h"
#include "ops.h"
#include "vec8.h"

namespace cclip {

namespace {

template <typename V>
CCLIP_ALWAYS_INLINE V load_vec(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename V>
CCLIP_ALWAYS_INLINE void store_vec(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(v));
}

struct DepthwiseArgs {
  const float* x;  // [n, h, w, c]
  int n, h, w, c;
  const float* weight;  // blocked: block at cb is [49, bs] at weight + 49 * cb
  const float* conv_bias;
  const float* norm_gamma;
  const float* norm_beta;
  float eps;
  float* y;  // [n, h, w, c]
};

// One output row's geometry: the image's input, the row, its valid kernel rows.
struct RowTask {
  const float* image;  // [h, w, c]
  float* y_row;        // [w, c]
  int w, c, oy, ky_begin, ky_end;
};

// y_row[ox + t, ch .. ch + lanes(V)) for t < T = conv bias + the in-image taps. taps: [49] vectors tap_stride apart.
template <typename V, int T>
CCLIP_ALWAYS_INLINE void conv_strip(const RowTask& r, int ch, int ox, const float* taps, int tap_stride,
                                    const float* bias) {
  V acc[T];
  const V b = load_vec<V>(bias + ch);
  for (int t = 0; t < T; ++t) acc[t] = b;
  for (int ky = r.ky_begin; ky < r.ky_end; ++ky) {
    const float* in_row = r.image + static_cast<int64_t>(r.oy + ky - 3) * r.w * r.c + ch;
    V tap[7];
    for (int kx = 0; kx < 7; ++kx) tap[kx] = load_vec<V>(taps + (ky * 7 + kx) * tap_stride);
    // Input column ox - 3 + j feeds output t = j - kx through tap kx.
#pragma GCC unroll 32
    for (int j = 0; j < T + 6; ++j) {
      const int ix = ox - 3 + j;
      if (ix < 0 || ix >= r.w) continue;
      const V in = load_vec<V>(in_row + static_cast<int64_t>(ix) * r.c);
#pragma GCC unroll 7
      for (int kx = 0; kx < 7; ++kx) {
        const int t = j - kx;
        if (t >= 0 && t < T) acc[t] += in * tap[kx];
      }
    }
  }
  for (int t = 0; t < T; ++t) store_vec<V>(r.y_row + static_cast<int64_t>(ox + t) * r.c + ch, acc[t]);
}

// All output pixels of the row from ox on, for one channel vector: strips of T, the rest in strips of T/2, T/4...
template <typename V, int T>
CCLIP_ALWAYS_INLINE void conv_strips(const RowTask& r, int ch, int ox, const float* taps, int tap_stride,
                                     const float* bias) {
  for (; ox + T <= r.w; ox += T) conv_strip<V, T>(r, ch, ox, taps, tap_stride, bias);
  if constexpr (T > 1) {
    if (ox < r.w) conv_strips<V, T / 2>(r, ch, ox, taps, tap_stride, bias);
  }
}

// Strip widths per vector kind: kWide16 > 0 runs 16-channel blocks as Vec16 strips of that width, else as two
// Vec8 halves; kStrip8 for Vec8; kStrip1 for single channels.
template <int kWide16, int kStrip8, int kStrip1>
CCLIP_ALWAYS_INLINE void depthwise_rows(const DepthwiseArgs& a, int64_t begin, int64_t end) {
  const int c = a.c, c16 = c - c % 16, c8 = c - c % 8;
  for (int64_t task = begin; task < end; ++task) {
    const int image_index = static_cast<int>(task / a.h), oy = static_cast<int>(task % a.h);
    RowTask r;
    r.image = a.x + static_cast<int64_t>(image_index) * a.h * a.w * c;
    r.y_row = a.y + task * a.w * c;
    r.w = a.w;
    r.c = c;
    r.oy = oy;
    r.ky_begin = std::max(0, 3 - oy);
    r.ky_end = std::min(7, a.h + 3 - oy);
    for (int cb = 0; cb < c16; cb += 16) {
      const float* taps = a.weight + 49 * cb;
      if constexpr (kWide16 > 0) {
        conv_strips<Vec16, kWide16>(r, cb, 0, taps, 16, a.conv_bias);
      } else {
        conv_strips<Vec8, kStrip8>(r, cb, 0, taps, 16, a.conv_bias);
        conv_strips<Vec8, kStrip8>(r, cb + 8, 0, taps + 8, 16, a.conv_bias);
      }
    }
    for (int cb = c16; cb < c8; cb += 8) conv_strips<Vec8, kStrip8>(r, cb, 0, a.weight + 49 * cb, 8, a.conv_bias);
    for (int ch = c8; ch < c; ++ch) conv_strips<float, kStrip1>(r, ch, 0, a.weight + 49 * ch, 1, a.conv_bias);
    for (int ox = 0; ox < a.w; ++ox) {
      float* px = r.y_row + static_cast<int64_t>(ox) * c;
      layer_norm_row(px, c, a.norm_gamma, a.norm_beta, a.eps, px);
    }
  }
}

// Width of the channel block that starts at cb.
inline int block_width(int cb, int c) { return cb < c - c % 16 ? 16 : cb < c - c % 8 ? 8 : 1; }

// Vec8 with SSE / simd128 is two registers: 4 strips keep 8 accumulators.
void depthwise_rows_portable(const DepthwiseArgs& a, int64_t begin, int64_t end) {
  depthwise_rows<0, 4, 8>(a, begin, end);
}

#if CCLIP_X86_CLONES
// 16 ymm: 8 accumulators, 7 taps, 1 input.
CCLIP_TARGET_AVX2 void depthwise_rows_avx2(const DepthwiseArgs& a, int64_t begin, int64_t end) {
  depthwise_rows<0, 8, 8>(a, begin, end);
}

// 32 zmm: 16 accumulators, 7 taps, 1 input.
CCLIP_TARGET_AVX512 void depthwise_rows_avx512(const DepthwiseArgs& a, int64_t begin, int64_t end) {
  depthwise_rows<16, 8, 8>(a, begin, end);
}
#endif

}  // namespace

std::vector<float> pack_depthwise_weight(const float* weight, int c) {
  std::vector<float> packed(static_cast<size_t>(c) * 49);
  for (int cb = 0; cb < c;) {
    const int bs = block_width(cb, c);
    for (int tap = 0; tap < 49; ++tap)
      for (int j = 0; j < bs; ++j) packed[static_cast<size_t>(49) * cb + tap * bs + j] = weight[static_cast<size_t>(cb + j) * 49 + tap];
    cb += bs;
  }
  return packed;
}

bool depthwise_isa_runs_here(DepthwiseIsa isa) {
  switch (isa) {
    case DepthwiseIsa::kPortable: return true;
    case DepthwiseIsa::kAvx2: return CCLIP_X86_CLONES && cpu_has_avx2_fma();
    case DepthwiseIsa::kAvx512: return CCLIP_X86_CLONES && cpu_has_avx512f();
  }
  return false;
}

void depthwise_conv7_layer_norm_isa(DepthwiseIsa isa, const float* x, int n, int h, int w, int c, const float* weight,
                                    const float* conv_bias, const float* norm_gamma, const float* norm_beta, float eps,
                                    float* y, ThreadPool& pool) {
  if (!depthwise_isa_runs_here(isa)) throw Error("E_INVALID_ARGUMENT", "depthwise_conv7_layer_norm: this CPU does not run the requested ISA variant");
  auto* rows_fn = &depthwise_rows_portable;
#if CCLIP_X86_CLONES
  if (isa == DepthwiseIsa::kAvx512) rows_fn = &depthwise_rows_avx512;
  if (isa == DepthwiseIsa::kAvx2) rows_fn = &depthwise_rows_avx2;
#endif
  const DepthwiseArgs args{x, n, h, w, c, weight, conv_bias, norm_gamma, norm_beta, eps, y};
  pool.parallel_for(static_cast<int64_t>(n) * h, 1, [&](int64_t begin, int64_t end) { rows_fn(args, begin, end); });
}

void depthwise_conv7_layer_norm(const float* x, int n, int h, int w, int c, const float* weight,
                                const float* conv_bias, const float* norm_gamma, const float* norm_beta, float eps,
                                float* y, ThreadPool& pool) {
  const DepthwiseIsa isa = depthwise_isa_runs_here(DepthwiseIsa::kAvx512) ? DepthwiseIsa::kAvx512
                           : depthwise_isa_runs_here(DepthwiseIsa::kAvx2) ? DepthwiseIsa::kAvx2
                                                                          : DepthwiseIsa::kPortable;
  depthwise_conv7_layer_norm_isa(isa, x, n, h, w, c, weight, conv_bias, norm_gamma, norm_beta, eps, y, pool);
}

}  // namespace cclip
