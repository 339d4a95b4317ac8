// ConvNeXt's depthwise 7x7 conv (pad 3) fused with the LayerNorm that follows it, channels-last.
// Portable C++ (GCC/clang vector extensions, scalar elsewhere): each step keeps a [kStrip pixels x 16 channels]
// accumulator tile in registers and reuses every weight vector kStrip times. Input and weights are read in a
// channel-blocked layout (blocks of 16, then 8, then 1 channel; each block's pixels contiguous), so a tile streams
// through consecutive cache lines instead of striding by C (which at C = 1536 or 3072 maps every pixel of a row to
// the same L1 set). On x86-64 the same source is also compiled for
// AVX2+FMA and picked at run time (function-level target attribute, no intrinsics).
#include <algorithm>
#include <cstring>
#include <vector>

#include "ops.h"
#include "vec8.h"

namespace cclip {

namespace {

constexpr int kStrip = 4;     // output pixels per tile
constexpr int kPadLeft = 3;
constexpr int kPadRight = 3 + kStrip;  // the last strip may run past w; those lanes are computed and dropped

// Channel blocks: [0, c16) in 16s, [c16, c8) in 8s, then single channels. A block starting at channel cb with
// width bs holds its data at (block-independent size per channel) * cb, laid out [..., bs].
struct DepthwiseArgs {
  const float* padded;  // per image: for each channel block, [h, w + kPadLeft + kPadRight, bs], zero side columns
  int n, h, w, c;
  const float* weight;  // blocked: block at cb is [49, bs] at weight + 49 * cb
  const float* conv_bias;
  const float* norm_gamma;
  const float* norm_beta;
  float eps;
  float* y;  // [n, h, w, c]
};

// Output pixels ox..ox+kStrip-1 of row oy for the 8V-channel block at `block` (input [h, wp, 8V], weights [49, 8V]):
// acc[kStrip][V] over taps with ky in [ky_begin, ky_end). Each weight vector is loaded once and used kStrip times.
template <int V>
CCLIP_ALWAYS_INLINE void conv_tile(const float* block, int wp, int oy, int ky_begin, int ky_end, int ox,
                                   const float* block_weight, const float* bias, float* out, int c, int w) {
  constexpr int bs = 8 * V;
  Vec8 acc[kStrip][V];
  for (int v = 0; v < V; ++v) {
    const Vec8 b = load8(bias + 8 * v);
    for (int t = 0; t < kStrip; ++t) acc[t][v] = b;
  }
  for (int ky = ky_begin; ky < ky_end; ++ky) {
    const float* in_row = block + (static_cast<int64_t>(oy + ky - 3) * wp + ox) * bs;
    const float* taps = block_weight + ky * 7 * bs;
    for (int kx = 0; kx < 7; ++kx) {
      Vec8 tap[V];
      for (int v = 0; v < V; ++v) tap[v] = load8(taps + kx * bs + 8 * v);
      for (int t = 0; t < kStrip; ++t) {
        const float* px = in_row + (t + kx) * bs;  // padded column ox + t + kx
        for (int v = 0; v < V; ++v) acc[t][v] += load8(px + 8 * v) * tap[v];
      }
    }
  }
  const int valid = std::min(kStrip, w - ox);
  for (int t = 0; t < valid; ++t)
    for (int v = 0; v < V; ++v) store8(out + static_cast<int64_t>(ox + t) * c + 8 * v, acc[t][v]);
}

// A single-channel block (c % 8 leftovers): input [h, wp], weights [49].
CCLIP_ALWAYS_INLINE void conv_channel(const float* block, int wp, int oy, int ky_begin, int ky_end,
                                      const float* block_weight, float bias, float* out, int c, int w) {
  for (int ox = 0; ox < w; ++ox) {
    float acc = bias;
    for (int ky = ky_begin; ky < ky_end; ++ky)
      for (int kx = 0; kx < 7; ++kx) acc += block[static_cast<int64_t>(oy + ky - 3) * wp + ox + kx] * block_weight[ky * 7 + kx];
    out[static_cast<int64_t>(ox) * c] = acc;
  }
}

CCLIP_ALWAYS_INLINE void depthwise_rows(const DepthwiseArgs& a, int64_t begin, int64_t end, float* conv_row) {
  const int wp = a.w + kPadLeft + kPadRight, c = a.c;
  const int c16 = c - c % 16, c8 = c - c % 8;
  const int64_t plane = static_cast<int64_t>(a.h) * wp;  // floats per channel of one image's padded input
  for (int64_t task = begin; task < end; ++task) {
    const int image_index = static_cast<int>(task / a.h), oy = static_cast<int>(task % a.h);
    const float* image = a.padded + static_cast<int64_t>(image_index) * plane * c;
    const int ky_begin = std::max(0, 3 - oy), ky_end = std::min(7, a.h + 3 - oy);
    for (int cb = 0; cb < c16; cb += 16)
      for (int ox = 0; ox < a.w; ox += kStrip)
        conv_tile<2>(image + plane * cb, wp, oy, ky_begin, ky_end, ox, a.weight + 49 * cb, a.conv_bias + cb, conv_row + cb, c, a.w);
    for (int cb = c16; cb < c8; cb += 8)
      for (int ox = 0; ox < a.w; ox += kStrip)
        conv_tile<1>(image + plane * cb, wp, oy, ky_begin, ky_end, ox, a.weight + 49 * cb, a.conv_bias + cb, conv_row + cb, c, a.w);
    for (int ch = c8; ch < c; ++ch)
      conv_channel(image + plane * ch, wp, oy, ky_begin, ky_end, a.weight + 49 * ch, a.conv_bias[ch], conv_row + ch, c, a.w);
    float* out = a.y + (static_cast<int64_t>(image_index) * a.h + oy) * a.w * c;
    for (int ox = 0; ox < a.w; ++ox) {
      layer_norm_row(conv_row + static_cast<int64_t>(ox) * c, c, a.norm_gamma, a.norm_beta, a.eps,
                     out + static_cast<int64_t>(ox) * c);
    }
  }
}

// Width of the channel block that starts at cb.
inline int block_width(int cb, int c) { return cb < c - c % 16 ? 16 : cb < c - c % 8 ? 8 : 1; }

void depthwise_rows_portable(const DepthwiseArgs& a, int64_t begin, int64_t end, float* conv_row) {
  depthwise_rows(a, begin, end, conv_row);
}

#if CCLIP_X86_CLONES
CCLIP_TARGET_AVX2 void depthwise_rows_avx2(const DepthwiseArgs& a, int64_t begin, int64_t end, float* conv_row) {
  depthwise_rows(a, begin, end, conv_row);
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

void depthwise_conv7_layer_norm(const float* x, int n, int h, int w, int c, const float* weight,
                                const float* conv_bias, const float* norm_gamma, const float* norm_beta, float eps,
                                float* y, ThreadPool& pool) {
  // Re-lay the input channel-blocked with zero side columns, so the inner loops stream and need no bounds checks
  // (rows are clamped per output row instead).
  const int wp = w + kPadLeft + kPadRight;
  const int64_t plane = static_cast<int64_t>(h) * wp;
  std::vector<float> padded(static_cast<size_t>(n) * plane * c);
  pool.parallel_for(static_cast<int64_t>(n) * h, 4, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int image_index = static_cast<int>(row / h), iy = static_cast<int>(row % h);
      float* image = padded.data() + static_cast<int64_t>(image_index) * plane * c;
      const float* src_row = x + row * w * c;
      for (int cb = 0; cb < c;) {  // zero side columns
        const int bs = block_width(cb, c);
        float* dst = image + plane * cb + static_cast<int64_t>(iy) * wp * bs;
        std::memset(dst, 0, sizeof(float) * kPadLeft * bs);
        std::memset(dst + (kPadLeft + w) * bs, 0, sizeof(float) * kPadRight * bs);
        cb += bs;
      }
      for (int ix = 0; ix < w; ++ix) {  // read each pixel once, in order; scatter its channel blocks
        const float* src = src_row + static_cast<int64_t>(ix) * c;
        const int64_t column = static_cast<int64_t>(iy) * wp + kPadLeft + ix;
        int cb = 0;
        for (; cb < c - c % 16; cb += 16) std::memcpy(image + plane * cb + column * 16, src + cb, 16 * sizeof(float));
        for (; cb < c - c % 8; cb += 8) std::memcpy(image + plane * cb + column * 8, src + cb, 8 * sizeof(float));
        for (; cb < c; ++cb) image[plane * cb + column] = src[cb];
      }
    }
  });
  const DepthwiseArgs args{padded.data(), n, h, w, c, weight, conv_bias, norm_gamma, norm_beta, eps, y};
  auto* rows_fn = &depthwise_rows_portable;
#if CCLIP_X86_CLONES
  if (cpu_has_avx2_fma()) rows_fn = &depthwise_rows_avx2;
#endif
  pool.parallel_for(static_cast<int64_t>(n) * h, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> conv_row(static_cast<size_t>(w) * c);
    rows_fn(args, begin, end, conv_row.data());
  });
}

}  // namespace cclip
