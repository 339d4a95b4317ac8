#include "preprocess.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "threadpool.h"

namespace cclip {

namespace {

// Pillow's MULDIV255: a * b / 255, rounded.
inline int muldiv255(int a, int b) {
  const int tmp = a * b + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

inline uint8_t clip8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

// Python's round(d / 2.0) for an integer d >= 0 (ties to even).
int half_round_even(int d) {
  const int q = d / 2;
  return (d % 2 == 0 || q % 2 == 0) ? q : q + 1;
}

// Pillow's RGBA -> RGBa (premultiply) into a packed copy.
std::vector<uint8_t> premultiply(const PixelView& src, ThreadPool* pool) {
  std::vector<uint8_t> out(static_cast<size_t>(src.width) * src.height * 4);
  auto rows = [&](int64_t y0, int64_t y1) {
    for (int64_t y = y0; y < y1; ++y) {
      const uint8_t* in = src.data + y * src.stride;
      uint8_t* o = out.data() + y * src.width * 4;
      for (int x = 0; x < src.width; ++x, in += 4, o += 4) {
        const int a = in[3];
        o[0] = static_cast<uint8_t>(muldiv255(in[0], a));
        o[1] = static_cast<uint8_t>(muldiv255(in[1], a));
        o[2] = static_cast<uint8_t>(muldiv255(in[2], a));
        o[3] = static_cast<uint8_t>(a);
      }
    }
  };
  if (pool != nullptr && static_cast<int64_t>(src.width) * src.height > (1 << 20)) pool->parallel_for(src.height, 64, rows);
  else rows(0, src.height);
  return out;
}

// Pillow's RGBa -> RGBA (unpremultiply), in place.
void unpremultiply(uint8_t* p, int64_t pixels) {
  for (int64_t i = 0; i < pixels; ++i, p += 4) {
    const int a = p[3];
    if (a == 0 || a == 255) continue;
    for (int ch = 0; ch < 3; ++ch) p[ch] = clip8(255 * p[ch] / a);
  }
}

// Pillow's convert('RGB') of one pixel in `mode`.
inline void to_rgb(const uint8_t* px, PixelMode mode, uint8_t rgb[3]) {
  switch (mode) {
    case PixelMode::kL:
      rgb[0] = rgb[1] = rgb[2] = px[0];
      break;
    case PixelMode::kCMYK: {
      const int nk = 255 - px[3];
      for (int ch = 0; ch < 3; ++ch) rgb[ch] = clip8(nk - muldiv255(px[ch], nk));
      break;
    }
    default:  // RGB, RGBA (alpha dropped)
      rgb[0] = px[0], rgb[1] = px[1], rgb[2] = px[2];
  }
}

int channels_of(PixelMode mode) {
  switch (mode) {
    case PixelMode::kL: return 1;
    case PixelMode::kRGB: return 3;
    default: return 4;
  }
}

}  // namespace

PreprocessPlan plan_preprocess(int w, int h, const PreprocessSpec& spec) {
  const int S = spec.size;
  if (w < 1 || h < 1 || S < 1) throw std::invalid_argument("plan_preprocess: sizes must be positive");
  PreprocessPlan p;
  switch (spec.resize_mode) {
    case ResizeMode::kShortest: {  // torchvision Resize(S): short side -> S, long -> int(S * long / short)
      const int64_t shorter = std::min(w, h), longer = std::max(w, h);
      const int64_t new_long = static_cast<int64_t>(static_cast<double>(S * longer) / static_cast<double>(shorter));
      if (new_long > (1 << 30)) throw std::invalid_argument("the resized image would be too large (extreme aspect ratio)");
      p.resized_width = w <= h ? S : static_cast<int>(new_long);
      p.resized_height = w <= h ? static_cast<int>(new_long) : S;
      break;
    }
    case ResizeMode::kLongest: {  // open_clip ResizeKeepRatio(longest=1): round(side / max ratio), half to even
      const double ratio = std::max(static_cast<double>(h) / S, static_cast<double>(w) / S);
      p.resized_height = std::max(1, static_cast<int>(std::nearbyint(h / ratio)));
      p.resized_width = std::max(1, static_cast<int>(std::nearbyint(w / ratio)));
      break;
    }
    case ResizeMode::kSquash:
      p.resized_width = p.resized_height = S;
      break;
  }
  // center_crop_or_pad: pad (left/top get the floor half) up to S, then crop at round((side - S) / 2).
  const int rw = p.resized_width, rh = p.resized_height;
  const int pad_left = S > rw ? (S - rw) / 2 : 0, pad_top = S > rh ? (S - rh) / 2 : 0;
  const int padded_w = std::max(rw, S), padded_h = std::max(rh, S);
  p.offset_x = half_round_even(padded_w - S) - pad_left;
  p.offset_y = half_round_even(padded_h - S) - pad_top;
  const int x0 = std::max(0, p.offset_x), x1 = std::min(rw, p.offset_x + S);
  const int y0 = std::max(0, p.offset_y), y1 = std::min(rh, p.offset_y + S);
  p.window = Window{x0, y0, std::max(0, x1 - x0), std::max(0, y1 - y0)};
  return p;
}

void preprocess_image(const ImageU8& image, const PreprocessSpec& spec, float* out, ThreadPool* pool) {
  const PixelView& src = image.pixels;
  const int c = channels_of(image.mode);
  if (src.channels != c) throw std::invalid_argument("preprocess_image: channel count does not match the mode");
  const int S = spec.size;
  const PreprocessPlan plan = plan_preprocess(src.width, src.height, spec);
  const Window& win = plan.window;

  // Resize the used window in the image's own mode; RGBA premultiplied (as Pillow does unless NEAREST or
  // no resize at all).
  std::vector<uint8_t> resized(static_cast<size_t>(win.width) * win.height * c);
  if (win.width > 0 && win.height > 0) {
    const bool same = plan.resized_width == src.width && plan.resized_height == src.height;
    const bool premul = image.mode == PixelMode::kRGBA && spec.filter != ResampleFilter::kNearest && !same;
    std::vector<uint8_t> premultiplied;
    PixelView from = src;
    if (premul) {
      premultiplied = premultiply(src, pool);
      from = PixelView{premultiplied.data(), src.width, src.height, 4, static_cast<int64_t>(src.width) * 4};
    }
    resize_u8(from, plan.resized_width, plan.resized_height, spec.filter, win, resized.data(), pool);
    if (premul) unpremultiply(resized.data(), static_cast<int64_t>(win.width) * win.height);
  }

  // Padding in the image's mode, convert('RGB'), ToTensor and Normalize in float32 as torch does.
  float lut[3][256];
  for (int ch = 0; ch < 3; ++ch) {
    for (int v = 0; v < 256; ++v) lut[ch][v] = (static_cast<float>(v) / 255.0f - spec.mean[ch]) / spec.std[ch];
  }
  uint8_t fill_rgb[3];
  to_rgb(spec.fill, image.mode, fill_rgb);
  const int64_t plane = static_cast<int64_t>(S) * S;
  for (int i = 0; i < S; ++i) {
    const int ry = i + plan.offset_y - win.y;
    const bool row_in = ry >= 0 && ry < win.height;
    for (int j = 0; j < S; ++j) {
      const int rx = j + plan.offset_x - win.x;
      uint8_t rgb[3] = {fill_rgb[0], fill_rgb[1], fill_rgb[2]};
      if (row_in && rx >= 0 && rx < win.width) {
        to_rgb(resized.data() + (static_cast<int64_t>(ry) * win.width + rx) * c, image.mode, rgb);
      }
      const int64_t at = static_cast<int64_t>(i) * S + j;
      for (int ch = 0; ch < 3; ++ch) out[ch * plane + at] = lut[ch][rgb[ch]];
    }
  }
}

}  // namespace cclip
