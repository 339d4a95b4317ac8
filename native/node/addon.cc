// Module entry: loadModel(arch, tensors, {precision, threads}, onProgress?) -> Promise<NativeModel>.
#include <napi.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <new>
#include <thread>

#include "../core/model.h"
#include "js_convert.h"
#include "model_wrap.h"
#include "preprocess_binding.h"

namespace cclip_node {

namespace {

struct LoadProgress {
  double loaded_bytes = 0, total_bytes = 0;
};

// Reads and packs the weights on a worker thread; progress reaches JS through the worker's thread-safe queue
// (all of it before the promise settles).
class LoadWorker : public Napi::AsyncProgressQueueWorker<LoadProgress> {
 public:
  LoadWorker(Napi::Env env, cclip::ClipConfig config, std::vector<cclip::TensorSource> tensors,
             cclip::LoadOptions options, Napi::Value on_progress)
      : Napi::AsyncProgressQueueWorker<LoadProgress>(env, "convnext_clip.load"),
        deferred_(Napi::Promise::Deferred::New(env)),
        config_(std::move(config)),
        tensors_(std::move(tensors)),
        options_(options) {
    if (on_progress.IsFunction()) on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    try {
      cclip::ProgressFn report;
      if (!on_progress_.IsEmpty()) {
        report = [&progress](uint64_t loaded, uint64_t total) {
          LoadProgress p{static_cast<double>(loaded), static_cast<double>(total)};
          progress.Send(&p, 1);
        };
      }
      model_ = cclip::ClipModel::load(config_, tensors_, options_, report);
    } catch (const std::bad_alloc&) {
      SetError("out of memory while loading the model");
    } catch (const std::exception& err) {
      SetError(err.what());
    }
  }

  void OnProgress(const LoadProgress* data, size_t count) override {
    if (on_progress_.IsEmpty() || count == 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object p = Napi::Object::New(env);
    p.Set("loadedBytes", data[count - 1].loaded_bytes);
    p.Set("totalBytes", data[count - 1].total_bytes);
    try {
      on_progress_.Call({p});
    } catch (const Napi::Error&) {
      // A throwing progress callback must not abort the load; the caller sees its own error elsewhere.
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    deferred_.Resolve(NativeModel::wrap(env, std::shared_ptr<cclip::ClipModel>(std::move(model_))));
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  cclip::ClipConfig config_;
  std::vector<cclip::TensorSource> tensors_;
  cclip::LoadOptions options_;
  Napi::FunctionReference on_progress_;
  std::unique_ptr<cclip::ClipModel> model_;
};

Napi::Value load_model(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cclip::ClipConfig config;
  std::vector<cclip::TensorSource> tensors;
  cclip::LoadOptions options;
  try {
    config = config_from_js(info[0]);
    tensors = tensors_from_js(info[1]);
    options = load_options_from_js(info[2]);
  } catch (const Napi::Error& err) {
    return rejected_promise(env, err.Message());
  }
  auto* worker = new LoadWorker(env, std::move(config), std::move(tensors), options, info[3]);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("loadModel", Napi::Function::New(env, load_model, "loadModel"));
  exports.Set("NativeModel", NativeModel::define_class(env));
  exports.Set("hardwareThreads", Napi::Number::New(env, std::max(1u, std::thread::hardware_concurrency())));
  InitPreprocess(env, exports);
  return exports;
}

}  // namespace cclip_node

static Napi::Object InitConvnextClip(Napi::Env env, Napi::Object exports) { return cclip_node::init(env, exports); }

NODE_API_MODULE(convnext_clip, InitConvnextClip)
