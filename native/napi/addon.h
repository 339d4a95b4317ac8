// The one N-API layer of every addon (native/node, native/torch/addon): what each addon's registration calls.
//   loadModel(requestJson: string, onProgress?) -> Promise<Model>   (the JSON of native/core/spec.h LoadRequest)
//   Model: encodeImage(pixels: Float32Array, n, capture) / encodeText(tokens: Int32Array, n, contextLength,
//          capture) -> Promise<{features, intermediates?}>; dispose(); disposed, weightBytes, precision, device,
//          graphsCaptured
//   preprocessImage(...), resizeImage(...)  (native/core preprocessing; see preprocess.h here)
// Every call returns a Promise and runs off the JS thread; every failure rejects it with an Error whose `code`
// is the engine's (cclip::Error) when it has one. Calls on one model run one at a time in call order, queued
// on the JS thread (no libuv thread waits on a lock).
#pragma once
#include <napi.h>

#include "engine.h"

namespace cclip::napi {

// Sets exports.loadModel (over `load`), exports.hardwareThreads, and the preprocessing exports.
void register_addon(Napi::Env env, Napi::Object exports, LoadFn load);

}  // namespace cclip::napi
