#include "text_transformer.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "gemm_pack.h"
#include "profile.h"

namespace cclip {

void EmbeddingTable::set(std::vector<float> values, int r, int c, Precision precision) {
  rows = r;
  cols = c;
  f32.clear();
  bf16.clear();
  if (precision == Precision::F32) {
    f32 = std::move(values);
  } else {
    bf16.resize(values.size());
    for (size_t i = 0; i < values.size(); ++i) bf16[i] = float_to_bf16(values[i]);
  }
}

void EmbeddingTable::add_row_to(int row, float* out) const {
  const size_t base = static_cast<size_t>(row) * cols;
  if (!f32.empty()) {
    for (int i = 0; i < cols; ++i) out[i] += f32[base + i];
  } else {
    for (int i = 0; i < cols; ++i) out[i] += bf16_to_float(bf16[base + i]);
  }
}

void TextTower::load(const TextConfig& config, int embed_dim, WeightLoader& loader, Precision precision) {
  config_ = config;
  embed_dim_ = embed_dim;
  const int width = config.width;
  token_embedding_.set(loader.read("token_embedding.weight"), config.vocab_size, width, precision);
  positional_embedding_.set(loader.read("positional_embedding"), config.context_length, width, Precision::F32);
  blocks_.resize(config.layers);
  for (int l = 0; l < config.layers; ++l) {
    const std::string name = "transformer.resblocks." + std::to_string(l);
    TransformerBlock& b = blocks_[l];
    b.ln1_weight = loader.read(name + ".ln_1.weight");
    b.ln1_bias = loader.read(name + ".ln_1.bias");
    b.in_proj = load_linear(loader, name + ".attn.in_proj_weight", name + ".attn.in_proj_bias", 3 * width, width, precision);
    b.out_proj = load_linear(loader, name + ".attn.out_proj.weight", name + ".attn.out_proj.bias", width, width, precision);
    b.ln2_weight = loader.read(name + ".ln_2.weight");
    b.ln2_bias = loader.read(name + ".ln_2.bias");
    b.c_fc = load_linear(loader, name + ".mlp.c_fc.weight", name + ".mlp.c_fc.bias", 4 * width, width, precision);
    b.c_proj = load_linear(loader, name + ".mlp.c_proj.weight", name + ".mlp.c_proj.bias", width, 4 * width, precision);
  }
  ln_final_weight_ = loader.read("ln_final.weight");
  ln_final_bias_ = loader.read("ln_final.bias");
  projection_.weight = loader.packed("text_projection [E, W]", embed_dim, width, precision,
                                     loader.source("text_projection").byte_length, [&] {
    const std::vector<float> p = loader.read("text_projection");  // [W, E]; features = x @ P
    std::vector<float> transposed(p.size());                      // [E, W]
    for (int i = 0; i < width; ++i)
      for (int e = 0; e < embed_dim; ++e) transposed[static_cast<size_t>(e) * width + i] = p[static_cast<size_t>(i) * embed_dim + e];
    return pack_weight_parallel(transposed.data(), embed_dim, width, precision, loader.pool());
  });
}

size_t TextTower::bytes() const {
  size_t total = token_embedding_.bytes() + positional_embedding_.bytes() + projection_.bytes();
  for (const TransformerBlock& b : blocks_) total += b.in_proj.bytes() + b.out_proj.bytes() + b.c_fc.bytes() + b.c_proj.bytes();
  return total;
}

// The last block past its in_proj for the end-token rows alone (each sequence's last row): end_x [n, W] = that row
// of x + attention out_proj, then + c_proj(GELU(c_fc(ln_2))). normed / hidden: scratch of at least [n, W] / [n, 4W].
void TextTower::last_block_end_rows(const TransformerBlock& b, const float* qkv, const float* x, int n,
                                    const int* first_row, std::vector<float>& end_x, float* normed, float* hidden,
                                    OpProfile* prof, ThreadPool& pool) const {
  const int width = config_.width;
  end_x.resize(static_cast<size_t>(n) * width);
  for (int s = 0; s < n; ++s) {
    const float* row = x + static_cast<int64_t>(first_row[s + 1] - 1) * width;
    std::copy(row, row + width, end_x.begin() + static_cast<int64_t>(s) * width);
  }
  Epilogue residual;
  residual.residual = end_x.data();
  Epilogue gelu;
  gelu.gelu = true;
  {
    ScopedOpTimer timer(prof, "attention");
    causal_attention_last(qkv, n, first_row, width, config_.heads, normed, pool);  // [n, W]
  }
  {
    ScopedOpTimer timer(prof, "out_proj+res gemm");
    apply_linear(b.out_proj, normed, n, end_x.data(), residual, pool);
  }
  {
    ScopedOpTimer timer(prof, "ln_2");
    layer_norm_rows(end_x.data(), n, width, b.ln2_weight.data(), b.ln2_bias.data(), config_.norm_eps, normed, pool);
  }
  {
    ScopedOpTimer timer(prof, "c_fc+gelu gemm");
    apply_linear(b.c_fc, normed, n, hidden, gelu, pool);
  }
  ScopedOpTimer timer(prof, "c_proj+res gemm");
  apply_linear(b.c_proj, hidden, n, end_x.data(), residual, pool);
}

void TextTower::encode(const int32_t* tokens, int n, float* features, Captures* captures, ThreadPool& pool) const {
  OpProfile profile;
  OpProfile* prof = OpProfile::enabled() ? &profile : nullptr;
  const int ctx = config_.context_length, width = config_.width;
  // The end token is the row's largest id (first occurrence); attention is causal, so positions after it never
  // influence the rows we read: each sequence keeps only its positions 0..end, and the sequences' rows lie back to
  // back (sequence s is rows [first_row[s], first_row[s + 1]) of every activation), so a batch of different lengths
  // computes no padding, and each row is computed as it would be alone.
  std::vector<int> first_row(static_cast<size_t>(n) + 1, 0);
  for (int s = 0; s < n; ++s) {
    const int32_t* row = tokens + static_cast<int64_t>(s) * ctx;
    int best = 0;
    for (int i = 0; i < ctx; ++i) {
      if (row[i] < 0 || row[i] >= config_.vocab_size) {
        throw std::runtime_error("token id " + std::to_string(row[i]) + " at row " + std::to_string(s) + ", position " +
                                 std::to_string(i) + " is outside the vocabulary [0, " +
                                 std::to_string(config_.vocab_size) + ")");
      }
      if (row[i] > row[best]) best = i;
    }
    const int64_t end_row = static_cast<int64_t>(first_row[s]) + best + 1;
    if (end_row > std::numeric_limits<int>::max()) throw std::runtime_error("text batch too large: over 2^31 token rows");
    first_row[s + 1] = static_cast<int>(end_row);
  }
  const int64_t rows = first_row[n];
  const size_t seq0_floats = static_cast<size_t>(first_row[n > 0 ? 1 : 0]) * width;  // sequence 0's rows (captures)

  // x [rows, W]: row first_row[s] + i = token_embedding[ids[s][i]] + positional_embedding[i]
  std::vector<float> x(static_cast<size_t>(rows) * width, 0.f);
  for (int s = 0; s < n; ++s)
    for (int i = 0; i < first_row[s + 1] - first_row[s]; ++i) {
      float* out = x.data() + static_cast<int64_t>(first_row[s] + i) * width;
      token_embedding_.add_row_to(tokens[static_cast<int64_t>(s) * ctx + i], out);
      positional_embedding_.add_row_to(i, out);
    }
  if (captures) captures->emplace_back("text0.embed", std::vector<float>(x.begin(), x.begin() + seq0_floats));

  std::vector<float> normed(static_cast<size_t>(rows) * width), qkv(static_cast<size_t>(rows) * 3 * width),
      attended(static_cast<size_t>(rows) * width), hidden(static_cast<size_t>(rows) * 4 * width);
  // Only the end-token rows are read after the last block, so past its in_proj (every row's keys and values) that
  // block runs on those n rows alone: end_x [n, W]. Each row's arithmetic is the one of the full block (the GEMMs'
  // results do not depend on the other rows), so the features are the same. Captures want every row: full block.
  std::vector<float> end_x;
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const TransformerBlock& b = blocks_[l];
    const bool end_rows_only = l + 1 == blocks_.size() && !captures;
    // x += out_proj(attention(in_proj(ln_1(x))))
    Epilogue residual;
    residual.residual = x.data();
    Epilogue gelu;
    gelu.gelu = true;
    {
      ScopedOpTimer timer(prof, "ln_1");
      layer_norm_rows(x.data(), rows, width, b.ln1_weight.data(), b.ln1_bias.data(), config_.norm_eps, normed.data(), pool);
    }
    {
      ScopedOpTimer timer(prof, "in_proj gemm");
      apply_linear(b.in_proj, normed.data(), static_cast<int>(rows), qkv.data(), {}, pool);
    }
    if (end_rows_only) {
      last_block_end_rows(b, qkv.data(), x.data(), n, first_row.data(), end_x, normed.data(), hidden.data(), prof,
                          pool);
      break;
    }
    {
      ScopedOpTimer timer(prof, "attention");
      causal_attention_packed(qkv.data(), n, first_row.data(), width, config_.heads, attended.data(), pool);
    }
    {
      ScopedOpTimer timer(prof, "out_proj+res gemm");
      apply_linear(b.out_proj, attended.data(), static_cast<int>(rows), x.data(), residual, pool);
    }
    // x += c_proj(GELU(c_fc(ln_2(x))))
    {
      ScopedOpTimer timer(prof, "ln_2");
      layer_norm_rows(x.data(), rows, width, b.ln2_weight.data(), b.ln2_bias.data(), config_.norm_eps, normed.data(), pool);
    }
    {
      ScopedOpTimer timer(prof, "c_fc+gelu gemm");
      apply_linear(b.c_fc, normed.data(), static_cast<int>(rows), hidden.data(), gelu, pool);
    }
    {
      ScopedOpTimer timer(prof, "c_proj+res gemm");
      apply_linear(b.c_proj, hidden.data(), static_cast<int>(rows), x.data(), residual, pool);
    }
    if (captures) {
      captures->emplace_back("text0.block" + std::to_string(l), std::vector<float>(x.begin(), x.begin() + seq0_floats));
    }
  }

  // ln_final on each sequence's end-token row, then features = row @ text_projection.
  std::vector<float> pooled(static_cast<size_t>(n) * width);
  for (int s = 0; s < n; ++s) {
    const float* end_row = end_x.empty() ? x.data() + static_cast<int64_t>(first_row[s + 1] - 1) * width
                                         : end_x.data() + static_cast<int64_t>(s) * width;
    layer_norm_row(end_row, width, ln_final_weight_.data(), ln_final_bias_.data(), config_.norm_eps,
                   pooled.data() + static_cast<int64_t>(s) * width);
  }
  apply_linear(projection_, pooled.data(), n, features, {}, pool);
  if (prof) {
    prof->print(("text tower, batch " + std::to_string(n) + ", " + std::to_string(rows) + (n == 1 ? " positions" : " rows"))
                    .c_str());
  }
}

}  // namespace cclip
