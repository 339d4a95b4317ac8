// open_clip text transformer: token + positional embedding, pre-norm residual blocks with causal multi-head
// attention and a GELU MLP, final LayerNorm, the end token's row, projection.
#include <torch/version.h>

#include <cmath>
#include <limits>

#include "forward.h"

namespace cclip {
namespace {

at::Tensor norm(const at::Tensor& x, const Norm& n, double eps) {
  return at::layer_norm(x, {x.size(-1)}, as(n.w, x), as(n.b, x), eps);
}

// Causal self-attention of q, k, v: [n, heads, L, hd] -> [n, heads, L, hd].
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
#else
  const int64_t L = q.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  at::Tensor mask = at::full({L, L}, -std::numeric_limits<double>::infinity(), q.options()).triu(1);  // [L, L]
  at::Tensor scores = at::matmul(q * scale, k.transpose(-2, -1)) + mask;                          // [n, heads, L, L]
  return at::matmul(at::softmax(scores, -1), v);
#endif
}

// attention(ln_1(x)) of x: [n, L, W] -> [n, L, W] (heads joined again).
at::Tensor attend(const at::Tensor& x, const TextBlock& b, int64_t heads, double eps) {
  const int64_t n = x.size(0), L = x.size(1), W = x.size(2), hd = W / heads;
  at::Tensor qkv = linear(norm(x, b.ln1, eps), b.qkv);           // [n, L, 3W]
  qkv = qkv.view({n, L, 3, heads, hd}).permute({2, 0, 3, 1, 4});  // [3, n, heads, L, hd]
  at::Tensor o = causal_attention(qkv[0], qkv[1], qkv[2]);         // [n, heads, L, hd]
  return o.permute({0, 2, 1, 3}).reshape({n, L, W});               // [n, L, W]
}

// x (any leading dims, W last) += c_proj(gelu(c_fc(ln_2(x)))), in place.
void mlp(at::Tensor& x, const TextBlock& b, double eps) {
  at::Tensor h = at::gelu(linear(norm(x, b.ln2, eps), b.fc));  // [..., 4W]
  x.add_(linear(h, b.proj));
}

// x: [n, L, W] -> x + out_proj(attention(ln_1(x))) -> + c_proj(gelu(c_fc(ln_2(x)))), in place.
void block(at::Tensor& x, const TextBlock& b, int64_t heads, double eps) {
  x.add_(linear(attend(x, b, heads, eps), b.out));
  mlp(x, b, eps);
}

// The same block for the end-token rows alone (all that is read after the last block): [n, W], row s the block's
// output at position ends[s] - s * L (ends index the [n * L] rows).
at::Tensor block_end_rows(const at::Tensor& x, const TextBlock& b, int64_t heads, double eps, const at::Tensor& ends) {
  const int64_t W = x.size(2);
  at::Tensor o = attend(x, b, heads, eps).reshape({-1, W}).index_select(0, ends);  // [n, W]
  at::Tensor rows = x.reshape({-1, W}).index_select(0, ends);                        // [n, W] (a copy)
  rows.add_(linear(o, b.out));
  mlp(rows, b, eps);
  return rows;
}

void keep(TensorCaptures* cap, const std::string& name, const at::Tensor& x) {  // row 0: [L, W] fp32
  if (cap) cap->emplace_back(name, snapshot(x[0]));
}

}  // namespace

at::Tensor text_forward(const ClipConfig& config, const TextWeights& w, const at::Tensor& tokens, const at::Tensor& ends, at::ScalarType dtype, TensorCaptures* cap) {
  const TextConfig& a = config.text;
  const int64_t n = tokens.size(0), L = tokens.size(1);
  at::Tensor x = at::embedding(w.tok_emb, tokens).to(dtype) + w.pos_emb.slice(0, 0, L).to(dtype);  // [n, L, W]
  keep(cap, "text0.embed", x);
  // Without captures the last block runs past its attention on the end-token rows only.
  const int64_t full_blocks = cap ? a.layers : a.layers - 1;
  for (int64_t l = 0; l < full_blocks; l++) {
    block(x, w.blocks[l], a.heads, a.norm_eps);
    keep(cap, "text0.block" + std::to_string(l), x);
  }
  at::Tensor rows = full_blocks < a.layers ? block_end_rows(x, w.blocks[a.layers - 1], a.heads, a.norm_eps, ends)
                                           : x.reshape({n * L, a.width}).index_select(0, ends);  // [n, W]
  rows = norm(rows, w.ln_final, a.norm_eps);
  return at::matmul(rows, as(w.projection, rows));  // [n, D]
}

}  // namespace cclip
