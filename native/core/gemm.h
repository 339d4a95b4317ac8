// Linear layers: y[M, N] = epilogue(x[M, K] . W[N, K]^T + bias). W is packed once at load time into the
// layout the kernels want, in fp32 or bf16 (bf16 halves memory; products still accumulate in fp32).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "threadpool.h"

namespace cclip {

enum class Precision { F32, BF16 };

namespace gemm_detail {
struct KernelSet;  // one instruction-set variant of the kernels (gemm_internal.h)
}

// A weight matrix W[N, K] (PyTorch nn.Linear layout) in the kernels' private layout: column panels of
// `nr` output channels, each panel [K][nr] contiguous (zero-padded past N), 64-byte aligned. In bf16 the
// two halves of a panel row are interleaved so one 32-bit lane holds columns j and j + nr/2.
// Copies share the (immutable) packed data.
struct PackedWeight {
  int n = 0, k = 0;
  Precision precision = Precision::F32;
  int nr = 0;                                       // panel width
  const gemm_detail::KernelSet* kernels = nullptr;  // the variant this was packed for
  std::shared_ptr<void> data;                       // packed panels (float or uint16_t)
  size_t data_bytes = 0;
  size_t bytes() const { return data_bytes; }
};

// What to do with each output element after the bias:  y = residual + scale[n] * act(acc + bias[n]).
struct Epilogue {
  bool gelu = false;                // exact erf GELU
  const float* scale = nullptr;     // [N] per-column multiplier (ConvNeXt layer scale gamma), or null
  const float* residual = nullptr;  // [M, N] added last (may alias y), or null
};

PackedWeight pack_weight(const float* w /* [N, K] */, int n, int k, Precision precision);

// x: [M, K] row-major, y: [M, N] row-major; bias: [N] or null. x must not overlap y (residual may).
// Runs on `pool` (any size, including 1); safe to call concurrently with different pools.
void linear(const float* x, int m, const PackedWeight& w, const float* bias, float* y, const Epilogue& epilogue,
            ThreadPool& pool);

// fp32 <-> bf16 (round to nearest even; NaN stays a quiet NaN). Branch-free, so loops of them vectorise.
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t nan = static_cast<uint16_t>((u >> 16) | 0x40);
  const uint16_t rounded = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  return (u & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
}

inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Exact-erf GELU of one value, the same approximation the kernels use (|rel err| < 1e-6 vs. erf in double).
float gelu(float x);

}  // namespace cclip
