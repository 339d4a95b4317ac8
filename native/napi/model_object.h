// The JS handle of a loaded engine (class "Model"). Workers hold their own shared_ptr, so dispose() during a
// call only drops the handle's reference. Inputs are read in place from the caller's typed array (kept
// referenced until the call settles): callers must not write to it meanwhile.
#pragma once
#include <napi.h>

#include <memory>

#include "engine.h"

namespace cclip::napi {

class CallQueue;

class ModelObject : public Napi::ObjectWrap<ModelObject> {
 public:
  // Defines the class once per addon instance (env).
  static void define_class(Napi::Env env);
  // A new JS handle owning `engine` (the constructor is not callable from JS with anything else).
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<Engine> engine);

  explicit ModelObject(const Napi::CallbackInfo& info);

 private:
  Napi::Value encode_image(const Napi::CallbackInfo& info);  // (Float32Array pixels, n, capture) -> Promise
  Napi::Value encode_text(const Napi::CallbackInfo& info);   // (Int32Array tokens, n, contextLength, capture) -> Promise
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value weight_bytes(const Napi::CallbackInfo& info);
  Napi::Value precision(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value graphs_captured(const Napi::CallbackInfo& info);

  std::shared_ptr<Engine> engine_;
  std::shared_ptr<CallQueue> queue_;  // shared with in-flight workers, so it drains after dispose()
};

}  // namespace cclip::napi
