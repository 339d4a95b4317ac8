// ConvNeXt trunk (channels-last: activations are [n, H, W, C] contiguous) + open_clip projection head.
#include "forward.h"
#include "fused_ops.h"

namespace cclip {
namespace {

at::Tensor norm_c(const at::Tensor& x, const Norm& n, double eps) {  // LayerNorm over the last (channel) dim
  return at::layer_norm(x, {x.size(-1)}, as(n.w, x), as(n.b, x), eps);
}

void keep(TensorCaptures* cap, const std::string& name, const at::Tensor& nhwc) {  // row 0 as [C, H, W] fp32
  if (cap) cap->emplace_back(name, snapshot(nhwc[0].permute({2, 0, 1})));
}

// Depthwise 7x7 conv (padding 3) + LayerNorm: [n, H, W, C] -> [n, H, W, C].
at::Tensor dwconv_norm(const at::Tensor& x, const ConvBlock& b, double eps, bool fused) {
  if (fused) return dwconv7_layernorm(x, b, eps);
  const int64_t C = x.size(3);
  at::Tensor y = at::conv2d(x.permute({0, 3, 1, 2}), as(b.dw_w, x), as(b.dw_b, x), 1, 3, 1, C);  // NCHW view of NHWC memory
  return norm_c(y.permute({0, 2, 3, 1}).contiguous(), b.norm, eps);
}

// x + gamma * fc2(gelu(fc1(norm(dwconv(x))))), gamma folded into fc2; updates x in place.
void block(at::Tensor& x, const ConvBlock& b, double eps, bool fused) {
  at::Tensor h = dwconv_norm(x, b, eps, fused);  // [n, H, W, C]
  h = linear(h, b.fc1);            // [n, H, W, 4C]
  h = at::gelu(h);
  h = linear(h, b.fc2);  // [n, H, W, C]
  x.add_(h);
}

// LayerNorm, then the 2x2 stride-2 conv as a GEMM over (kh, kw, cin) patches: [n, H, W, Ci] -> [n, H/2, W/2, Co].
at::Tensor downsample(const at::Tensor& x, const Downsample& d, double eps) {
  const int64_t n = x.size(0), H = x.size(1) / 2, W = x.size(2) / 2, C = x.size(3);
  at::Tensor y = norm_c(x, d.norm, eps);
  y = y.view({n, H, 2, W, 2, C}).permute({0, 1, 3, 2, 4, 5}).reshape({n, H, W, 4 * C});
  return linear(y, d.conv);
}

}  // namespace

at::Tensor vision_forward(const ClipConfig& config, const VisionWeights& w, const at::Tensor& pixels, at::ScalarType dtype, bool fused, TensorCaptures* cap) {
  const VisionConfig& a = config.vision;
  const double eps = a.norm_eps;
  const int64_t n = pixels.size(0), S = a.image_size / 4;
  // stem: 4x4 stride-4 conv as a GEMM over (cin, kh, kw) patches, then LayerNorm: [n, 3, 4S, 4S] -> [n, S, S, C0]
  at::Tensor x = pixels.to(dtype).view({n, 3, S, 4, S, 4}).permute({0, 2, 4, 1, 3, 5}).reshape({n, S, S, 48});
  x = norm_c(linear(x, w.stem), w.stem_norm, eps);
  keep(cap, "image0.stem", x);
  for (int s = 0; s < 4; s++) {
    if (s > 0) x = downsample(x, w.down[s], eps);
    for (const auto& b : w.blocks[s]) block(x, b, eps, fused);
    keep(cap, "image0.stage" + std::to_string(s), x);
  }
  // head: global average pool, LayerNorm, projection: [n, H, W, C] -> [n, C] -> [n, D]
  at::Tensor pooled = norm_c(x.mean({1, 2}), w.head_norm, eps);
  if (cap) cap->emplace_back("image0.pooled", snapshot(pooled[0]));
  at::Tensor out = linear(pooled, w.proj);
  if (w.proj2.w.defined()) out = linear(at::gelu(out), w.proj2);
  return out;
}

}  // namespace cclip
