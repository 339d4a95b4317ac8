// convnext_clip_torch.node: the libtorch backend's N-API entry points. Every load and inference runs on a
// libuv worker thread and returns a Promise; errors (c10::Error included) reject it with their message.
#include <napi.h>
#include <torch/version.h>

#include <thread>

#include "cuda_exec.h"
#include "fused_ops.h"
#include "model_wrap.h"

namespace {

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
  cclip::js::TorchModel::Define(env);
  exports.Set("loadModel", Napi::Function::New(env, cclip::js::LoadModel, "loadModel"));
  exports.Set("cudaStatus", Napi::Function::New(env, CudaStatus, "cudaStatus"));
  exports.Set("torchVersion", TORCH_VERSION);
  exports.Set("cudaBuild", cclip::fused_kernels_built());
  exports.Set("hardwareThreads", static_cast<double>(std::thread::hardware_concurrency()));
  return exports;
}

}  // namespace

NODE_API_MODULE(convnext_clip_torch, Init)
