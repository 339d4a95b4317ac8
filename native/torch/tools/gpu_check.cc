// cclip_gpu_check: drives the torch backend without Node (for GPU machines that have PyTorch but no Node).
// Loads a model from a JSON load request (native/core/spec.h; scripts/gpu/model_spec.py writes one), encodes the spec's inputs and writes the features
// (and with --capture the first row's intermediates) as safetensors; --bench times the towers per batch size
// and prints one JSON line per measurement.
//   cclip_gpu_check --request xxl.json --device cuda --precision bf16 --out ours.safetensors [--capture]
//                   [--no-graphs] [--no-fused] [--threads N] [--bench 1,8,64] [--iters 10]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "model.h"
#include "safetensors_out.h"
#include "inputs.h"

using namespace cclip;

namespace {

struct Args {
  std::string request, out, device = "cpu", precision = "fp32", bench;
  bool capture = false, graphs = true, fused = true;
  int threads = 0, iters = 10;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
      return argv[++i];
    };
    if (k == "--request") a.request = next();
    else if (k == "--out") a.out = next();
    else if (k == "--device") a.device = next();
    else if (k == "--precision") a.precision = next();
    else if (k == "--bench") a.bench = next();
    else if (k == "--threads") a.threads = std::stoi(next());
    else if (k == "--iters") a.iters = std::stoi(next());
    else if (k == "--capture") a.capture = true;
    else if (k == "--no-graphs") a.graphs = false;
    else if (k == "--no-fused") a.fused = false;
    else throw std::runtime_error("unknown argument " + k);
  }
  if (a.request.empty()) throw std::runtime_error("usage: cclip_gpu_check --request FILE [--device cpu|cuda] [--precision fp32|bf16] [--out FILE] ...");
  return a;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double median_ms(int iters, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < iters; i++) {
    const double s = now_ms();
    f();
    t.push_back(now_ms() - s);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void bench(Model& m, const ClipConfig& config, const Args& args) {
  const TextConfig& a = config.text;
  std::vector<int64_t> sizes;
  std::stringstream ss(args.bench);
  for (std::string s; std::getline(ss, s, ',');) sizes.push_back(std::stoll(s));
  std::mt19937 rng(0);
  std::normal_distribution<float> g;
  std::uniform_int_distribution<int32_t> ids(1, 49000);
  const std::string tag = "\"impl\":\"convnext-clip torch\",\"device\":\"" + args.device + "\",\"precision\":\"" + args.precision + "\",\"graphs\":" +
                          (m.options().graphs ? "true" : "false") + ",\"fused\":" + (m.options().fused ? "true" : "false");
  for (int64_t bs : sizes) {
    const int64_t S = config.vision.image_size;
    std::vector<float> px(static_cast<size_t>(bs * 3 * S * S));
    for (auto& v : px) v = g(rng);
    double first = now_ms();
    m.encode_image(px.data(), bs, false);
    first = now_ms() - first;
    for (int i = 0; i < 2; i++) m.encode_image(px.data(), bs, false);
    const double ms = median_ms(args.iters, [&] { m.encode_image(px.data(), bs, false); });
    std::printf("{%s,\"tower\":\"image\",\"batch\":%lld,\"ms\":%.3f,\"per_s\":%.1f,\"first_ms\":%.1f}\n", tag.c_str(), static_cast<long long>(bs), ms, bs / ms * 1e3, first);
    // Text like the PyTorch peer's bench (end token at 20: we stop there, the peer runs all 77), then full length.
    for (int64_t eot : {int64_t(20), int64_t(a.context_length) - 1}) {
      std::vector<int32_t> tok(static_cast<size_t>(bs * a.context_length));
      for (int64_t r = 0; r < bs; r++)
        for (int64_t j = 0; j < a.context_length; j++) tok[r * a.context_length + j] = j == eot ? 49407 : ids(rng);
      double tfirst = now_ms();
      m.encode_text(tok.data(), bs, a.context_length, false);
      tfirst = now_ms() - tfirst;
      for (int i = 0; i < 2; i++) m.encode_text(tok.data(), bs, a.context_length, false);
      const double tms = median_ms(args.iters, [&] { m.encode_text(tok.data(), bs, a.context_length, false); });
      std::printf("{%s,\"tower\":\"text\",\"eot\":%lld,\"batch\":%lld,\"ms\":%.3f,\"per_s\":%.1f,\"first_ms\":%.1f}\n", tag.c_str(), static_cast<long long>(eot),
                  static_cast<long long>(bs), tms, bs / tms * 1e3, tfirst);
    }
    std::fflush(stdout);
  }
}

int run(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const LoadRequest spec = parse_load_request(tools::read_text_file(args.request));
  Options o = spec.options;  // the command line decides how to run
  o.cuda = args.device == "cuda";
  o.precision = args.precision == "bf16" ? Precision::BF16 : Precision::F32;
  o.threads = args.threads;
  o.graphs = args.graphs;
  o.fused = args.fused;
  const InputTensor* pixels = nullptr;
  const InputTensor* tokens = nullptr;
  for (const InputTensor& in : spec.inputs) {
    if (in.name == "pixels") pixels = &in;
    if (in.name == "tokens") tokens = &in;
  }
  double t = now_ms();
  uint64_t total = 0;
  auto model = Model::load(spec.config, spec.tensors, o, [&](uint64_t loaded, uint64_t all) { total = all; (void)loaded; });
  std::fprintf(stderr, "loaded %.2f GB of checkpoint tensors in %.1f s (%.2f GB on the device; %s %s, graphs %d, fused %d)\n", total / 1e9, (now_ms() - t) / 1e3,
               model->weight_bytes() / 1e9, args.device.c_str(), args.precision.c_str(), model->options().graphs, model->options().fused);
  std::vector<std::pair<std::string, at::Tensor>> outputs;
  if (pixels) {
    const InputTensor& p = *pixels;
    std::vector<char> bytes = tools::read_input_bytes(p);
    t = now_ms();
    Output out = model->encode_image(reinterpret_cast<const float*>(bytes.data()), p.shape[0], args.capture);
    std::fprintf(stderr, "image tower: %lld images in %.1f ms (first call)\n", static_cast<long long>(p.shape[0]), now_ms() - t);
    outputs.emplace_back("image_features", out.features);
    for (auto& kv : out.intermediates) outputs.push_back(kv);
  }
  if (tokens) {
    const InputTensor& tk = *tokens;
    std::vector<char> bytes = tools::read_input_bytes(tk);
    std::vector<int32_t> ids(static_cast<size_t>(tk.byte_length / 8));
    for (size_t i = 0; i < ids.size(); i++) {
      int64_t v;
      std::memcpy(&v, bytes.data() + 8 * i, 8);
      ids[i] = static_cast<int32_t>(v);
    }
    t = now_ms();
    Output out = model->encode_text(ids.data(), tk.shape[0], tk.shape[1], args.capture);
    std::fprintf(stderr, "text tower: %lld texts in %.1f ms (first call)\n", static_cast<long long>(tk.shape[0]), now_ms() - t);
    outputs.emplace_back("text_features", out.features);
    for (auto& kv : out.intermediates) outputs.push_back(kv);
  }
  if (!args.out.empty()) tools::write_safetensors(args.out, outputs);
  if (!args.bench.empty()) bench(*model, spec.config, args);
  std::fprintf(stderr, "CUDA graphs captured: %d\n", model->graphs_captured());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 1;
}
