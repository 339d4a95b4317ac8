#include "convnext.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "gemm_pack.h"
#include "profile.h"

namespace cclip {

namespace {

// Hidden-activation rows per MLP chunk: [rows, 4C] chunks of about 4 MB (at least 512 rows), so fc1 writes them to
// and fc2 reads them from cache; equal chunks in multiples of 48 rows (whole register tiles of every variant).
int mlp_chunk_rows(int64_t rows, int hidden) {
  const int64_t max_rows = std::max<int64_t>(512, (int64_t{1} << 20) / hidden);  // GEMMs of >= 512 rows
  const int64_t chunks = (rows + max_rows - 1) / max_rows;
  return static_cast<int>(std::min<int64_t>(rows, ((rows + chunks - 1) / chunks + 47) / 48 * 48));
}

}  // namespace

void VisionTower::load(const VisionConfig& config, int embed_dim, WeightLoader& loader, Precision precision) {
  config_ = config;
  embed_dim_ = embed_dim;
  const std::string trunk = "visual.trunk";
  const int c0 = config.dims[0];
  stem_ = load_linear(loader, trunk + ".stem.0.weight", trunk + ".stem.0.bias", c0, 48, precision);
  stem_norm_weight_ = loader.read(trunk + ".stem.1.weight");
  stem_norm_bias_ = loader.read(trunk + ".stem.1.bias");
  for (int s = 0; s < 4; ++s) {
    const int dim = config.dims[s];
    const std::string stage = trunk + ".stages." + std::to_string(s);
    ConvNeXtStage& st = stages_[s];
    if (s > 0) {
      const int prev = config.dims[s - 1];
      st.downsample_norm_weight = loader.read(stage + ".downsample.0.weight");
      st.downsample_norm_bias = loader.read(stage + ".downsample.0.bias");
      const std::string weight = stage + ".downsample.1.weight";
      st.downsample.weight = loader.packed(weight + " [dim, 2, 2, prev]", dim, 4 * prev, precision,
                                           loader.source(weight).byte_length, [&] {
        const std::vector<float> w = loader.read(weight);  // [dim, prev, 2, 2]
        std::vector<float> permuted(w.size());             // [dim, 2, 2, prev]
        for (int o = 0; o < dim; ++o)
          for (int i = 0; i < prev; ++i)
            for (int t = 0; t < 4; ++t)
              permuted[(static_cast<size_t>(o) * 4 + t) * prev + i] = w[(static_cast<size_t>(o) * prev + i) * 4 + t];
        return pack_weight_parallel(permuted.data(), dim, 4 * prev, precision, loader.pool());
      });
      st.downsample.bias = loader.read(stage + ".downsample.1.bias");
    }
    st.blocks.resize(config.depths[s]);
    for (int b = 0; b < config.depths[s]; ++b) {
      const std::string name = stage + ".blocks." + std::to_string(b);
      ConvNeXtBlock& block = st.blocks[b];
      block.dw_weight = pack_depthwise_weight(loader.read(name + ".conv_dw.weight").data(), dim);  // [dim, 1, 7, 7]
      block.dw_bias = loader.read(name + ".conv_dw.bias");
      block.norm_weight = loader.read(name + ".norm.weight");
      block.norm_bias = loader.read(name + ".norm.bias");
      block.fc1 = load_linear(loader, name + ".mlp.fc1.weight", name + ".mlp.fc1.bias", 4 * dim, dim, precision);
      block.fc2 = load_linear(loader, name + ".mlp.fc2.weight", name + ".mlp.fc2.bias", dim, 4 * dim, precision);
      block.gamma = loader.read(name + ".gamma");
    }
  }
  head_norm_weight_ = loader.read(trunk + ".head.norm.weight");
  head_norm_bias_ = loader.read(trunk + ".head.norm.bias");
  const int features = config.dims[3];
  if (!config.proj_mlp) {
    proj_ = load_linear(loader, "visual.head.proj.weight", config.proj_bias ? "visual.head.proj.bias" : "", embed_dim,
                        features, precision);
  } else {
    proj_ = load_linear(loader, "visual.head.mlp.fc1.weight", "visual.head.mlp.fc1.bias", 2 * embed_dim, features,
                        precision);
    proj_fc2_ = load_linear(loader, "visual.head.mlp.fc2.weight", config.proj_bias ? "visual.head.mlp.fc2.bias" : "",
                            embed_dim, 2 * embed_dim, precision);
  }
}

size_t VisionTower::bytes() const {
  size_t total = stem_.bytes() + proj_.bytes() + proj_fc2_.bytes();
  for (const ConvNeXtStage& st : stages_) {
    total += st.downsample.bytes();
    for (const ConvNeXtBlock& b : st.blocks) total += b.fc1.bytes() + b.fc2.bytes() + b.dw_weight.size() * 4;
  }
  return total;
}

void VisionTower::encode(const float* pixels, int n, float* features, Captures* captures, ThreadPool& pool) const {
  static const char* const kDwconv[4] = {"dwconv7+ln s0", "dwconv7+ln s1", "dwconv7+ln s2", "dwconv7+ln s3"};
  static const char* const kFc1[4] = {"fc1+gelu gemm s0", "fc1+gelu gemm s1", "fc1+gelu gemm s2", "fc1+gelu gemm s3"};
  static const char* const kFc2[4] = {"fc2+res gemm s0", "fc2+res gemm s1", "fc2+res gemm s2", "fc2+res gemm s3"};
  OpProfile profile;
  OpProfile* prof = OpProfile::enabled() ? &profile : nullptr;
  const float eps = config_.norm_eps;
  int h = config_.image_size / 4, w = h, c = config_.dims[0];
  int64_t rows = static_cast<int64_t>(n) * h * w;

  ScratchPool<kBuffers>::Lease scratch(scratch_);
  // x [n, h, w, C] for every stage lives in one buffer, sized for the largest.
  size_t x_floats = 0;
  for (int s = 0; s < 4; ++s) x_floats = std::max(x_floats, static_cast<size_t>(rows >> (2 * s)) * config_.dims[s]);
  float* x = scratch[kX].reserve(x_floats);
  // Stem: [n, 3, S, S] -> patches [rows, 48] -> x [n, h, w, C0] -> LayerNorm.
  {
    float* patches = scratch[kPatches].reserve(static_cast<size_t>(rows) * 48);
    {
      ScopedOpTimer timer(prof, "stem patchify");
      stem_patchify(pixels, n, config_.image_size, patches, pool);
    }
    ScopedOpTimer timer(prof, "stem gemm");
    apply_linear(stem_, patches, static_cast<int>(rows), x, {}, pool);
  }
  {
    ScopedOpTimer timer(prof, "stem ln");
    layer_norm_rows(x, rows, c, stem_norm_weight_.data(), stem_norm_bias_.data(), eps, x, pool);
  }
  if (captures) captures->emplace_back("image0.stem", channels_last_to_first(x, h * w, c));

  for (int s = 0; s < 4; ++s) {
    const ConvNeXtStage& stage = stages_[s];
    if (s > 0) {
      // LayerNorm + 2x2/s2 conv: x [n, h, w, C] -> [n, h/2, w/2, C_next]
      const int next_c = config_.dims[s];
      const int64_t next_rows = rows / 4;
      float* patches = scratch[kPatches].reserve(static_cast<size_t>(next_rows) * 4 * c);
      {
        ScopedOpTimer timer(prof, "downsample ln+patchify");
        downsample_patchify_layer_norm(x, n, h, w, c, stage.downsample_norm_weight.data(),
                                       stage.downsample_norm_bias.data(), eps, patches, pool);
      }
      ScopedOpTimer timer(prof, "downsample gemm");
      apply_linear(stage.downsample, patches, static_cast<int>(next_rows), x, {}, pool);  // [next_rows, next_c] fits
      h /= 2;
      w /= 2;
      c = next_c;
      rows = next_rows;
    }
    float* normed = scratch[kNormed].reserve(static_cast<size_t>(rows) * c);
    const int chunk = mlp_chunk_rows(rows, 4 * c);
    float* hidden = scratch[kHidden].reserve(static_cast<size_t>(chunk) * 4 * c);
    for (const ConvNeXtBlock& block : stage.blocks) {
      // normed [rows, C] = LayerNorm(dwconv7x7(x) + b)
      {
        ScopedOpTimer timer(prof, kDwconv[s]);
        depthwise_conv7_layer_norm(x, n, h, w, c, block.dw_weight.data(), block.dw_bias.data(),
                                   block.norm_weight.data(), block.norm_bias.data(), eps, normed, pool);
      }
      // x += gamma * fc2(GELU(fc1(normed))), in row chunks of [chunk, 4C] hidden activations
      for (int64_t r = 0; r < rows; r += chunk) {
        const int m = static_cast<int>(std::min<int64_t>(chunk, rows - r));
        Epilogue gelu;
        gelu.gelu = true;
        {
          ScopedOpTimer timer(prof, kFc1[s]);
          apply_linear(block.fc1, normed + r * c, m, hidden, gelu, pool);
        }
        Epilogue scale_residual;
        scale_residual.scale = block.gamma.data();
        scale_residual.residual = x + r * c;
        ScopedOpTimer timer(prof, kFc2[s]);
        apply_linear(block.fc2, hidden, m, x + r * c, scale_residual, pool);
      }
    }
    if (captures) captures->emplace_back("image0.stage" + std::to_string(s), channels_last_to_first(x, h * w, c));
  }

  // Head: mean over h*w -> LayerNorm -> projection.
  {
    ScopedOpTimer timer(prof, "head pool+ln+proj");
    std::vector<float> pooled(static_cast<size_t>(n) * c);
    global_average_pool(x, n, h * w, c, pooled.data());
    layer_norm_rows(pooled.data(), n, c, head_norm_weight_.data(), head_norm_bias_.data(), eps, pooled.data(), pool);
    if (captures) captures->emplace_back("image0.pooled", std::vector<float>(pooled.begin(), pooled.begin() + c));
    if (!config_.proj_mlp) {
      apply_linear(proj_, pooled.data(), n, features, {}, pool);
    } else {
      std::vector<float> head_hidden(static_cast<size_t>(n) * proj_.out_features());
      Epilogue gelu;
      gelu.gelu = true;
      apply_linear(proj_, pooled.data(), n, head_hidden.data(), gelu, pool);
      apply_linear(proj_fc2_, head_hidden.data(), n, features, {}, pool);
    }
  }
  if (prof) prof->print(("image tower, batch " + std::to_string(n)).c_str());
}

}  // namespace cclip
