// convnext_clip.node: the portable core (native/core) as an engine of the shared N-API layer (native/napi).
#include <napi.h>

#include "../core/gemm_internal.h"
#include "../core/model.h"
#include "../napi/addon.h"

namespace {

class CoreEngine : public cclip::napi::Engine {
 public:
  explicit CoreEngine(std::unique_ptr<cclip::ClipModel> model) : model_(std::move(model)) {}

  cclip::napi::EncodeResult encode_image(const float* pixels, int64_t count, int n, bool capture) override {
    cclip::napi::EncodeResult r;
    r.features = model_->encode_image(pixels, count, n, capture ? &r.captures : nullptr);
    return r;
  }
  cclip::napi::EncodeResult encode_text(const int32_t* tokens, int64_t count, int n, int context_length, bool capture) override {
    cclip::napi::EncodeResult r;
    r.features = model_->encode_text(tokens, count, n, context_length, capture ? &r.captures : nullptr);
    return r;
  }
  double weight_bytes() const override { return static_cast<double>(model_->weight_bytes()); }
  cclip::Precision precision() const override { return model_->precision(); }

 private:
  std::unique_ptr<cclip::ClipModel> model_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  cclip::napi::register_addon(env, exports, [](const cclip::LoadRequest& request, const cclip::ProgressFn& progress) {
    return std::make_unique<CoreEngine>(cclip::ClipModel::load(request.config, request.tensors, request.options, progress));
  });
  // The GEMM variants this CPU runs (and CCLIP_GEMM_ISA allows), for benchmarks and diagnostics.
  Napi::Object kernels = Napi::Object::New(env);
  kernels.Set("fp32", cclip::gemm_detail::best_kernels()->name);
  kernels.Set("bf16", cclip::gemm_detail::best_bf16_kernels()->name);
  exports.Set("gemmKernels", kernels);
  return exports;
}

}  // namespace

NODE_API_MODULE(convnext_clip, Init)
