// The two towers as libtorch tensor code (device- and dtype-agnostic; CUDA-only fusions are opt-in).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "weights.h"

namespace cclip {

// Intermediates of the first row, as float32 CPU tensors, in the order they were computed.
using TensorCaptures = std::vector<std::pair<std::string, at::Tensor>>;

// Compute runs in `dtype`; weights stored in another dtype (bf16 weights on the CPU) are cast at each use.

// pixels: [n, 3, S, S] float (any dtype; cast to `dtype`) -> [n, D] in `dtype`.
// `fused` runs the depthwise conv + LayerNorm of each block as one CUDA kernel (CUDA tensors only).
at::Tensor vision_forward(const ClipConfig& config, const VisionWeights& w, const at::Tensor& pixels, at::ScalarType dtype, bool fused, TensorCaptures* cap);

// tokens: [n, L] int64 (cut at the batch's last end token or later); ends: [n] int64 flat index i * L + end_i
// of each row's end token -> [n, D] in `dtype`.
at::Tensor text_forward(const ClipConfig& config, const TextWeights& w, const at::Tensor& tokens, const at::Tensor& ends, at::ScalarType dtype, TensorCaptures* cap);

// `w` in the dtype of `like` (a no-op when they match; undefined stays undefined).
inline at::Tensor as(const at::Tensor& w, const at::Tensor& like) {
  return !w.defined() || w.scalar_type() == like.scalar_type() ? w : w.to(like.scalar_type());
}
inline at::Tensor linear(const at::Tensor& x, const Linear& l) { return at::linear(x, as(l.w, x), as(l.b, x)); }
// A float32 CPU copy that later in-place updates of `t` cannot change.
inline at::Tensor snapshot(const at::Tensor& t) { return t.to(at::kFloat).cpu().contiguous().clone(); }

}  // namespace cclip
