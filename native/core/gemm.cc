// Straightforward reference implementation of gemm.h (correct, not fast); the tuned kernels replace it.
#include "gemm.h"

#include <cmath>
#include <cstring>

namespace cclip {

uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

PackedWeight pack_weight(const float* w, int n, int k, Precision precision) {
  PackedWeight p;
  p.n = n;
  p.k = k;
  p.precision = precision;
  const size_t count = static_cast<size_t>(n) * k;
  if (precision == Precision::F32) {
    p.f32.assign(w, w + count);
  } else {
    p.bf16.resize(count);
    for (size_t i = 0; i < count; ++i) p.bf16[i] = float_to_bf16(w[i]);
  }
  return p;
}

static inline float gelu_erf(float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); }

void linear(const float* x, int m, const PackedWeight& w, const float* bias, float* y, const Epilogue& ep,
            ThreadPool& pool) {
  const int n = w.n, k = w.k;
  pool.parallel_for(m, 1, [&](int64_t row_begin, int64_t row_end) {
    std::vector<float> row(n);
    for (int64_t i = row_begin; i < row_end; ++i) {
      const float* xi = x + i * k;
      for (int j = 0; j < n; ++j) {
        float acc = 0.f;
        if (w.precision == Precision::F32) {
          const float* wj = w.f32.data() + static_cast<size_t>(j) * k;
          for (int t = 0; t < k; ++t) acc += xi[t] * wj[t];
        } else {
          const uint16_t* wj = w.bf16.data() + static_cast<size_t>(j) * k;
          for (int t = 0; t < k; ++t) acc += xi[t] * bf16_to_float(wj[t]);
        }
        float v = acc + (bias ? bias[j] : 0.f);
        if (ep.gelu) v = gelu_erf(v);
        if (ep.scale) v *= ep.scale[j];
        row[j] = v;
      }
      float* yi = y + i * n;
      for (int j = 0; j < n; ++j) yi[j] = row[j] + (ep.residual ? ep.residual[i * n + j] : 0.f);
    }
  });
}

}  // namespace cclip
