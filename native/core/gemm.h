// Linear layers: y[M, N] = epilogue(x[M, K] . W[N, K]^T + bias). W is packed once at load time into the
// layout the kernels want, in fp32 or bf16 (bf16 halves memory; products still accumulate in fp32).
#pragma once
#include <cstdint>
#include <vector>

#include "threadpool.h"

namespace cclip {

enum class Precision { F32, BF16 };

// A weight matrix W[N, K] (PyTorch nn.Linear layout) in the kernels' private layout.
struct PackedWeight {
  int n = 0, k = 0;
  Precision precision = Precision::F32;
  std::vector<float> f32;      // used when precision == F32
  std::vector<uint16_t> bf16;  // used when precision == BF16 (upper halves of fp32, round to nearest even)
  size_t bytes() const { return f32.size() * sizeof(float) + bf16.size() * sizeof(uint16_t); }
};

// What to do with each output element after the bias:  y = residual + scale[n] * act(acc + bias[n]).
struct Epilogue {
  bool gelu = false;                // exact erf GELU
  const float* scale = nullptr;     // [N] per-column multiplier (ConvNeXt layer scale gamma), or null
  const float* residual = nullptr;  // [M, N] added last (may alias y), or null
};

PackedWeight pack_weight(const float* w /* [N, K] */, int n, int k, Precision precision);

// x: [M, K] row-major, y: [M, N] row-major; bias: [N] or null.
void linear(const float* x, int m, const PackedWeight& w, const float* bias, float* y, const Epilogue& epilogue,
            ThreadPool& pool);

// fp32 <-> bf16 helpers (round to nearest even; NaN stays NaN).
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t h);

}  // namespace cclip
