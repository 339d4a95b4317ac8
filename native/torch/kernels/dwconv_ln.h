// Fused depthwise 7x7 conv + LayerNorm over channels for channels-last activations (ConvNeXt block head).
// Raw-pointer interface, no libtorch: compiled by nvcc alone (scripts/compile-cuda-kernels.sh).
#pragma once

struct CUstream_st;  // cudaStream_t

namespace cclip::kernels {

enum class ActType : int { kF32 = 0, kBF16 = 1 };

// y[b, i, j, :] = LayerNorm_C(conv_bias + sum_{dy,dx} x[b, i+dy-3, j+dx-3, :] * weight[dy, dx, :]) * ln_weight + ln_bias
//   x, y:     [n, h, w, c] contiguous, of `type` (y must not overlap x); zero padding 3, stride 1
//   weight:   [7, 7, c] float32, tap-major: weight[(dy * 7 + dx) * c + ch] = conv_dw.weight[ch, 0, dy, dx]
//   conv_bias, ln_weight, ln_bias: [c] float32
// Conv accumulation and LayerNorm statistics (two-pass mean / variance) are float32. Launches on `stream`
// and returns 0 or a cudaError_t value (cudaErrorInvalidValue for sizes outside the limits below).
int dwconv7_layernorm(ActType type, const void* x, const float* weight, const float* conv_bias, const float* ln_weight,
                      const float* ln_bias, void* y, int n, int h, int w, int c, float eps, CUstream_st* stream);

// Limits: 1 <= c <= dwconv7_layernorm_max_channels(), 1 <= n, h <= 65535, 1 <= w.
int dwconv7_layernorm_max_channels();

}  // namespace cclip::kernels
