#include "addon.h"

#include <algorithm>
#include <string>
#include <thread>

#include "errors.h"
#include "model_object.h"
#include "preprocess.h"

namespace cclip::napi {

namespace {

struct LoadProgress {
  double loaded_bytes = 0, total_bytes = 0;
};

// Parses the request and builds the engine on a worker thread; progress reaches JS through the worker's
// thread-safe queue (all of it before the promise settles).
class LoadWorker : public Napi::AsyncProgressQueueWorker<LoadProgress> {
 public:
  LoadWorker(Napi::Env env, std::string request, const LoadFn& load, Napi::Value on_progress)
      : Napi::AsyncProgressQueueWorker<LoadProgress>(env, "convnext_clip.load"),
        deferred_(Napi::Promise::Deferred::New(env)),
        request_(std::move(request)),
        load_(load) {
    if (on_progress.IsFunction()) on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    capture_failure("loading the model", failure_, [&] {
      const LoadRequest request = parse_load_request(request_);
      ProgressFn report;
      if (!on_progress_.IsEmpty()) {
        report = [&progress](uint64_t loaded, uint64_t total) {
          LoadProgress p{static_cast<double>(loaded), static_cast<double>(total)};
          progress.Send(&p, 1);
        };
      }
      engine_ = load_(request, report);
    });
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
      // A throwing progress callback must not abort the load.
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!failure_.message.empty() || !engine_) {
      if (failure_.message.empty()) failure_.message = "the engine returned no model";
      return deferred_.Reject(to_js_error(env, failure_).Value());
    }
    deferred_.Resolve(ModelObject::wrap(env, std::shared_ptr<Engine>(std::move(engine_))));
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string request_;
  const LoadFn& load_;  // owned by register_addon for the addon's lifetime
  Napi::FunctionReference on_progress_;
  std::unique_ptr<Engine> engine_;
  Failure failure_;
};

}  // namespace

void register_addon(Napi::Env env, Napi::Object exports, LoadFn load) {
  ModelObject::define_class(env);
  const LoadFn* shared_load = new LoadFn(std::move(load));  // never freed: the addon is never unloaded
  exports.Set("loadModel", Napi::Function::New(env, [shared_load](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      return rejected_promise(env, {"loadModel(request: string, onProgress?): request must be the JSON load request", "E_INVALID_ARGUMENT"});
    }
    auto* worker = new LoadWorker(env, info[0].As<Napi::String>().Utf8Value(), *shared_load, info.Length() > 1 ? info[1] : env.Undefined());
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  }, "loadModel"));
  exports.Set("hardwareThreads", Napi::Number::New(env, std::max(1u, std::thread::hardware_concurrency())));
  register_preprocess(env, exports);
}

}  // namespace cclip::napi
