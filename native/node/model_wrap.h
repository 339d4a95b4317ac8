// NativeModel: the JS handle of a loaded model. Every inference runs on a libuv worker thread and returns a
// Promise; workers hold their own shared_ptr, so dispose() during a call only drops the handle's reference.
// Calls on one model run one at a time in call order (queued on the JS thread). Inputs are read in place from the caller's typed array (kept referenced until the call settles): callers must
// not write to it meanwhile.
#pragma once
#include <napi.h>

#include <memory>

#include "../core/model.h"

namespace cclip_node {

class CallQueue;

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function define_class(Napi::Env env);
  // A new JS handle owning `model` (the constructor is not callable from JS with anything else).
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<cclip::ClipModel> model);

  explicit NativeModel(const Napi::CallbackInfo& info);

 private:
  Napi::Value encode_image(const Napi::CallbackInfo& info);  // (Float32Array pixels, n, capture) -> Promise
  Napi::Value encode_text(const Napi::CallbackInfo& info);   // (Int32Array tokens, n, contextLength, capture) -> Promise
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value weight_bytes(const Napi::CallbackInfo& info);
  Napi::Value precision(const Napi::CallbackInfo& info);

  std::shared_ptr<cclip::ClipModel> model_;
  std::shared_ptr<CallQueue> queue_;  // shared with in-flight workers, so it drains after dispose()
};

// A Promise already rejected with Error(message) (and error.code when given).
Napi::Value rejected_promise(Napi::Env env, const std::string& message, const char* code = nullptr);

}  // namespace cclip_node
