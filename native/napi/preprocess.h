// Image preprocessing exports of every addon (native/core/preprocess.h, resize.h), each returning a Promise and
// running on a libuv worker thread (large images also on a shared thread pool), never on the JS thread:
//   preprocessImage(pixels: Uint8Array, width, height, mode: 'L'|'RGB'|'RGBA'|'CMYK',
//                   spec: {size, resizeMode, filter, fill: number[], mean: number[3], std: number[3]},
//                   out: Float32Array /* [3, size, size] */) -> Promise<void>
//   resizeImage(pixels: Uint8Array, width, height, channels, outWidth, outHeight, filter) -> Promise<Uint8Array>
#pragma once
#include <napi.h>

namespace cclip::napi {

void register_preprocess(Napi::Env env, Napi::Object exports);

}  // namespace cclip::napi
