#include "model_wrap.h"

#include <c10/util/Exception.h>

#include <cstring>

#include "convert.h"

namespace cclip::js {
namespace {

struct AddonData {
  Napi::FunctionReference constructor;
};

struct Progress {
  int64_t loaded = 0, total = 0;
};

// Runs f; returns the message of any exception it threw (c10's without the backtrace), or "" on success.
template <typename F>
std::string guarded(F&& f) {
  try {
    f();
    return "";
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown native error";
  }
}

class LoadWorker : public Napi::AsyncProgressWorker<Progress> {
 public:
  LoadWorker(Napi::Env env, Arch arch, std::vector<TensorSpec> specs, Options options, Napi::Value on_progress)
      : Napi::AsyncProgressWorker<Progress>(env, "convnext_clip_torch.load"),
        deferred_(Napi::Promise::Deferred::New(env)),
        arch_(std::move(arch)),
        specs_(std::move(specs)),
        options_(options) {
    if (on_progress.IsFunction()) on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    std::string error = guarded([&] {
      model_ = Model::load(arch_, specs_, options_, [&](int64_t loaded, int64_t total) {
        Progress p{loaded, total};
        progress.Send(&p, 1);
      });
    });
    if (!error.empty()) SetError(error);
  }
  void OnProgress(const Progress* p, size_t count) override {
    if (on_progress_.IsEmpty() || !p || count == 0) return;
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("loadedBytes", static_cast<double>(p->loaded));
    o.Set("totalBytes", static_cast<double>(p->total));
    try {
      on_progress_.Call({o});
    } catch (const Napi::Error&) {
      // a throwing progress callback must not break the load
    }
  }
  void OnOK() override { deferred_.Resolve(TorchModel::Wrap(Env(), std::move(model_))); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_progress_;
  Arch arch_;
  std::vector<TensorSpec> specs_;
  Options options_;
  std::shared_ptr<Model> model_;
};

class EncodeWorker : public Napi::AsyncWorker {
 public:
  EncodeWorker(Napi::Env env, std::shared_ptr<Model> model, Napi::TypedArray input, bool text, int64_t n, int64_t ctx, bool capture)
      : Napi::AsyncWorker(env, text ? "convnext_clip_torch.encodeText" : "convnext_clip_torch.encodeImage"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(std::move(model)),
        input_ref_(Napi::Persistent(input.As<Napi::Object>())),
        data_(static_cast<const uint8_t*>(input.ArrayBuffer().Data()) + input.ByteOffset()),
        text_(text),
        n_(n),
        ctx_(ctx),
        capture_(capture) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    std::string error = guarded([&] {
      out_ = text_ ? model_->encode_text(reinterpret_cast<const int32_t*>(data_), n_, ctx_, capture_)
                   : model_->encode_image(reinterpret_cast<const float*>(data_), n_, capture_);
    });
    if (!error.empty()) SetError(error);
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("features", floats(env, out_.features));
    if (capture_) {
      Napi::Object inter = Napi::Object::New(env);
      for (const auto& [name, t] : out_.intermediates) inter.Set(name, floats(env, t));
      result.Set("intermediates", inter);
    }
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  static Napi::Float32Array floats(Napi::Env env, const at::Tensor& t) {
    at::Tensor c = t.to(at::kFloat).contiguous();
    Napi::Float32Array a = Napi::Float32Array::New(env, static_cast<size_t>(c.numel()));
    if (c.numel() > 0) std::memcpy(a.Data(), c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float));
    return a;
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Model> model_;
  Napi::ObjectReference input_ref_;  // keeps the typed array (and the bytes read in Execute) alive
  const uint8_t* data_;
  bool text_;
  int64_t n_, ctx_;
  bool capture_;
  Output out_;
};

Napi::Error disposed_error(const Napi::Env& env) {
  Napi::Error e = Napi::Error::New(env, "the model has been disposed");
  e.Set("code", Napi::String::New(env, "E_DISPOSED"));
  return e;
}

}  // namespace

Napi::Function TorchModel::Define(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "TorchModel",
                                    {InstanceMethod("encodeImage", &TorchModel::EncodeImage), InstanceMethod("encodeText", &TorchModel::EncodeText),
                                     InstanceMethod("dispose", &TorchModel::Dispose), InstanceAccessor("disposed", &TorchModel::Disposed, nullptr),
                                     InstanceAccessor("weightBytes", &TorchModel::WeightBytes, nullptr),
                                     InstanceAccessor("device", &TorchModel::Device, nullptr),
                                     InstanceAccessor("precision", &TorchModel::Precision, nullptr),
                                     InstanceAccessor("graphsCaptured", &TorchModel::GraphsCaptured, nullptr)});
  auto* data = new AddonData{Napi::Persistent(ctor)};
  env.SetInstanceData<AddonData>(data);
  return ctor;
}

Napi::Object TorchModel::Wrap(Napi::Env env, std::shared_ptr<Model> model) {
  auto* holder = new std::shared_ptr<Model>(std::move(model));
  auto ext = Napi::External<std::shared_ptr<Model>>::New(env, holder, [](Napi::Env, std::shared_ptr<Model>* p) { delete p; });
  return env.GetInstanceData<AddonData>()->constructor.New({ext});
}

TorchModel::TorchModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TorchModel>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "TorchModel is created by loadModel()");
  model_ = *info[0].As<Napi::External<std::shared_ptr<Model>>>().Data();
}

