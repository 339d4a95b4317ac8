#include "model_object.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "errors.h"

namespace cclip::napi {

namespace {

struct ClassData {
  Napi::FunctionReference constructor;
};

constexpr int kMaxBatch = 65536;

class EncodeWorker;

}  // namespace

// Runs one model's calls one at a time, in order. A call waits here, not on a libuv thread blocked on a lock,
// so concurrent calls never tie up libuv's small thread pool (fs, dns, zlib share it). JS thread only.
class CallQueue {
 public:
  void submit(EncodeWorker* worker);
  void finished();

 private:
  void start_next();
  std::deque<EncodeWorker*> pending_;
  bool running_ = false;
};

namespace {

// Inference worker: runs `forward` off the JS thread, resolves {features, intermediates?}.
class EncodeWorker : public Napi::AsyncWorker {
 public:
  using Forward = std::function<EncodeResult(Engine&)>;

  EncodeWorker(Napi::Env env, std::shared_ptr<Engine> engine, std::shared_ptr<CallQueue> queue, const Napi::Object& input,
               bool capture, Forward forward)
      : Napi::AsyncWorker(env, "convnext_clip.encode"),
        deferred_(Napi::Promise::Deferred::New(env)),
        engine_(std::move(engine)),
        queue_(std::move(queue)),
        input_(Napi::Persistent(input)),
        capture_(capture),
        forward_(std::move(forward)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    capture_failure("running inference", failure_, [&] { result_ = forward_(*engine_); });
  }

  void OnOK() override {
    queue_->finished();  // the next call starts while this one's result is built
    engine_.reset();
    Napi::Env env = Env();
    if (!failure_.message.empty()) return deferred_.Reject(to_js_error(env, failure_).Value());
    Napi::Object out = Napi::Object::New(env);
    out.Set("features", floats(env, result_.features));
    if (capture_) {
      Napi::Object intermediates = Napi::Object::New(env);
      for (const auto& [name, values] : result_.captures) intermediates.Set(name, floats(env, values));
      out.Set("intermediates", intermediates);
    }
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& error) override {
    queue_->finished();
    engine_.reset();
    deferred_.Reject(error.Value());
  }

 private:
  static Napi::Float32Array floats(Napi::Env env, const std::vector<float>& values) {
    Napi::Float32Array out = Napi::Float32Array::New(env, values.size());
    if (!values.empty()) std::memcpy(out.Data(), values.data(), values.size() * sizeof(float));
    return out;
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Engine> engine_;
  std::shared_ptr<CallQueue> queue_;
  Napi::ObjectReference input_;  // keeps the typed array (read in place by Execute) alive
  bool capture_;
  Forward forward_;
  EncodeResult result_;
  Failure failure_;
};

bool integer_arg(const Napi::Value& v, int lo, int hi, int& out) {
  if (!v.IsNumber()) return false;
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < lo || d > hi) return false;
  out = static_cast<int>(d);
  return true;
}

Napi::Value invalid(Napi::Env env, const std::string& message) { return rejected_promise(env, {message, "E_INVALID_ARGUMENT"}); }

}  // namespace

void CallQueue::submit(EncodeWorker* worker) {
  pending_.push_back(worker);
  if (!running_) start_next();
}

void CallQueue::finished() {
  running_ = false;
  start_next();
}

void CallQueue::start_next() {
  if (pending_.empty()) return;
  EncodeWorker* worker = pending_.front();
  pending_.pop_front();
  running_ = true;
  worker->Queue();
}

void ModelObject::define_class(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "Model",
                                    {InstanceMethod<&ModelObject::encode_image>("encodeImage"),
                                     InstanceMethod<&ModelObject::encode_text>("encodeText"),
                                     InstanceMethod<&ModelObject::dispose>("dispose"),
                                     InstanceAccessor<&ModelObject::disposed>("disposed"),
                                     InstanceAccessor<&ModelObject::weight_bytes>("weightBytes"),
                                     InstanceAccessor<&ModelObject::precision>("precision"),
                                     InstanceAccessor<&ModelObject::device>("device"),
                                     InstanceAccessor<&ModelObject::graphs_captured>("graphsCaptured")});
  env.SetInstanceData<ClassData>(new ClassData{Napi::Persistent(ctor)});
}

