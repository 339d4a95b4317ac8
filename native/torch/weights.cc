#include "weights.h"

#include <stdexcept>

namespace cclip {
namespace {

// Reads tensors by name through the core's WeightLoader (fp32, checked) and moves them to the device.
class Loader {
 public:
  Loader(const ClipConfig& config, const std::vector<TensorSource>& sources, const at::Device& device, at::ScalarType dtype,
         const ProgressFn& progress)
      : device_(device), dtype_(dtype), reader_(sources, expected_tensors(config), progress) {}

  // The tensor as fp32 on the device. For CUDA the floats land in pinned host memory and go up with a
  // non-blocking copy on the current stream (the caching host allocator reuses a pinned block only once its
  // copy is done), so the next read overlaps the transfer.
  at::Tensor f32(const std::string& name) {
    const TensorSource& src = reader_.source(name);
    const bool staged = device_.is_cuda();
    at::Tensor host = at::empty(src.shape, at::TensorOptions().dtype(at::kFloat).pinned_memory(staged));
    reader_.read_to(name, host.data_ptr<float>());
    return staged ? host.to(at::TensorOptions().device(device_), /*non_blocking=*/true) : host;
  }

  at::Tensor cast(const at::Tensor& t) {
    at::Tensor out = t.to(dtype_).contiguous();
    bytes_ += out.numel() * static_cast<int64_t>(out.element_size());
    return out;
  }
  at::Tensor keep32(const at::Tensor& t) {
    at::Tensor out = t.contiguous();
    bytes_ += out.numel() * 4;
    return out;
  }
  at::Tensor get(const std::string& name) { return cast(f32(name)); }
  Norm norm(const std::string& prefix) { return {get(prefix + ".weight"), get(prefix + ".bias")}; }
  Linear linear(const std::string& prefix, bool bias = true) {
    return {get(prefix + ".weight"), bias ? get(prefix + ".bias") : at::Tensor()};
  }
  int64_t bytes() const { return bytes_; }

 private:
  at::Device device_;
  at::ScalarType dtype_;
  WeightLoader reader_;
  int64_t bytes_ = 0;
};

VisionWeights load_vision(const VisionConfig& a, Loader& L, bool fused) {
  VisionWeights v;
  const std::string trunk = "visual.trunk";
  const int64_t d0 = a.dims[0];
  v.stem = {L.cast(L.f32(trunk + ".stem.0.weight").reshape({d0, 48})), L.get(trunk + ".stem.0.bias")};
  v.stem_norm = L.norm(trunk + ".stem.1");
  for (int s = 0; s < 4; s++) {
    const std::string stage = trunk + ".stages." + std::to_string(s);
    const int64_t dim = a.dims[s];
    if (s > 0) {
      const int64_t prev = a.dims[s - 1];
      v.down[s].norm = L.norm(stage + ".downsample.0");
      at::Tensor w = L.f32(stage + ".downsample.1.weight");  // [Cout, Cin, 2, 2]
      v.down[s].conv = {L.cast(w.permute({0, 2, 3, 1}).reshape({dim, 4 * prev})), L.get(stage + ".downsample.1.bias")};
    }
    for (int64_t b = 0; b < a.depths[s]; b++) {
      const std::string p = stage + ".blocks." + std::to_string(b);
      ConvBlock blk;
      at::Tensor dw = L.f32(p + ".conv_dw.weight");  // [C, 1, 7, 7]
      at::Tensor dwb = L.f32(p + ".conv_dw.bias");
      at::Tensor nw = L.f32(p + ".norm.weight"), nb = L.f32(p + ".norm.bias");
      blk.dw_w = L.cast(dw);
      blk.dw_b = L.cast(dwb);
      blk.norm = {L.cast(nw), L.cast(nb)};
      if (fused) {
        blk.tap_w32 = L.keep32(dw.reshape({dim, 49}).t());  // [49, C] = [7, 7, C]
        blk.dw_b32 = L.keep32(dwb);
        blk.norm_w32 = L.keep32(nw);
        blk.norm_b32 = L.keep32(nb);
      }
      blk.fc1 = L.linear(p + ".mlp.fc1");
      at::Tensor w2 = L.f32(p + ".mlp.fc2.weight"), b2 = L.f32(p + ".mlp.fc2.bias");
      at::Tensor gamma = L.f32(p + ".gamma");  // [C]: x + gamma * fc2(h) == x + fc2'(h)
      blk.fc2 = {L.cast(w2 * gamma.unsqueeze(1)), L.cast(b2 * gamma)};
      v.blocks[s].push_back(std::move(blk));
    }
  }
  v.head_norm = L.norm(trunk + ".head.norm");
  if (!a.proj_mlp) {
    v.proj = L.linear("visual.head.proj", a.proj_bias);
  } else {
    v.proj = L.linear("visual.head.mlp.fc1");
    v.proj2 = L.linear("visual.head.mlp.fc2", a.proj_bias);
  }
  return v;
}

TextWeights load_text(const TextConfig& a, Loader& L) {
  TextWeights t;
  t.tok_emb = L.get("token_embedding.weight");
  t.pos_emb = L.get("positional_embedding");
  for (int64_t l = 0; l < a.layers; l++) {
    const std::string p = "transformer.resblocks." + std::to_string(l);
    TextBlock b;
    b.ln1 = L.norm(p + ".ln_1");
    b.qkv = {L.get(p + ".attn.in_proj_weight"), L.get(p + ".attn.in_proj_bias")};
    b.out = L.linear(p + ".attn.out_proj");
    b.ln2 = L.norm(p + ".ln_2");
    b.fc = L.linear(p + ".mlp.c_fc");
    b.proj = L.linear(p + ".mlp.c_proj");
    t.blocks.push_back(std::move(b));
  }
  t.ln_final = L.norm("ln_final");
  t.projection = L.get("text_projection");
  return t;
}

}  // namespace

Weights load_weights(const ClipConfig& config, const std::vector<TensorSource>& sources, const at::Device& device, at::ScalarType dtype,
                     bool fused_copies, const ProgressFn& progress) {
  config.validate();
  Loader loader(config, sources, device, dtype, progress);
  Weights w;
  w.vision = load_vision(config.vision, loader, fused_copies);
  w.text = load_text(config.text, loader);
  w.bytes = loader.bytes();
  return w;
}

}  // namespace cclip