std::shared_ptr<Model> TorchModel::live(const Napi::Env& env) const {
  if (!model_) throw disposed_error(env);
  return model_;
}

// encodeImage(pixels: Float32Array [n, 3, S, S], n, capture) -> Promise<{features, intermediates?}>
Napi::Value TorchModel::EncodeImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Model> model = live(env);
  if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(env, "encodeImage(pixels: Float32Array, n, capture?)");
  }
  Napi::TypedArray pixels = info[0].As<Napi::TypedArray>();
  const int64_t n = integer(info[1], "n", 1, 1 << 20);
  const int64_t S = model->arch().image_size;
  if (static_cast<int64_t>(pixels.ElementLength()) != n * 3 * S * S) {
    throw Napi::RangeError::New(env, "encodeImage: pixels hold " + std::to_string(pixels.ElementLength()) + " floats; " + std::to_string(n) + " images of 3x" +
                                         std::to_string(S) + "x" + std::to_string(S) + " need " + std::to_string(n * 3 * S * S));
  }
  auto* w = new EncodeWorker(env, model, pixels, false, n, 0, info.Length() > 2 && info[2].ToBoolean());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// encodeText(tokens: Int32Array [n, contextLength], n, contextLength, capture) -> Promise<{features, intermediates?}>
Napi::Value TorchModel::EncodeText(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Model> model = live(env);
  if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(env, "encodeText(tokens: Int32Array, n, contextLength, capture?)");
  }
  Napi::TypedArray tokens = info[0].As<Napi::TypedArray>();
  const int64_t n = integer(info[1], "n", 1, 1 << 20);
  const int64_t ctx = integer(info[2], "contextLength", 1, 1 << 16);
  if (ctx != model->arch().context_length) {
    throw Napi::RangeError::New(env, "encodeText: contextLength " + std::to_string(ctx) + " is not the model's " + std::to_string(model->arch().context_length));
  }
  if (static_cast<int64_t>(tokens.ElementLength()) != n * ctx) {
    throw Napi::RangeError::New(env, "encodeText: tokens hold " + std::to_string(tokens.ElementLength()) + " ids; " + std::to_string(n) + " rows of " +
                                         std::to_string(ctx) + " need " + std::to_string(n * ctx));
  }
  auto* w = new EncodeWorker(env, model, tokens, true, n, ctx, info.Length() > 3 && info[3].ToBoolean());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value TorchModel::Dispose(const Napi::CallbackInfo& info) {
  model_.reset();
  return info.Env().Undefined();
}

Napi::Value TorchModel::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

Napi::Value TorchModel::WeightBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->weight_bytes()) : 0.0);
}

Napi::Value TorchModel::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model_ && model_->options().cuda ? "cuda" : "cpu");
}

Napi::Value TorchModel::Precision(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model_ && model_->options().bf16 ? "bf16" : "fp32");
}

Napi::Value TorchModel::GraphsCaptured(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), model_ ? model_->graphs_captured() : 0);
}

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) throw Napi::TypeError::New(env, "loadModel(arch, tensors, options, onProgress?)");
  Arch arch = arch_from(info[0]);
  std::vector<TensorSpec> specs = specs_from(info[1]);
  Options options = options_from(info[2]);
  auto* w = new LoadWorker(env, std::move(arch), std::move(specs), options, info.Length() > 3 ? info[3] : env.Undefined());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace cclip::js
