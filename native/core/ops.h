// Non-GEMM operators of the two towers (ops.cc; depthwise_conv.cc; attention.cc). Activations are channels-last
// (NHWC / [rows, features]) fp32.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gemm.h"
#include "layer_norm.h"
#include "threadpool.h"
#include "weights.h"

namespace cclip {

// A linear layer: packed W[N, K] and an optional fp32 bias[N].
struct LinearLayer {
  PackedWeight weight;
  std::vector<float> bias;
  int in_features() const { return weight.k; }
  int out_features() const { return weight.n; }
  size_t bytes() const { return weight.bytes() + bias.size() * sizeof(float); }
};

// The packed layer of weight [n, k] and bias [n] (no bias when bias_name is empty), read from `loader`.
LinearLayer load_linear(WeightLoader& loader, const std::string& weight_name, const std::string& bias_name, int n, int k,
                        Precision precision);

// y[M, N] = epilogue(x[M, K] . W^T + b)
void apply_linear(const LinearLayer& layer, const float* x, int m, float* y, const Epilogue& epilogue, ThreadPool& pool);

// Row-wise LayerNorm of x[rows, dim] into y[rows, dim] (may alias), rows spread over the pool.
void layer_norm_rows(const float* x, int64_t rows, int dim, const float* gamma, const float* beta, float eps, float* y,
                     ThreadPool& pool);

// PyTorch depthwise weight [c, 1, 7, 7] -> the channel-blocked layout depthwise_conv7_layer_norm reads.
std::vector<float> pack_depthwise_weight(const float* weight, int c);

// Fused ConvNeXt block front: y = LayerNorm(depthwise_conv7x7(x) + conv_bias) per pixel.
// x, y: [n, h, w, c] (distinct buffers); weight: from pack_depthwise_weight; conv_bias: [c].
void depthwise_conv7_layer_norm(const float* x, int n, int h, int w, int c, const float* weight,
                                const float* conv_bias, const float* norm_gamma, const float* norm_beta, float eps,
                                float* y, ThreadPool& pool);

// Stem patches: pixels [n, 3, s, s] NCHW -> patches [n * (s/4) * (s/4), 3 * 4 * 4] in (channel, ky, kx) order,
// which is the PyTorch conv weight's own [C_out, 3, 4, 4] layout.
void stem_patchify(const float* pixels, int n, int size, float* patches, ThreadPool& pool);

// Downsample patches with the preceding LayerNorm fused: x [n, h, w, c] -> patches [n * h/2 * w/2, 2 * 2 * c]
// in (ky, kx, channel) order, each pixel's c values layer-normed.
void downsample_patchify_layer_norm(const float* x, int n, int h, int w, int c, const float* gamma,
                                    const float* beta, float eps, float* patches, ThreadPool& pool);

// Global average pool: x [n, hw, c] -> y [n, c].
void global_average_pool(const float* x, int n, int hw, int c, float* y);

// Causal multi-head self-attention. qkv: [n, len, 3 * width] (q | k | v, heads contiguous within each);
// out: [n, len, width]. Softmax in fp32, scores scaled by 1 / sqrt(head_dim).
void causal_attention(const float* qkv, int n, int len, int width, int heads, float* out, ThreadPool& pool);
// The same for sequences of their own lengths, rows back to back: sequence s is rows [first_row[s], first_row[s + 1])
// of qkv [rows, 3 * width] and out [rows, width] (first_row: [n + 1], rising; an empty sequence is refused).
void causal_attention_packed(const float* qkv, int n, const int* first_row, int width, int heads, float* out,
                             ThreadPool& pool);
// Only each sequence's last row: out [n, width], row s equal to that row of causal_attention_packed's output. All a
// last layer needs when only the end-token rows are read.
void causal_attention_last(const float* qkv, int n, const int* first_row, int width, int heads, float* out,
                           ThreadPool& pool);

// [hw, c] channels-last -> [c, hw] (for captures in PyTorch's [C, H, W] layout).
std::vector<float> channels_last_to_first(const float* x, int hw, int c);

}  // namespace cclip
