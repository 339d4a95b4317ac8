// One block computes a strip of TW output pixels along w, all channels: each thread convolves its channels
// for the whole strip (reusing each loaded input row across the TW outputs and 7 taps), parks the fp32
// results in shared memory [TW][C], then one warp per pixel normalizes over C and writes the output.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "dwconv_ln.h"

namespace cclip::kernels {
namespace {

constexpr int kThreads = 256;  // 8 warps: phase 2 normalizes up to 8 pixels at once
constexpr int kSharedBytes = 48 * 1024;  // the default dynamic shared memory limit (no opt-in needed)

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }  // round to nearest even

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// grid: (ceil(W / TW), H, N); block: kThreads; dynamic shared memory: TW * C floats.
template <typename T, int TW>
__global__ void __launch_bounds__(kThreads) dwconv7_ln_kernel(const T* __restrict__ x, const float* __restrict__ wt,
                                                               const float* __restrict__ cb, const float* __restrict__ lw,
                                                               const float* __restrict__ lb, T* __restrict__ y, int H, int W, int C,
                                                               float eps) {
  extern __shared__ float acc[];  // [TW][C]
  const int w0 = blockIdx.x * TW;
  const int oh = blockIdx.y;
  const int b = blockIdx.z;
  const int valid = min(TW, W - w0);  // outputs of this strip inside the image
  const T* xb = x + static_cast<size_t>(b) * H * W * C;

  // Phase 1: depthwise conv of the strip, channel by channel.
  for (int c = threadIdx.x; c < C; c += kThreads) {
    float out[TW];
    const float bias = cb[c];
#pragma unroll
    for (int t = 0; t < TW; t++) out[t] = bias;
    for (int dy = 0; dy < 7; dy++) {
      const int ih = oh + dy - 3;
      if (ih < 0 || ih >= H) continue;  // zero padding rows
      const T* row = xb + static_cast<size_t>(ih) * W * C + c;
      float in[TW + 6];  // inputs w0-3 .. w0+TW+2 of this row and channel
#pragma unroll
      for (int i = 0; i < TW + 6; i++) {
        const int iw = w0 + i - 3;
        in[i] = (iw >= 0 && iw < W) ? load(row + static_cast<size_t>(iw) * C) : 0.0f;
      }
#pragma unroll
      for (int dx = 0; dx < 7; dx++) {
        const float k = wt[(dy * 7 + dx) * C + c];
#pragma unroll
        for (int t = 0; t < TW; t++) out[t] = fmaf(in[t + dx], k, out[t]);
      }
    }
#pragma unroll
    for (int t = 0; t < TW; t++) acc[t * C + c] = out[t];
  }
  __syncthreads();

  // Phase 2: LayerNorm over C, one warp per output pixel (warp-uniform loop: every lane shuffles).
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int t = warp; t < valid; t += kThreads / 32) {
    const float* a = acc + t * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += a[c];
    const float mean = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
      const float d = a[c] - mean;
      v = fmaf(d, d, v);
    }
    const float rstd = rsqrtf(warp_sum(v) / C + eps);
    T* o = y + ((static_cast<size_t>(b) * H + oh) * W + (w0 + t)) * C;
    for (int c = lane; c < C; c += 32) store(o + c, (a[c] - mean) * rstd * lw[c] + lb[c]);
  }
}

template <typename T, int TW>
cudaError_t launch(const void* x, const float* wt, const float* cb, const float* lw, const float* lb, void* y, int n, int h, int w, int c,
                   float eps, cudaStream_t stream) {
  const dim3 grid((w + TW - 1) / TW, h, n);
  const size_t shared = static_cast<size_t>(TW) * c * sizeof(float);
  dwconv7_ln_kernel<T, TW><<<grid, kThreads, shared, stream>>>(static_cast<const T*>(x), wt, cb, lw, lb, static_cast<T*>(y), h, w, c, eps);
  return cudaGetLastError();
}

// The widest strip whose [TW][C] fp32 accumulators fit the shared memory limit.
template <typename T>
cudaError_t dispatch(const void* x, const float* wt, const float* cb, const float* lw, const float* lb, void* y, int n, int h, int w, int c,
                     float eps, cudaStream_t stream) {
  const size_t row = static_cast<size_t>(c) * sizeof(float);
  if (8 * row <= kSharedBytes) return launch<T, 8>(x, wt, cb, lw, lb, y, n, h, w, c, eps, stream);
  if (4 * row <= kSharedBytes) return launch<T, 4>(x, wt, cb, lw, lb, y, n, h, w, c, eps, stream);
  if (2 * row <= kSharedBytes) return launch<T, 2>(x, wt, cb, lw, lb, y, n, h, w, c, eps, stream);
  return launch<T, 1>(x, wt, cb, lw, lb, y, n, h, w, c, eps, stream);
}

}  // namespace

int dwconv7_layernorm_max_channels() { return kSharedBytes / static_cast<int>(sizeof(float)); }

int dwconv7_layernorm(ActType type, const void* x, const float* weight, const float* conv_bias, const float* ln_weight,
                      const float* ln_bias, void* y, int n, int h, int w, int c, float eps, CUstream_st* stream) {
  if (!x || !weight || !conv_bias || !ln_weight || !ln_bias || !y) return cudaErrorInvalidValue;
  if (n < 1 || n > 65535 || h < 1 || h > 65535 || w < 1 || c < 1 || c > dwconv7_layernorm_max_channels()) return cudaErrorInvalidValue;
  switch (type) {
    case ActType::kF32:
      return dispatch<float>(x, weight, conv_bias, ln_weight, ln_bias, y, n, h, w, c, eps, stream);
    case ActType::kBF16:
      return dispatch<__nv_bfloat16>(x, weight, conv_bias, ln_weight, ln_bias, y, n, h, w, c, eps, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace cclip::kernels
