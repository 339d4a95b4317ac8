// LayerNorm of one row, inline so vectorised callers (depthwise_conv.cc's AVX2 / AVX-512 clones) compile it for
// their target and vector width.
#pragma once
#include <cmath>

#include "vec8.h"

namespace cclip {

// y[dim] = (x - mean) / sqrt(var + eps) * gamma + beta, statistics in fp32 (two-pass) over four independent V
// accumulators (one chain would be bound by the add latency). y may alias x.
template <typename V = Vec8>
CCLIP_ALWAYS_INLINE void layer_norm_row(const float* x, int dim, const float* gamma, const float* beta, float eps,
                                        float* y) {
  constexpr int L = sizeof(V) / sizeof(float);
  const V zero = splat_vec<V>(0.f);
  V s0 = zero, s1 = zero, s2 = zero, s3 = zero;
  int i = 0;
  for (; i + 4 * L <= dim; i += 4 * L) {
    s0 += load_vec<V>(x + i);
    s1 += load_vec<V>(x + i + L);
    s2 += load_vec<V>(x + i + 2 * L);
    s3 += load_vec<V>(x + i + 3 * L);
  }
  for (; i + L <= dim; i += L) s0 += load_vec<V>(x + i);
  float sum = lane_sum<V>((s0 + s1) + (s2 + s3));
  for (; i < dim; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(dim);
  const V mean_v = splat_vec<V>(mean);
  s0 = s1 = s2 = s3 = zero;
  i = 0;
  for (; i + 4 * L <= dim; i += 4 * L) {
    const V d0 = load_vec<V>(x + i) - mean_v, d1 = load_vec<V>(x + i + L) - mean_v;
    const V d2 = load_vec<V>(x + i + 2 * L) - mean_v, d3 = load_vec<V>(x + i + 3 * L) - mean_v;
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  for (; i + L <= dim; i += L) {
    const V d = load_vec<V>(x + i) - mean_v;
    s0 += d * d;
  }
  float squares = lane_sum<V>((s0 + s1) + (s2 + s3));
  for (; i < dim; ++i) squares += (x[i] - mean) * (x[i] - mean);
  const float inv_std = 1.0f / std::sqrt(squares / static_cast<float>(dim) + eps);
  const V inv_std_v = splat_vec<V>(inv_std);
  i = 0;
  for (; i + L <= dim; i += L)
    store_vec<V>(y + i, (load_vec<V>(x + i) - mean_v) * inv_std_v * load_vec<V>(gamma + i) + load_vec<V>(beta + i));
  for (; i < dim; ++i) y[i] = (x[i] - mean) * inv_std * gamma[i] + beta[i];
}

}  // namespace cclip
