// LayerNorm of one row, inline so vectorised callers (depthwise_conv.cc's AVX2 clone) compile it for their target.
#pragma once
#include <cmath>

namespace cclip {

// Sum with 8 independent accumulators so the compiler vectorises it without -ffast-math.
inline float sum_lanes(const float* __restrict x, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j];
  float total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) total += x[i];
  return total;
}

inline float sum_squared_deviation(const float* __restrict x, int n, float mean) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const float d = x[i + j] - mean;
      acc[j] += d * d;
    }
  float total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) total += (x[i] - mean) * (x[i] - mean);
  return total;
}

// y[dim] = (x - mean) / sqrt(var + eps) * gamma + beta, statistics in fp32 (two-pass). y may alias x.
inline void layer_norm_row(const float* x, int dim, const float* gamma, const float* beta, float eps, float* y) {
  const float mean = sum_lanes(x, dim) / static_cast<float>(dim);
  const float variance = sum_squared_deviation(x, dim, mean) / static_cast<float>(dim);
  const float inv_std = 1.0f / std::sqrt(variance + eps);
  for (int i = 0; i < dim; ++i) y[i] = (x[i] - mean) * inv_std * gamma[i] + beta[i];
}

}  // namespace cclip
