// The JS object of a loaded model (encodeImage, encodeText, dispose) and the workers that run off the event loop.
#pragma once
#include <napi.h>

#include <memory>

#include "model.h"

namespace cclip::js {

class TorchModel : public Napi::ObjectWrap<TorchModel> {
 public:
  static Napi::Function Define(Napi::Env env);
  // A JS object owning `model` (its constructor takes the model as an External; not callable from JS).
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Model> model);
  explicit TorchModel(const Napi::CallbackInfo& info);

 private:
  Napi::Value EncodeImage(const Napi::CallbackInfo& info);
  Napi::Value EncodeText(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value WeightBytes(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Precision(const Napi::CallbackInfo& info);
  Napi::Value GraphsCaptured(const Napi::CallbackInfo& info);
  std::shared_ptr<Model> live(const Napi::Env& env) const;

  std::shared_ptr<Model> model_;  // jobs in flight hold their own reference, so dispose() never frees under them
};

// loadModel(arch, tensors, options, onProgress?) -> Promise<TorchModel>
Napi::Value LoadModel(const Napi::CallbackInfo& info);

}  // namespace cclip::js
