// convnext_clip_torch.node: the libtorch engine (native/torch) behind the shared N-API layer (native/napi),
// plus what only this addon has (cudaStatus, torchVersion, cudaBuild). The preprocessing exports are the
// core's (native/napi/preprocess.h), linked in like the native addon's.
#include <c10/util/Exception.h>
#include <napi.h>
#include <torch/version.h>

#include <cstring>
#include <stdexcept>

#include "../../napi/addon.h"
#include "cuda_exec.h"
#include "fused_ops.h"
#include "model.h"

namespace {

std::vector<float> host_floats(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).cpu().contiguous();
  std::vector<float> out(static_cast<size_t>(c.numel()));
  if (!out.empty()) std::memcpy(out.data(), c.data_ptr<float>(), out.size() * sizeof(float));
  return out;
}

// Runs f with libtorch's errors as plain messages (c10's without the backtrace) and bad arguments typed.
template <typename F>
auto guarded(F&& f) {
  try {
    return f();
  } catch (const c10::Error& e) {
    throw std::runtime_error(e.what_without_backtrace());
  } catch (const std::invalid_argument& e) {
    throw cclip::Error("E_INVALID_ARGUMENT", e.what());
  }
}

class TorchEngine : public cclip::napi::Engine {
 public:
  explicit TorchEngine(std::shared_ptr<cclip::Model> model) : model_(std::move(model)) {}

  cclip::napi::EncodeResult encode_image(const float* pixels, int64_t count, int n, bool capture) override {
    const int64_t size = model_->config().vision.image_size;
    if (count != static_cast<int64_t>(n) * 3 * size * size) {
      throw cclip::Error("E_INVALID_ARGUMENT", "encodeImage: pixels hold " + std::to_string(count) + " floats; " + std::to_string(n) +
                                                   " images of 3x" + std::to_string(size) + "x" + std::to_string(size) + " need " +
                                                   std::to_string(static_cast<int64_t>(n) * 3 * size * size));
    }
    return convert(guarded([&] { return model_->encode_image(pixels, n, capture); }));
  }

  cclip::napi::EncodeResult encode_text(const int32_t* tokens, int64_t count, int n, int context_length, bool capture) override {
    if (count != static_cast<int64_t>(n) * context_length) {
      throw cclip::Error("E_INVALID_ARGUMENT", "encodeText: tokens hold " + std::to_string(count) + " ids; " + std::to_string(n) + " rows of " +
                                                   std::to_string(context_length) + " need " + std::to_string(static_cast<int64_t>(n) * context_length));
    }
    return convert(guarded([&] { return model_->encode_text(tokens, n, context_length, capture); }));
  }

  double weight_bytes() const override { return static_cast<double>(model_->weight_bytes()); }
  cclip::Precision precision() const override { return model_->options().precision; }
  const char* device() const override { return model_->options().cuda ? "cuda" : "cpu"; }
  int graphs_captured() const override { return model_->graphs_captured(); }

 private:
  static cclip::napi::EncodeResult convert(const cclip::Output& out) {
    cclip::napi::EncodeResult r;
    r.features = host_floats(out.features);
    for (const auto& [name, t] : out.intermediates) r.captures.emplace_back(name, host_floats(t));
    return r;
  }

  std::shared_ptr<cclip::Model> model_;
};

// cudaStatus() -> {ok: true} | {ok: false, reason}
Napi::Value CudaStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  std::string why;
  bool ok = false;
  try {
    ok = cclip::CudaExec::available(&why);
  } catch (const std::exception& e) {
    why = e.what();
  }
  o.Set("ok", ok);
  if (!ok) o.Set("reason", why);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  cclip::napi::register_addon(env, exports, [](const cclip::LoadRequest& request, const cclip::ProgressFn& progress) {
    return std::make_unique<TorchEngine>(guarded([&] { return cclip::Model::load(request.config, request.tensors, request.options, progress); }));
  });
  exports.Set("cudaStatus", Napi::Function::New(env, CudaStatus, "cudaStatus"));
  exports.Set("torchVersion", TORCH_VERSION);
  exports.Set("cudaBuild", cclip::fused_kernels_built());
  return exports;
}

}  // namespace

NODE_API_MODULE(convnext_clip_torch, Init)
