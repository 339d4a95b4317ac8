// The text tower: token + positional embedding, pre-LN transformer with causal attention, ln_final,
// the end-token row of each sequence, and text_projection.
#pragma once
#include <cstdint>
#include <vector>

#include "spec.h"
#include "ops.h"
#include "weights.h"

namespace cclip {

class OpProfile;

// An embedding table [rows, cols] stored in fp32 or bf16.
struct EmbeddingTable {
  int rows = 0, cols = 0;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  void set(std::vector<float> values, int rows, int cols, Precision precision);
  void add_row_to(int row, float* out) const;  // out[cols] += table[row]
  size_t bytes() const { return f32.size() * 4 + bf16.size() * 2; }
};

struct TransformerBlock {
  std::vector<float> ln1_weight, ln1_bias, ln2_weight, ln2_bias;  // [width]
  LinearLayer in_proj;   // [3W, W]
  LinearLayer out_proj;  // [W, W]
  LinearLayer c_fc;      // [4W, W]
  LinearLayer c_proj;    // [W, 4W]
};

class TextTower {
 public:
  void load(const TextConfig& config, int embed_dim, WeightLoader& loader, Precision precision);

  // tokens: [n, context_length] ids in [0, vocab) -> features [n, embed_dim]. Reentrant (per-call scratch).
  void encode(const int32_t* tokens, int n, float* features, Captures* captures, ThreadPool& pool) const;

  size_t bytes() const;

 private:
  void finish_block(const TransformerBlock& b, const float* attended, float* x, int rows, float* normed, float* hidden,
                    OpProfile* prof, ThreadPool& pool) const;

  TextConfig config_;
  int embed_dim_ = 0;
  EmbeddingTable token_embedding_, positional_embedding_;
  std::vector<TransformerBlock> blocks_;
  std::vector<float> ln_final_weight_, ln_final_bias_;
  LinearLayer projection_;  // text_projection^T: [E, W]
};

}  // namespace cclip
