// open_clip's eval transform on decoded 8-bit pixels, step for step as Pillow + torchvision compute it:
// resize (shortest side / longest side / squash) in the image's own mode, center crop or pad, convert to
// RGB, ToTensor (/255), Normalize ((x - mean) / std). Portable C++17 (also built for wasm).
#pragma once
#include <cstdint>

#include "resize.h"

namespace cclip {

// The Pillow mode of a decoded image. LA images are given as RGBA with R = G = B (Pillow resizes LA and
// RGBA alike, premultiplied); palette (P) and bilevel (1) images as their expanded pixels with kNearest.
enum class PixelMode { kL, kRGB, kRGBA, kCMYK };

enum class ResizeMode { kShortest, kLongest, kSquash };

struct PreprocessSpec {
  int size = 224;
  ResizeMode resize_mode = ResizeMode::kShortest;
  ResampleFilter filter = ResampleFilter::kBicubic;  // kNearest for P and 1 images (Pillow forces it)
  uint8_t fill[4] = {0, 0, 0, 0};                     // padding colour in the image's own mode, per channel
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
};

struct ImageU8 {
  PixelView pixels;
  PixelMode mode = PixelMode::kRGB;
};

// Where the size x size output lies in the resized image: output (i, j) is resized pixel
// (i + offset_y, j + offset_x); outside [0, resized) it is padding. `window` is the resized part used.
struct PreprocessPlan {
  int resized_width = 0, resized_height = 0;
  int offset_x = 0, offset_y = 0;
  Window window;
};

// The geometry of the transform (torchvision Resize / open_clip ResizeKeepRatio sizes, center crop offsets
// with Python's round-half-even, padding split left/right as center_crop_or_pad does).
PreprocessPlan plan_preprocess(int width, int height, const PreprocessSpec& spec);

// out: [3, size, size] float32, normalized. `pool` may be null.
void preprocess_image(const ImageU8& image, const PreprocessSpec& spec, float* out, ThreadPool* pool);

}  // namespace cclip
