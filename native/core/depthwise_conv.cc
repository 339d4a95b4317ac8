// ConvNeXt's depthwise 7x7 conv (pad 3) fused with the LayerNorm that follows it, channels-last.
// Portable C++ (GCC/clang vector extensions, scalar elsewhere). A task is a band of output rows: for each block of 16
// channels the band's input rows are copied contiguous into a small per-thread buffer (in x a block's pixels are c
// floats apart, which maps them onto few L1 sets), and every output row of the band is convolved from it. Within a
// row, strips of T output pixels keep T accumulators in registers; per kernel row the 7 tap vectors are loaded once
// and each input pixel of the strip's window once (a sliding window: each input vector feeds up to 7 accumulators),
// so a strip costs (T + 6) + 7 loads per 7T FMAs. Out-of-image taps are skipped, not multiplied by padding. The
// conv lands in y, which the LayerNorm then normalises in place while the band is still in cache. Weights are
// channel-blocked (blocks of 16, then 8, then 1 channel; a block's 49 taps contiguous). On x86-64 the same source is
// also compiled for AVX2+FMA (8-lane vectors) and AVX-512 (16-lane vectors), picked at run time (function-level
// target attributes, no intrinsics).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "depthwise_conv.h"
#include "ops.h"
#include "vec8.h"

