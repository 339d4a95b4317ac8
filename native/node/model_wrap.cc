#include "model_wrap.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <exception>
#include <new>
#include <string>
#include <vector>

namespace cclip_node {

namespace {

struct AddonData {
  Napi::FunctionReference model_constructor;
};

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
  using Forward = std::function<std::vector<float>(cclip::ClipModel&, cclip::Captures*)>;

  // `input` (the caller's typed array) stays referenced until the worker is done: the forward reads it in place,
  // so the JS thread never copies it.
  EncodeWorker(Napi::Env env, std::shared_ptr<cclip::ClipModel> model, std::shared_ptr<CallQueue> queue,
               const Napi::Object& input, bool capture, Forward forward)
      : Napi::AsyncWorker(env, "convnext_clip.encode"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(std::move(model)),
        queue_(std::move(queue)),
        input_(Napi::Persistent(input)),
        capture_(capture),
        forward_(std::move(forward)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      features_ = forward_(*model_, capture_ ? &captures_ : nullptr);
    } catch (const std::bad_alloc&) {
      SetError("out of memory during inference");
    } catch (const std::exception& err) {
      SetError(err.what());
    }
  }

  void OnOK() override {
    queue_->finished();  // the next call starts while this one's result is built
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("features", to_float32_array(env, features_));
    if (capture_) {
      Napi::Object intermediates = Napi::Object::New(env);
      for (const auto& [name, values] : captures_) intermediates.Set(name, to_float32_array(env, values));
      result.Set("intermediates", intermediates);
    }
    model_.reset();
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override {
    queue_->finished();
    model_.reset();
    deferred_.Reject(error.Value());
  }

 private:
  static Napi::Float32Array to_float32_array(Napi::Env env, const std::vector<float>& values) {
    Napi::Float32Array out = Napi::Float32Array::New(env, values.size());
    if (!values.empty()) std::memcpy(out.Data(), values.data(), values.size() * sizeof(float));
    return out;
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<cclip::ClipModel> model_;
  std::shared_ptr<CallQueue> queue_;
  Napi::ObjectReference input_;
  bool capture_;
  Forward forward_;
  std::vector<float> features_;
  cclip::Captures captures_;
};

bool batch_size_arg(const Napi::Value& v, int& n) {
  if (!v.IsNumber()) return false;
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < 1 || d > 65536) return false;
  n = static_cast<int>(d);
  return true;
}

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

Napi::Value rejected_promise(Napi::Env env, const std::string& message, const char* code) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  Napi::Error error = Napi::Error::New(env, message);
  if (code) error.Set("code", Napi::String::New(env, code));
  deferred.Reject(error.Value());
  return deferred.Promise();
}

Napi::Function NativeModel::define_class(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeModel",
                                    {InstanceMethod<&NativeModel::encode_image>("encodeImage"),
                                     InstanceMethod<&NativeModel::encode_text>("encodeText"),
                                     InstanceMethod<&NativeModel::dispose>("dispose"),
                                     InstanceAccessor<&NativeModel::disposed>("disposed"),
                                     InstanceAccessor<&NativeModel::weight_bytes>("weightBytes"),
                                     InstanceAccessor<&NativeModel::precision>("precision")});
  AddonData* data = env.GetInstanceData<AddonData>();
  if (!data) {
    data = new AddonData();
    env.SetInstanceData(data);
  }
  data->model_constructor = Napi::Persistent(ctor);
  return ctor;
}

Napi::Object NativeModel::wrap(Napi::Env env, std::shared_ptr<cclip::ClipModel> model) {
  auto* holder = new std::shared_ptr<cclip::ClipModel>(std::move(model));
  Napi::External<std::shared_ptr<cclip::ClipModel>> external =
      Napi::External<std::shared_ptr<cclip::ClipModel>>::New(env, holder, [](Napi::Env, std::shared_ptr<cclip::ClipModel>* p) { delete p; });
  return env.GetInstanceData<AddonData>()->model_constructor.New({external});
}

NativeModel::NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeModel is created by loadModel(), not with new");
  }
  model_ = *info[0].As<Napi::External<std::shared_ptr<cclip::ClipModel>>>().Data();
  queue_ = std::make_shared<CallQueue>();
}

Napi::Value NativeModel::encode_image(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!model_) return rejected_promise(env, "the model has been disposed", "E_DISPOSED");
  if (info.Length() < 2 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    return rejected_promise(env, "encodeImage(pixels, n, capture): pixels must be a Float32Array");
  }
  int n = 0;
  if (!batch_size_arg(info[1], n)) return rejected_promise(env, "encodeImage: n must be an integer in [1, 65536]");
  const Napi::Float32Array pixels = info[0].As<Napi::Float32Array>();
  const bool capture = info.Length() > 2 && info[2].ToBoolean().Value();
  const float* data = pixels.Data();
  const int64_t count = static_cast<int64_t>(pixels.ElementLength());
  auto* worker = new EncodeWorker(env, model_, queue_, pixels, capture, [data, count, n](cclip::ClipModel& model, cclip::Captures* captures) {
    return model.encode_image(data, count, n, captures);
  });
  Napi::Promise promise = worker->promise();
  queue_->submit(worker);
  return promise;
}

Napi::Value NativeModel::encode_text(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!model_) return rejected_promise(env, "the model has been disposed", "E_DISPOSED");
  if (info.Length() < 3 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    return rejected_promise(env, "encodeText(tokens, n, contextLength, capture): tokens must be an Int32Array");
  }
  int n = 0, context_length = 0;
  if (!batch_size_arg(info[1], n)) return rejected_promise(env, "encodeText: n must be an integer in [1, 65536]");
  if (!batch_size_arg(info[2], context_length)) return rejected_promise(env, "encodeText: contextLength must be a positive integer");
  const Napi::Int32Array tokens = info[0].As<Napi::Int32Array>();
  const bool capture = info.Length() > 3 && info[3].ToBoolean().Value();
  const int32_t* data = tokens.Data();
  const int64_t count = static_cast<int64_t>(tokens.ElementLength());
  auto* worker = new EncodeWorker(env, model_, queue_, tokens, capture,
                                  [data, count, n, context_length](cclip::ClipModel& model, cclip::Captures* captures) {
    return model.encode_text(data, count, n, context_length, captures);
  });
  Napi::Promise promise = worker->promise();
  queue_->submit(worker);
  return promise;
}

Napi::Value NativeModel::dispose(const Napi::CallbackInfo& info) {
  model_.reset();  // in-flight workers keep their own reference; the weights go when the last one finishes
  return info.Env().Undefined();
}

Napi::Value NativeModel::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

Napi::Value NativeModel::weight_bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->weight_bytes()) : 0.0);
}

Napi::Value NativeModel::precision(const Napi::CallbackInfo& info) {
  if (!model_) return info.Env().Undefined();
  return Napi::String::New(info.Env(), model_->precision() == cclip::Precision::BF16 ? "bf16" : "fp32");
}

}  // namespace cclip_node