Napi::Object ModelObject::wrap(Napi::Env env, std::shared_ptr<Engine> engine) {
  auto* holder = new std::shared_ptr<Engine>(std::move(engine));
  auto external = Napi::External<std::shared_ptr<Engine>>::New(env, holder, [](Napi::Env, std::shared_ptr<Engine>* p) { delete p; });
  return env.GetInstanceData<ClassData>()->constructor.New({external});
}

ModelObject::ModelObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelObject>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "Model is created by loadModel(), not with new");
  engine_ = *info[0].As<Napi::External<std::shared_ptr<Engine>>>().Data();
  queue_ = std::make_shared<CallQueue>();
}

Napi::Value ModelObject::encode_image(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_) return rejected_promise(env, {"the model has been disposed", "E_DISPOSED"});
  if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    return invalid(env, "encodeImage(pixels, n, capture): pixels must be a Float32Array");
  }
  int n = 0;
  if (!integer_arg(info[1], 1, kMaxBatch, n)) return invalid(env, "encodeImage: n must be an integer in [1, 65536]");
  const Napi::Float32Array pixels = info[0].As<Napi::Float32Array>();
  const bool capture = info.Length() > 2 && info[2].ToBoolean().Value();
  const float* data = pixels.Data();
  const int64_t count = static_cast<int64_t>(pixels.ElementLength());
  auto* worker = new EncodeWorker(env, engine_, queue_, pixels, capture,
                                  [=](Engine& e) { return e.encode_image(data, count, n, capture); });
  Napi::Promise promise = worker->promise();
  queue_->submit(worker);
  return promise;
}

Napi::Value ModelObject::encode_text(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_) return rejected_promise(env, {"the model has been disposed", "E_DISPOSED"});
  if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    return invalid(env, "encodeText(tokens, n, contextLength, capture): tokens must be an Int32Array");
  }
  int n = 0, context_length = 0;
  if (!integer_arg(info[1], 1, kMaxBatch, n)) return invalid(env, "encodeText: n must be an integer in [1, 65536]");
  if (!integer_arg(info[2], 1, 1 << 16, context_length)) return invalid(env, "encodeText: contextLength must be an integer in [1, 65536]");
  const Napi::Int32Array tokens = info[0].As<Napi::Int32Array>();
  const bool capture = info.Length() > 3 && info[3].ToBoolean().Value();
  const int32_t* data = tokens.Data();
  const int64_t count = static_cast<int64_t>(tokens.ElementLength());
  auto* worker = new EncodeWorker(env, engine_, queue_, tokens, capture,
                                  [=](Engine& e) { return e.encode_text(data, count, n, context_length, capture); });
  Napi::Promise promise = worker->promise();
  queue_->submit(worker);
  return promise;
}

Napi::Value ModelObject::dispose(const Napi::CallbackInfo& info) {
  engine_.reset();  // in-flight workers keep their own reference; the weights go when the last one finishes
  return info.Env().Undefined();
}

Napi::Value ModelObject::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !engine_); }

Napi::Value ModelObject::weight_bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), engine_ ? engine_->weight_bytes() : 0.0);
}

Napi::Value ModelObject::precision(const Napi::CallbackInfo& info) {
  if (!engine_) return info.Env().Undefined();
  return Napi::String::New(info.Env(), engine_->precision() == Precision::BF16 ? "bf16" : "fp32");
}

Napi::Value ModelObject::device(const Napi::CallbackInfo& info) {
  if (!engine_) return info.Env().Undefined();
  return Napi::String::New(info.Env(), engine_->device());
}

Napi::Value ModelObject::graphs_captured(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), engine_ ? engine_->graphs_captured() : 0);
}

}  // namespace cclip::napi
