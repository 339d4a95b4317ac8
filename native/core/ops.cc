#include "ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace cclip {

namespace {

// Rows per parallel chunk so each chunk does at least ~16K floats of work.
inline int64_t row_grain(int64_t row_floats) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, row_floats)); }

}  // namespace

LinearLayer load_linear(WeightLoader& loader, const std::string& weight_name, const std::string& bias_name, int n, int k,
                        Precision precision) {
  LinearLayer layer;
  layer.weight = loader.read_packed(weight_name, n, k, precision);
  if (!bias_name.empty()) layer.bias = loader.read(bias_name);
  return layer;
}

void apply_linear(const LinearLayer& layer, const float* x, int m, float* y, const Epilogue& epilogue,
                  ThreadPool& pool) {
  linear(x, m, layer.weight, layer.bias.empty() ? nullptr : layer.bias.data(), y, epilogue, pool);
}

void layer_norm_rows(const float* x, int64_t rows, int dim, const float* gamma, const float* beta, float eps, float* y,
                     ThreadPool& pool) {
  pool.parallel_for(rows, row_grain(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) layer_norm_row(x + r * dim, dim, gamma, beta, eps, y + r * dim);
  });
}

void stem_patchify(const float* pixels, int n, int size, float* patches, ThreadPool& pool) {
  const int out = size / 4;
  pool.parallel_for(static_cast<int64_t>(n) * out, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int image = static_cast<int>(task / out), oy = static_cast<int>(task % out);
      for (int ox = 0; ox < out; ++ox) {
        float* patch = patches + ((task * out) + ox) * 48;  // [3, 4, 4]
        for (int ch = 0; ch < 3; ++ch) {
          const float* plane = pixels + (static_cast<int64_t>(image) * 3 + ch) * size * size;
          for (int ky = 0; ky < 4; ++ky) {
            const float* src = plane + static_cast<int64_t>(oy * 4 + ky) * size + ox * 4;
            std::memcpy(patch + ch * 16 + ky * 4, src, 4 * sizeof(float));
          }
        }
      }
    }
  });
}

void downsample_patchify_layer_norm(const float* x, int n, int h, int w, int c, const float* gamma,
                                    const float* beta, float eps, float* patches, ThreadPool& pool) {
  const int oh = h / 2, ow = w / 2;
  const int64_t patch_len = 4 * static_cast<int64_t>(c);
  pool.parallel_for(static_cast<int64_t>(n) * oh, row_grain(ow * patch_len), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int image = static_cast<int>(task / oh), oy = static_cast<int>(task % oh);
      for (int ox = 0; ox < ow; ++ox) {
        float* patch = patches + (task * ow + ox) * patch_len;  // [2, 2, c]
        for (int ky = 0; ky < 2; ++ky)
          for (int kx = 0; kx < 2; ++kx) {
            const float* px = x + ((static_cast<int64_t>(image) * h + oy * 2 + ky) * w + ox * 2 + kx) * c;
            layer_norm_row(px, c, gamma, beta, eps, patch + (ky * 2 + kx) * c);
          }
      }
    }
  });
}

void global_average_pool(const float* x, int n, int hw, int c, float* y) {
  for (int image = 0; image < n; ++image) {
    float* out = y + static_cast<int64_t>(image) * c;
    std::fill(out, out + c, 0.f);
    const float* in = x + static_cast<int64_t>(image) * hw * c;
    for (int p = 0; p < hw; ++p)
      for (int ch = 0; ch < c; ++ch) out[ch] += in[static_cast<int64_t>(p) * c + ch];
    const float inv = 1.0f / static_cast<float>(hw);
    for (int ch = 0; ch < c; ++ch) out[ch] *= inv;
  }
}

std::vector<float> channels_last_to_first(const float* x, int hw, int c) {
  std::vector<float> out(static_cast<size_t>(hw) * c);
  for (int p = 0; p < hw; ++p)
    for (int ch = 0; ch < c; ++ch) out[static_cast<size_t>(ch) * hw + p] = x[static_cast<size_t>(p) * c + ch];
  return out;
}

}  // namespace cclip
