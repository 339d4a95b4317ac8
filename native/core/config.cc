#include "config.h"

#include <stdexcept>

namespace cclip {

static void check_range(int64_t value, int64_t lo, int64_t hi, const char* what) {
  if (value < lo || value > hi) {
    throw std::runtime_error(std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                             "], got " + std::to_string(value));
  }
}

void ClipConfig::validate() const {
  check_range(embed_dim, 1, 1 << 16, "embedDim");
  for (int s = 0; s < 4; ++s) {
    check_range(vision.depths[s], 1, 1 << 10, "vision depth");
    check_range(vision.dims[s], 1, 1 << 16, "vision dim");
  }
  if (!(vision.norm_eps > 0.f && vision.norm_eps < 1.f)) throw std::runtime_error("vision normEps must be in (0, 1)");
  check_range(vision.image_size, 32, 1 << 14, "imageSize");
  if (vision.image_size % 32 != 0) throw std::runtime_error("imageSize must be a multiple of 32");
  check_range(text.width, 1, 1 << 16, "text width");
  check_range(text.heads, 1, 1024, "text heads");
  if (text.width % text.heads != 0) throw std::runtime_error("text width must be a multiple of text heads");
  check_range(text.layers, 1, 1024, "text layers");
  check_range(text.context_length, 1, 1 << 16, "text contextLength");
  check_range(text.vocab_size, 1, 1 << 24, "text vocabSize");
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<std::pair<std::string, Shape>> expected_tensors(const ClipConfig& config) {
  std::vector<std::pair<std::string, Shape>> out;
  auto add = [&](std::string name, Shape shape) { out.emplace_back(std::move(name), std::move(shape)); };
  const VisionConfig& v = config.vision;
  const std::string trunk = "visual.trunk";
  const int64_t c0 = v.dims[0];
  add(trunk + ".stem.0.weight", {c0, 3, 4, 4});
  add(trunk + ".stem.0.bias", {c0});
  add(trunk + ".stem.1.weight", {c0});
  add(trunk + ".stem.1.bias", {c0});
  for (int s = 0; s < 4; ++s) {
    const int64_t dim = v.dims[s];
    const std::string stage = trunk + ".stages." + std::to_string(s);
    if (s > 0) {
      const int64_t prev = v.dims[s - 1];
      add(stage + ".downsample.0.weight", {prev});
      add(stage + ".downsample.0.bias", {prev});
      add(stage + ".downsample.1.weight", {dim, prev, 2, 2});
      add(stage + ".downsample.1.bias", {dim});
    }
    for (int b = 0; b < v.depths[s]; ++b) {
      const std::string block = stage + ".blocks." + std::to_string(b);
      add(block + ".conv_dw.weight", {dim, 1, 7, 7});
      add(block + ".conv_dw.bias", {dim});
      add(block + ".norm.weight", {dim});
      add(block + ".norm.bias", {dim});
      add(block + ".mlp.fc1.weight", {4 * dim, dim});
      add(block + ".mlp.fc1.bias", {4 * dim});
      add(block + ".mlp.fc2.weight", {dim, 4 * dim});
      add(block + ".mlp.fc2.bias", {dim});
      add(block + ".gamma", {dim});
    }
  }
  const int64_t features = v.dims[3], embed = config.embed_dim;
  add(trunk + ".head.norm.weight", {features});
  add(trunk + ".head.norm.bias", {features});
  if (!v.proj_mlp) {
    add("visual.head.proj.weight", {embed, features});
    if (v.proj_bias) add("visual.head.proj.bias", {embed});
  } else {
    add("visual.head.mlp.fc1.weight", {2 * embed, features});
    add("visual.head.mlp.fc1.bias", {2 * embed});
    add("visual.head.mlp.fc2.weight", {embed, 2 * embed});
    if (v.proj_bias) add("visual.head.mlp.fc2.bias", {embed});
  }
  const TextConfig& t = config.text;
  const int64_t width = t.width;
  add("token_embedding.weight", {t.vocab_size, width});
  add("positional_embedding", {t.context_length, width});
  for (int l = 0; l < t.layers; ++l) {
    const std::string block = "transformer.resblocks." + std::to_string(l);
    add(block + ".ln_1.weight", {width});
    add(block + ".ln_1.bias", {width});
    add(block + ".attn.in_proj_weight", {3 * width, width});
    add(block + ".attn.in_proj_bias", {3 * width});
    add(block + ".attn.out_proj.weight", {width, width});
    add(block + ".attn.out_proj.bias", {width});
    add(block + ".ln_2.weight", {width});
    add(block + ".ln_2.bias", {width});
    add(block + ".mlp.c_fc.weight", {4 * width, width});
    add(block + ".mlp.c_fc.bias", {4 * width});
    add(block + ".mlp.c_proj.weight", {width, 4 * width});
    add(block + ".mlp.c_proj.bias", {width});
  }
  add("ln_final.weight", {width});
  add("ln_final.bias", {width});
  add("text_projection", {width, embed});
  return out;
}

}  // namespace cclip