namespace cclip {

namespace {

struct DepthwiseArgs {
  const float* x;  // [n, h, w, c]
  int n, h, w, c;
  const float* weight;  // blocked: block at cb is [49, bs] at weight + 49 * cb
  const float* conv_bias;
  const float* norm_gamma;
  const float* norm_beta;
  float eps;
  float* y;       // [n, h, w, c]
  int band_rows;  // output rows per task (the last band of an image may be shorter)
};

// One output row of one channel vector: where its input rows are, where its outputs go, its valid kernel rows.
struct RowTask {
  const float* in;          // input row `in_row_origin`, column 0, this vector's first channel
  int64_t in_px, in_row;    // input strides (floats) between columns and rows
  int in_row_origin;        // the image row `in` points at
  float* out;               // output row oy, column 0, this vector's first channel; columns c floats apart
  int w, c, oy, ky_begin, ky_end;
};

// out[ox + t] for t < T = conv bias + the in-image taps. taps: [49] vectors tap_stride apart; bias: this vector's.
template <typename V, int T>
CCLIP_ALWAYS_INLINE void conv_strip(const RowTask& r, int ox, const float* taps, int tap_stride, const float* bias) {
  V acc[T];
  const V b = load_vec<V>(bias);
  for (int t = 0; t < T; ++t) acc[t] = b;
  // Window column j is input column ox - 3 + j; the in-image ones are [j_begin, j_end).
  const int j_begin = std::max(0, 3 - ox), j_end = std::min(T + 6, r.w + 3 - ox);
  const float* in_row = r.in + (r.oy + r.ky_begin - 3 - r.in_row_origin) * r.in_row + (ox - 3) * r.in_px;
  for (int ky = r.ky_begin; ky < r.ky_end; ++ky, in_row += r.in_row) {
    V tap[7];
    for (int kx = 0; kx < 7; ++kx) tap[kx] = load_vec<V>(taps + (ky * 7 + kx) * tap_stride);
    int64_t offset = 0;  // of column j from in_row
    // Input column j feeds output t = j - kx through tap kx.
#pragma GCC unroll 32
    for (int j = 0; j < T + 6; ++j, offset += r.in_px) {
      if (j < j_begin || j >= j_end) continue;
      const V in = load_vec<V>(in_row + offset);
#pragma GCC unroll 7
      for (int kx = 0; kx < 7; ++kx) {
        const int t = j - kx;
        if (t >= 0 && t < T) acc[t] += in * tap[kx];
      }
    }
  }
  for (int t = 0; t < T; ++t) store_vec<V>(r.out + static_cast<int64_t>(ox + t) * r.c, acc[t]);
}

// All output pixels of the row from ox on, for one channel vector: strips of T, the rest in strips of T/2, T/4...
template <typename V, int T>
CCLIP_ALWAYS_INLINE void conv_strips(const RowTask& r, int ox, const float* taps, int tap_stride, const float* bias) {
  for (; ox + T <= r.w; ox += T) conv_strip<V, T>(r, ox, taps, tap_stride, bias);
  if constexpr (T > 1) {
    if (ox < r.w) conv_strips<V, T / 2>(r, ox, taps, tap_stride, bias);
  }
}

// One task is a band of up to a.band_rows output rows of one image. Channel block by channel block, the band's rows
// are convolved while the block's input rows are in cache: a 16-channel block's rows are first copied contiguous
// ([rows, w, 16] in `block_buf`; in x a block's pixels are c floats apart, which maps them onto few L1 sets), then
// the band's pixels are normalised.
// Strip widths per vector kind: kWide16 > 0 runs 16-channel blocks as Vec16 strips of that width, else as two
// Vec8 halves; kStrip8 for Vec8; kStrip1 for single channels.
template <int kWide16, int kStrip8, int kStrip1, typename NormVec>
CCLIP_ALWAYS_INLINE void depthwise_rows(const DepthwiseArgs& a, int64_t begin, int64_t end, float* block_buf) {
  const int c = a.c, c16 = c - c % 16, c8 = c - c % 8;
  const int bands_per_image = (a.h + a.band_rows - 1) / a.band_rows;
  const int64_t row_floats = static_cast<int64_t>(a.w) * c;
  for (int64_t task = begin; task < end; ++task) {
    const int image_index = static_cast<int>(task / bands_per_image);
    const int oy_begin = static_cast<int>(task % bands_per_image) * a.band_rows;
    const int oy_end = std::min(a.h, oy_begin + a.band_rows);
    const int iy_begin = std::max(0, oy_begin - 3), iy_end = std::min(a.h, oy_end + 3);
    const float* image = a.x + image_index * a.h * row_floats;
    float* y_image = a.y + image_index * a.h * row_floats;
    // Row oy of the channel vector at ch, reading `in` laid out with the given strides from image row in_origin.
    auto row_task = [&](int oy, int ch, const float* in, int64_t in_px, int64_t in_row, int in_origin) {
      RowTask r;
      r.in = in;
      r.in_px = in_px;
      r.in_row = in_row;
      r.in_row_origin = in_origin;
      r.out = y_image + oy * row_floats + ch;
      r.w = a.w;
      r.c = c;
      r.oy = oy;
      r.ky_begin = std::max(0, 3 - oy);
      r.ky_end = std::min(7, a.h + 3 - oy);
      return r;
    };
    for (int cb = 0; cb < c16; cb += 16) {
      const float* taps = a.weight + 49 * cb;
      const float* bias = a.conv_bias + cb;
      for (int iy = iy_begin; iy < iy_end; ++iy)
        for (int ix = 0; ix < a.w; ++ix)
          std::memcpy(block_buf + (static_cast<int64_t>(iy - iy_begin) * a.w + ix) * 16,
                      image + iy * row_floats + static_cast<int64_t>(ix) * c + cb, 16 * sizeof(float));
      const float* in = block_buf;
      const int64_t in_px = 16, in_row = static_cast<int64_t>(a.w) * 16;
      const int in_origin = iy_begin;
      for (int oy = oy_begin; oy < oy_end; ++oy) {
        if constexpr (kWide16 > 0) {
          conv_strips<Vec16, kWide16>(row_task(oy, cb, in, in_px, in_row, in_origin), 0, taps, 16, bias);
        } else {
          conv_strips<Vec8, kStrip8>(row_task(oy, cb, in, in_px, in_row, in_origin), 0, taps, 16, bias);
          conv_strips<Vec8, kStrip8>(row_task(oy, cb + 8, in + 8, in_px, in_row, in_origin), 0, taps + 8, 16, bias + 8);
        }
      }
    }
    // The leftover 8- and 1-channel blocks read x in place.
    for (int cb = c16; cb < c8; cb += 8)
      for (int oy = oy_begin; oy < oy_end; ++oy)
        conv_strips<Vec8, kStrip8>(row_task(oy, cb, image + cb, c, row_floats, 0), 0, a.weight + 49 * cb, 8,
                                   a.conv_bias + cb);
    for (int ch = c8; ch < c; ++ch)
      for (int oy = oy_begin; oy < oy_end; ++oy)
        conv_strips<float, kStrip1>(row_task(oy, ch, image + ch, c, row_floats, 0), 0, a.weight + 49 * ch, 1,
                                    a.conv_bias + ch);
    for (int64_t p = static_cast<int64_t>(oy_begin) * a.w; p < static_cast<int64_t>(oy_end) * a.w; ++p) {
      float* px = y_image + p * c;
      layer_norm_row<NormVec>(px, c, a.norm_gamma, a.norm_beta, a.eps, px);
    }
  }
}

// Output rows per task: 8 (a block's 14 input rows serve 8 output rows; the band's conv outputs, 8 rows of w * c =
// 786 KB at every XXLarge stage, are still in L2 for the LayerNorm), fewer where an image would leave a thread idle.
int depthwise_band_rows(int h, int threads) {
  return std::max(1, std::min(8, (h + threads - 1) / std::max(1, threads)));
}

// Width of the channel block that starts at cb.
inline int block_width(int cb, int c) { return cb < c - c % 16 ? 16 : cb < c - c % 8 ? 8 : 1; }

// Vec8 with SSE / simd128 is two registers: 4 strips keep 8 accumulators.
void depthwise_rows_portable(const DepthwiseArgs& a, int64_t begin, int64_t end, float* block_buf) {
  depthwise_rows<0, 4, 8, Vec8>(a, begin, end, block_buf);
}

#if CCLIP_X86_CLONES
// 16 ymm: 8 accumulators, 7 taps, 1 input.
CCLIP_TARGET_AVX2 void depthwise_rows_avx2(const DepthwiseArgs& a, int64_t begin, int64_t end, float* block_buf) {
  depthwise_rows<0, 8, 8, Vec8>(a, begin, end, block_buf);
}

// 32 zmm: 16 accumulators, 7 taps, 1 input.
CCLIP_TARGET_AVX512 void depthwise_rows_avx512(const DepthwiseArgs& a, int64_t begin, int64_t end, float* block_buf) {
  depthwise_rows<16, 8, 8, Vec16>(a, begin, end, block_buf);
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
  if (!depthwise_isa_runs_here(isa))
    throw Error("E_INVALID_ARGUMENT", "depthwise_conv7_layer_norm: this CPU does not run the requested ISA variant");
  auto* rows_fn = &depthwise_rows_portable;
#if CCLIP_X86_CLONES
  if (isa == DepthwiseIsa::kAvx512) rows_fn = &depthwise_rows_avx512;
  if (isa == DepthwiseIsa::kAvx2) rows_fn = &depthwise_rows_avx2;
#endif
  const int band_rows = depthwise_band_rows(h, pool.size());
  const DepthwiseArgs args{x, n, h, w, c, weight, conv_bias, norm_gamma, norm_beta, eps, y, band_rows};
  pool.parallel_for(static_cast<int64_t>(n) * ((h + band_rows - 1) / band_rows), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> block_buf(c >= 16 ? static_cast<size_t>(std::min(h, band_rows + 6)) * w * 16 : 0);
    rows_fn(args, begin, end, block_buf.data());
  });
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
