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

// The block's second half on `rows` rows: x += out_proj(attended), then x += c_proj(GELU(c_fc(ln_2(x)))).
// normed / hidden: scratch of [rows, W] / [rows, 4W]; attended may be normed (it is read before ln_2 writes it).
void TextTower::finish_block(const TransformerBlock& b, const float* attended, float* x, int rows, float* normed,
                             float* hidden, OpProfile* prof, ThreadPool& pool) const {
  Epilogue residual;
  residual.residual = x;
  Epilogue gelu;
  gelu.gelu = true;
  {
    ScopedOpTimer timer(prof, "out_proj+res gemm");
    apply_linear(b.out_proj, attended, rows, x, residual, pool);
  }
  {
    ScopedOpTimer timer(prof, "ln_2");
    layer_norm_rows(x, rows, config_.width, b.ln2_weight.data(), b.ln2_bias.data(), config_.norm_eps, normed, pool);
  }
  {
    ScopedOpTimer timer(prof, "c_fc+gelu gemm");
    apply_linear(b.c_fc, normed, rows, hidden, gelu, pool);
  }
  ScopedOpTimer timer(prof, "c_proj+res gemm");
  apply_linear(b.c_proj, hidden, rows, x, residual, pool);
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
  // Only the end-token rows (each sequence's last) are read after the last block, so past its in_proj (every row's
  // keys and values) that block runs on those n rows alone: end_x [n, W]. Each row's arithmetic is the one of the
  // full block (the GEMMs' results do not depend on the other rows), so the features are the same. Captures want
  // every row: full block.
  std::vector<float> end_x(static_cast<size_t>(n) * width);
  auto gather_end_rows = [&] {
    for (int s = 0; s < n; ++s) {
      const float* row = x.data() + static_cast<int64_t>(first_row[s + 1] - 1) * width;
      std::copy(row, row + width, end_x.begin() + static_cast<int64_t>(s) * width);
    }
  };
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const TransformerBlock& b = blocks_[l];
    {
      ScopedOpTimer timer(prof, "ln_1");
      layer_norm_rows(x.data(), rows, width, b.ln1_weight.data(), b.ln1_bias.data(), config_.norm_eps, normed.data(), pool);
    }
    {
      ScopedOpTimer timer(prof, "in_proj gemm");
      apply_linear(b.in_proj, normed.data(), static_cast<int>(rows), qkv.data(), {}, pool);
    }
    if (l + 1 == blocks_.size() && !captures) {
      gather_end_rows();
      {
        ScopedOpTimer timer(prof, "attention");
        causal_attention_last(qkv.data(), n, first_row.data(), width, config_.heads, normed.data(), pool);  // [n, W]
      }
      finish_block(b, normed.data(), end_x.data(), n, normed.data(), hidden.data(), prof, pool);
      break;
    }
    {
      ScopedOpTimer timer(prof, "attention");
      causal_attention_packed(qkv.data(), n, first_row.data(), width, config_.heads, attended.data(), pool);
    }
    finish_block(b, attended.data(), x.data(), static_cast<int>(rows), normed.data(), hidden.data(), prof, pool);
    if (captures) {
      captures->emplace_back("text0.block" + std::to_string(l), std::vector<float>(x.begin(), x.begin() + seq0_floats));
    }
  }
  if (captures) gather_end_rows();  // (else the last block left them in end_x)

  // ln_final on each sequence's end-token row, then features = row @ text_projection.
  std::vector<float> pooled(static_cast<size_t>(n) * width);
  for (int s = 0; s < n; ++s) {
    layer_norm_row(end_x.data() + static_cast<int64_t>(s) * width, width, ln_final_weight_.data(), ln_final_bias_.data(),
                   config_.norm_eps, pooled.data() + static_cast<int64_t>(s) * width);
  }
  apply_linear(projection_, pooled.data(), n, features, {}, pool);
  if (prof) {
    prof->print(("text tower, batch " + std::to_string(n) + ", " + std::to_string(rows) + (n == 1 ? " positions" : " rows"))
                    .c_str());
  }
}

}  // namespace cclip
