#include "arch.h"

#include <stdexcept>

namespace cclip {

static void positive(int64_t v, const char* what, int64_t max = int64_t(1) << 24) {
  if (v <= 0 || v > max) throw std::invalid_argument(std::string(what) + " must be in 1.." + std::to_string(max) + ", got " + std::to_string(v));
}

void validate_arch(const Arch& a) {
  positive(a.embed_dim, "embed_dim", 1 << 16);
  for (int s = 0; s < 4; s++) {
    positive(a.depths[s], "vision depth", 1 << 10);
    positive(a.dims[s], "vision dim", 1 << 16);
  }
  if (!(a.norm_eps > 0 && a.norm_eps < 1)) throw std::invalid_argument("norm_eps must be in (0, 1)");
  positive(a.image_size, "image_size", 1 << 14);
  if (a.image_size % 32 != 0) throw std::invalid_argument("image_size must be a multiple of 32");
  positive(a.width, "text width", 1 << 16);
  positive(a.heads, "text heads", 1024);
  if (a.width % a.heads != 0) throw std::invalid_argument("text width must be a multiple of heads");
  positive(a.layers, "text layers", 1024);
  positive(a.context_length, "context_length", 1 << 16);
  positive(a.vocab_size, "vocab_size", 1 << 24);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const Arch& a) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  auto add = [&](std::string name, std::vector<int64_t> shape) { out.emplace_back(std::move(name), std::move(shape)); };
  const std::string trunk = "visual.trunk";
  const int64_t d0 = a.dims[0];
  add(trunk + ".stem.0.weight", {d0, 3, 4, 4});
  add(trunk + ".stem.0.bias", {d0});
  add(trunk + ".stem.1.weight", {d0});
  add(trunk + ".stem.1.bias", {d0});
  for (int s = 0; s < 4; s++) {
    const int64_t dim = a.dims[s];
    const std::string stage = trunk + ".stages." + std::to_string(s);
    if (s > 0) {
      const int64_t prev = a.dims[s - 1];
      add(stage + ".downsample.0.weight", {prev});
      add(stage + ".downsample.0.bias", {prev});
      add(stage + ".downsample.1.weight", {dim, prev, 2, 2});
      add(stage + ".downsample.1.bias", {dim});
    }
    for (int64_t b = 0; b < a.depths[s]; b++) {
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
  const int64_t feat = a.dims[3];
  add(trunk + ".head.norm.weight", {feat});
  add(trunk + ".head.norm.bias", {feat});
  if (!a.proj_mlp) {
    add("visual.head.proj.weight", {a.embed_dim, feat});
    if (a.proj_bias) add("visual.head.proj.bias", {a.embed_dim});
  } else {
    add("visual.head.mlp.fc1.weight", {2 * a.embed_dim, feat});
    add("visual.head.mlp.fc1.bias", {2 * a.embed_dim});
    add("visual.head.mlp.fc2.weight", {a.embed_dim, 2 * a.embed_dim});
    if (a.proj_bias) add("visual.head.mlp.fc2.bias", {a.embed_dim});
  }
  add("token_embedding.weight", {a.vocab_size, a.width});
  add("positional_embedding", {a.context_length, a.width});
  for (int64_t l = 0; l < a.layers; l++) {
    const std::string block = "transformer.resblocks." + std::to_string(l);
    add(block + ".ln_1.weight", {a.width});
    add(block + ".ln_1.bias", {a.width});
    add(block + ".attn.in_proj_weight", {3 * a.width, a.width});
    add(block + ".attn.in_proj_bias", {3 * a.width});
    add(block + ".attn.out_proj.weight", {a.width, a.width});
    add(block + ".attn.out_proj.bias", {a.width});
    add(block + ".ln_2.weight", {a.width});
    add(block + ".ln_2.bias", {a.width});
    add(block + ".mlp.c_fc.weight", {4 * a.width, a.width});
    add(block + ".mlp.c_fc.bias", {4 * a.width});
    add(block + ".mlp.c_proj.weight", {a.width, 4 * a.width});
    add(block + ".mlp.c_proj.bias", {a.width});
  }
  add("ln_final.weight", {a.width});
  add("ln_final.bias", {a.width});
  add("text_projection", {a.width, a.embed_dim});
  return out;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace cclip
