// Pillow-exact 8-bit image resizing: what Image.resize(size, filter) computes (libImaging Resample.c and
// Geometry.c semantics, re-implemented): separable convolution, horizontal pass then vertical, antialiased
// (the filter support widens by the downscale factor), 22-bit fixed-point weights, each pass rounded and
// clamped to 8 bits; NEAREST is Pillow's affine scale. Portable C++17 (also built for wasm).
#pragma once
#include <cstdint>

namespace cclip {

class ThreadPool;

enum class ResampleFilter { kNearest, kBilinear, kBicubic };

// Interleaved 8-bit pixels [height, width, channels]; rows are `stride` bytes apart.
struct PixelView {
  const uint8_t* data = nullptr;
  int width = 0, height = 0, channels = 0;
  int64_t stride = 0;
};

// A rectangle of the resized image: columns [x, x + width), rows [y, y + height).
struct Window {
  int x = 0, y = 0, width = 0, height = 0;
};

// Resizes `src` to out_width x out_height exactly as Pillow would, but computes only `window` of the result
// (each output sample depends on its own coordinates only, so this equals resize-then-crop). `dst` is
// [window.height, window.width, channels], packed. Same size in both directions copies (as Pillow does).
// `pool` may be null (single-threaded); large images are split by rows across it. Channels: 1 to 4.
void resize_u8(const PixelView& src, int out_width, int out_height, ResampleFilter filter, const Window& window,
               uint8_t* dst, ThreadPool* pool);

}  // namespace cclip
