// Op-level tests of native/core against plain double-precision references (in the manner of ggml's
// test-backend-ops): LayerNorm, depthwise 7x7 conv + LayerNorm, stem and downsample patchify, pooling, causal
// attention, linear layers with their epilogues (fp32 and bf16 weights), Pillow resizing, the preprocessing
// transform, the weight reader (dtype conversion, strides, the finite check) and the load-request contract.
// GEMM kernels and GELU have their own exhaustive test (gemm_test.cc).
// Build and run: native/core/tests/run.sh   (prints "N passed, N failed"; exit status 1 on any failure)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "check.h"
#include "../depthwise_conv.h"
#include "../gemm.h"
#include "../json.h"
#include "../ops.h"
#include "../preprocess.h"
#include "../resize.h"
#include "../spec.h"
#include "../threadpool.h"
#include "../weights.h"

using namespace cclip;
using cclip_test::check;

namespace {

std::mt19937 g_rng(1234);

std::vector<float> randn(size_t n, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g_rng);
  return v;
}

// max |got - want| / max(1, max |want|): relative to the output's scale.
double scaled_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, ref = 1;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(got[i]) != std::isnan(want[i])) return INFINITY;  // std::max would drop a NaN difference
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    ref = std::max(ref, std::fabs(want[i]));
  }
  if (got.size() != want.size()) return INFINITY;
  return diff / ref;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const std::string& what) {
  const double err = scaled_error(got, want);
  char buf[64];
  std::snprintf(buf, sizeof buf, " (error %.3g, limit %.3g)", err, tol);
  check(err <= tol, what + buf);
}

std::string shape_name(std::initializer_list<int> dims) {
  std::string s;
  for (int d : dims) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

void layer_norm_ref(const float* x, int dim, const float* g, const float* b, double eps, double* y) {
  double mean = 0, var = 0;
  for (int i = 0; i < dim; ++i) mean += x[i];
  mean /= dim;
  for (int i = 0; i < dim; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= dim;
  for (int i = 0; i < dim; ++i) y[i] = (x[i] - mean) / std::sqrt(var + eps) * g[i] + b[i];
}

void test_layer_norm(ThreadPool& pool) {
  for (int dim : {1, 7, 8, 48, 513}) {
    for (int64_t rows : {1, 3, 100}) {
      for (float eps : {1e-6f, 1e-5f}) {
        auto x = randn(rows * dim, 3.f), g = randn(dim), b = randn(dim);
        for (size_t i = 0; i < x.size(); ++i) x[i] += 5.f;  // an offset the two-pass statistics must handle
        std::vector<double> want(x.size());
        for (int64_t r = 0; r < rows; ++r) layer_norm_ref(&x[r * dim], dim, g.data(), b.data(), eps, &want[r * dim]);
        std::vector<float> y(x.size());
        layer_norm_rows(x.data(), rows, dim, g.data(), b.data(), eps, y.data(), pool);
        expect_close(y, want, dim == 1 ? 1e-3 : 2e-5, "layer_norm_rows " + shape_name({static_cast<int>(rows), dim}));
        layer_norm_rows(x.data(), rows, dim, g.data(), b.data(), eps, x.data(), pool);  // in place
        expect_close(x, want, dim == 1 ? 1e-3 : 2e-5, "layer_norm_rows in place " + shape_name({static_cast<int>(rows), dim}));
      }
    }
  }
}

// Every ISA variant this CPU runs, against a double-precision reference. Shapes cover widths that are not a multiple
// of any strip (every strip width down to 1), channel counts with 8- and 1-channel leftovers after the 16-blocks,
// images shorter than the kernel, n > 1, and the stage shapes' channel stride.
void test_depthwise(ThreadPool& pool) {
  struct Case { int n, h, w, c; };
  const Case cases[] = {{1, 1, 1, 8},    {1, 3, 5, 16},   {2, 7, 7, 24},   {1, 9, 14, 37},  {1, 8, 8, 64},
                        {1, 16, 16, 128}, {3, 5, 23, 44},  {1, 4, 33, 17},  {2, 11, 31, 40}, {1, 2, 64, 48},
                        {1, 1, 19, 3},   {2, 6, 9, 1},     {1, 16, 16, 1536}};
  const struct { DepthwiseIsa isa; const char* name; } isas[] = {
      {DepthwiseIsa::kPortable, "portable"}, {DepthwiseIsa::kAvx2, "avx2"}, {DepthwiseIsa::kAvx512, "avx512"}};
  for (const Case& k : cases) {
    const float eps = 1e-6f;
    auto x = randn(static_cast<size_t>(k.n) * k.h * k.w * k.c), wt = randn(static_cast<size_t>(k.c) * 49, 0.2f);
    auto bias = randn(k.c), g = randn(k.c), b = randn(k.c);
    std::vector<double> want(x.size());
    std::vector<float> conv(k.c);
    for (int i = 0; i < k.n; ++i)
      for (int oy = 0; oy < k.h; ++oy)
        for (int ox = 0; ox < k.w; ++ox) {
          for (int ch = 0; ch < k.c; ++ch) {
            double s = bias[ch];
            for (int ky = 0; ky < 7; ++ky)
              for (int kx = 0; kx < 7; ++kx) {
                const int iy = oy + ky - 3, ix = ox + kx - 3;
                if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
                s += static_cast<double>(x[((static_cast<size_t>(i) * k.h + iy) * k.w + ix) * k.c + ch]) * wt[ch * 49 + ky * 7 + kx];
              }
            conv[ch] = static_cast<float>(s);
          }
          layer_norm_ref(conv.data(), k.c, g.data(), b.data(), eps, &want[((static_cast<size_t>(i) * k.h + oy) * k.w + ox) * k.c]);
        }
    const std::vector<float> packed = pack_depthwise_weight(wt.data(), k.c);
    const std::string shape = shape_name({k.n, k.h, k.w, k.c});
    std::vector<float> y(x.size());
    depthwise_conv7_layer_norm(x.data(), k.n, k.h, k.w, k.c, packed.data(), bias.data(), g.data(), b.data(), eps, y.data(), pool);
    expect_close(y, want, 5e-5, "depthwise_conv7_layer_norm " + shape);
    for (const auto& v : isas) {
      if (!depthwise_isa_runs_here(v.isa)) continue;
      std::vector<float> yv(x.size(), NAN);  // every output must be written (scaled_error skips NaNs: checked here)
      depthwise_conv7_layer_norm_isa(v.isa, x.data(), k.n, k.h, k.w, k.c, packed.data(), bias.data(), g.data(), b.data(), eps,
                                     yv.data(), pool);
      const std::string what = std::string("depthwise_conv7_layer_norm ") + v.name + " " + shape;
      check(std::all_of(yv.begin(), yv.end(), [](float f) { return std::isfinite(f); }), what + " writes every output");
      expect_close(yv, want, 5e-5, what);
    }
  }
}

void test_patchify(ThreadPool& pool) {
  for (int n : {1, 2}) {
    for (int size : {32, 64}) {
      auto px = randn(static_cast<size_t>(n) * 3 * size * size);
      const int s = size / 4;
      std::vector<float> got(static_cast<size_t>(n) * s * s * 48);
      stem_patchify(px.data(), n, size, got.data(), pool);
      std::vector<double> want(got.size());
      for (int i = 0; i < n; ++i)
        for (int py = 0; py < s; ++py)
          for (int pxi = 0; pxi < s; ++pxi)
            for (int ch = 0; ch < 3; ++ch)
              for (int ky = 0; ky < 4; ++ky)
                for (int kx = 0; kx < 4; ++kx)
                  want[((static_cast<size_t>(i) * s + py) * s + pxi) * 48 + ch * 16 + ky * 4 + kx] =
                      px[((static_cast<size_t>(i) * 3 + ch) * size + py * 4 + ky) * size + pxi * 4 + kx];
      expect_close(got, want, 0, "stem_patchify " + shape_name({n, size}));
    }
  }
  struct Case { int n, h, w, c; };
  for (const Case& k : {Case{1, 2, 2, 8}, Case{2, 4, 6, 13}, Case{1, 8, 8, 64}}) {
    auto x = randn(static_cast<size_t>(k.n) * k.h * k.w * k.c), g = randn(k.c), b = randn(k.c);
    const int oh = k.h / 2, ow = k.w / 2;
    std::vector<float> got(static_cast<size_t>(k.n) * oh * ow * 4 * k.c);
    downsample_patchify_layer_norm(x.data(), k.n, k.h, k.w, k.c, g.data(), b.data(), 1e-6f, got.data(), pool);
    std::vector<double> want(got.size()), normed(k.c);
    for (int i = 0; i < k.n; ++i)
      for (int y = 0; y < k.h; ++y)
        for (int xx = 0; xx < k.w; ++xx) {
          layer_norm_ref(&x[((static_cast<size_t>(i) * k.h + y) * k.w + xx) * k.c], k.c, g.data(), b.data(), 1e-6, normed.data());
          const size_t patch = (static_cast<size_t>(i) * oh + y / 2) * ow + xx / 2;
          for (int ch = 0; ch < k.c; ++ch) want[patch * 4 * k.c + ((y % 2) * 2 + xx % 2) * k.c + ch] = normed[ch];
        }
    expect_close(got, want, 2e-5, "downsample_patchify_layer_norm " + shape_name({k.n, k.h, k.w, k.c}));
  }
}

void test_pooling() {
  for (int hw : {1, 4, 49}) {
    for (int c : {3, 64}) {
      const int n = 2;
      auto x = randn(static_cast<size_t>(n) * hw * c);
      std::vector<float> got(static_cast<size_t>(n) * c);
      global_average_pool(x.data(), n, hw, c, got.data());
      std::vector<double> want(got.size());
      for (int i = 0; i < n; ++i)
        for (int ch = 0; ch < c; ++ch) {
          double s = 0;
          for (int p = 0; p < hw; ++p) s += x[(static_cast<size_t>(i) * hw + p) * c + ch];
          want[i * c + ch] = s / hw;
        }
      expect_close(got, want, 1e-6, "global_average_pool " + shape_name({n, hw, c}));
    }
  }
  auto x = randn(6 * 5);
  const std::vector<float> t = channels_last_to_first(x.data(), 6, 5);
  std::vector<double> want(t.size());
  for (int p = 0; p < 6; ++p)
    for (int ch = 0; ch < 5; ++ch) want[ch * 6 + p] = x[p * 5 + ch];
  expect_close(t, want, 0, "channels_last_to_first 6x5");
}

void test_attention(ThreadPool& pool) {
  struct Case { int n, len, width, heads; float spread; };
  // spread scales the inputs: at 12, scores span hundreds, so most softmax terms underflow (the exp's cutoff).
  for (const Case& k : {Case{1, 1, 8, 1, 1}, Case{2, 5, 16, 2, 1}, Case{1, 17, 64, 4, 1}, Case{2, 77, 32, 2, 1},
                        Case{1, 33, 96, 12, 1}, Case{1, 77, 128, 2, 1}, Case{1, 42, 128, 2, 12}, Case{1, 9, 20, 2, 1},
                        Case{3, 23, 32, 2, 1}}) {
    auto qkv = randn(static_cast<size_t>(k.n) * k.len * 3 * k.width);
    for (float& v : qkv) v *= k.spread;
    std::vector<float> got(static_cast<size_t>(k.n) * k.len * k.width);
    causal_attention(qkv.data(), k.n, k.len, k.width, k.heads, got.data(), pool);
    std::vector<double> want(got.size());
    const int hd = k.width / k.heads;
    for (int s = 0; s < k.n; ++s)
      for (int h = 0; h < k.heads; ++h)
        for (int i = 0; i < k.len; ++i) {
          auto at = [&](int pos, int part, int d) { return static_cast<double>(qkv[(static_cast<size_t>(s) * k.len + pos) * 3 * k.width + part * k.width + h * hd + d]); };
          std::vector<double> score(i + 1);
          double top = -INFINITY, sum = 0;
          for (int j = 0; j <= i; ++j) {
            double dot = 0;
            for (int d = 0; d < hd; ++d) dot += at(i, 0, d) * at(j, 1, d);
            score[j] = dot / std::sqrt(static_cast<double>(hd));
            top = std::max(top, score[j]);
          }
          for (int j = 0; j <= i; ++j) sum += (score[j] = std::exp(score[j] - top));
          for (int d = 0; d < hd; ++d) {
            double o = 0;
            for (int j = 0; j <= i; ++j) o += score[j] / sum * at(j, 2, d);
            want[(static_cast<size_t>(s) * k.len + i) * k.width + h * hd + d] = o;
          }
        }
    expect_close(got, want, 2e-5, "causal_attention " + shape_name({k.n, k.len, k.width, k.heads}));
    // The same rows as sequences of their own lengths (sequence s cut to its first len_s positions, back to back):
    // each row as the full-length run computes it (causal: later positions never count), bit for bit; and the
    // last row of each alone.
    std::vector<int> first_row(k.n + 1, 0);
    // Lengths: the middle sequence full (it sizes the scratch), the first of one row, the others in between.
    for (int s = 0; s < k.n; ++s)
      first_row[s + 1] = first_row[s] + (s == k.n / 2 ? k.len : s == 0 ? 1 : 1 + (7 * s + 3) % k.len);
    std::vector<float> packed_qkv, want_rows, want_last;
    for (int s = 0; s < k.n; ++s) {
      const size_t seq = static_cast<size_t>(s) * k.len;
      const int len_s = first_row[s + 1] - first_row[s];
      packed_qkv.insert(packed_qkv.end(), qkv.begin() + seq * 3 * k.width, qkv.begin() + (seq + len_s) * 3 * k.width);
      want_rows.insert(want_rows.end(), got.begin() + seq * k.width, got.begin() + (seq + len_s) * k.width);
      want_last.insert(want_last.end(), got.begin() + (seq + len_s - 1) * k.width, got.begin() + (seq + len_s) * k.width);
    }
    std::vector<float> packed(want_rows.size()), last(want_last.size());
    causal_attention_packed(packed_qkv.data(), k.n, first_row.data(), k.width, k.heads, packed.data(), pool);
    causal_attention_last(packed_qkv.data(), k.n, first_row.data(), k.width, k.heads, last.data(), pool);
    const std::string name = shape_name({k.n, k.len, k.width, k.heads});
    expect_close(packed, std::vector<double>(want_rows.begin(), want_rows.end()), 0, "causal_attention_packed " + name);
    expect_close(last, std::vector<double>(want_last.begin(), want_last.end()), 0, "causal_attention_last " + name);
  }
  bool refused = false;
  try {
    const std::vector<float> qkv(3 * 8, 0.f);
    std::vector<float> out(8);
    const int first_row[3] = {0, 1, 1};  // the second sequence is empty
    causal_attention_packed(qkv.data(), 2, first_row, 8, 1, out.data(), pool);
  } catch (const std::invalid_argument&) {
    refused = true;
  }
  check(refused, "causal attention refuses an empty sequence");
}

double gelu_ref(double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }

void test_linear(ThreadPool& pool) {
  struct Case { int m, k, n; };
  for (const Case& c : {Case{1, 3, 5}, Case{7, 48, 64}, Case{50, 128, 96}}) {
    for (Precision precision : {Precision::F32, Precision::BF16}) {
      for (int variant = 0; variant < 4; ++variant) {  // plain, GELU, layer scale + residual, all three
        const bool gelu = variant & 1, scaled = variant & 2;
        auto x = randn(static_cast<size_t>(c.m) * c.k), w = randn(static_cast<size_t>(c.n) * c.k, 0.3f), bias = randn(c.n);
        auto scale = randn(c.n), residual = randn(static_cast<size_t>(c.m) * c.n);
        LinearLayer layer;
        layer.weight = pack_weight(w.data(), c.n, c.k, precision);
        layer.bias = bias;
        std::vector<double> want(static_cast<size_t>(c.m) * c.n);
        for (int i = 0; i < c.m; ++i)
          for (int j = 0; j < c.n; ++j) {
            double acc = bias[j];
            for (int t = 0; t < c.k; ++t) {
              const float wv = precision == Precision::BF16 ? bf16_to_float(float_to_bf16(w[j * c.k + t])) : w[j * c.k + t];
              const float xv = precision == Precision::BF16 ? bf16_to_float(float_to_bf16(x[i * c.k + t])) : x[i * c.k + t];
              acc += static_cast<double>(xv) * wv;
            }
            if (gelu) acc = gelu_ref(acc);
            if (scaled) acc = residual[i * c.n + j] + scale[j] * acc;
            want[i * c.n + j] = acc;
          }
        Epilogue epilogue;
        epilogue.gelu = gelu;
        if (scaled) epilogue.scale = scale.data(), epilogue.residual = residual.data();
        std::vector<float> y(want.size());
        apply_linear(layer, x.data(), c.m, y.data(), epilogue, pool);
        // bf16: activations may or may not be rounded to bf16 by the kernel; the bound covers both.
        const double tol = precision == Precision::BF16 ? 2e-2 : 2e-5;
        expect_close(y, want, tol, std::string("apply_linear ") + (precision == Precision::BF16 ? "bf16 " : "fp32 ") +
                                       (gelu ? "gelu " : "") + (scaled ? "scale+residual " : "") + shape_name({c.m, c.k, c.n}));
      }
    }
  }
}

// Pillow's resampling (libImaging/Resample.c) in double: antialiased separable filter, each pass rounded to 8 bits.
double filter_weight(ResampleFilter f, double x) {
  x = std::fabs(x);
  if (f == ResampleFilter::kBilinear) return x < 1 ? 1 - x : 0;
  const double a = -0.5;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

std::vector<double> resample_pass(const std::vector<double>& in, int in_len, int out_len, int lines, int channels, bool horizontal,
                                  int other_len, ResampleFilter f) {
  const double scale = static_cast<double>(in_len) / out_len, fscale = std::max(scale, 1.0);
  const double support = (f == ResampleFilter::kBilinear ? 1.0 : 2.0) * fscale;
  std::vector<double> out(static_cast<size_t>(out_len) * other_len * channels);
  (void)lines;
  for (int o = 0; o < out_len; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0), hi = std::min(static_cast<int>(center + support + 0.5), in_len);
    std::vector<double> w(hi - lo);
    double total = 0;
    for (int i = lo; i < hi; ++i) total += (w[i - lo] = filter_weight(f, (i - center + 0.5) / fscale));
    for (int t = 0; t < other_len; ++t)
      for (int ch = 0; ch < channels; ++ch) {
        double s = 0;
        for (int i = lo; i < hi; ++i) {
          const size_t idx = horizontal ? (static_cast<size_t>(t) * in_len + i) * channels + ch : (static_cast<size_t>(i) * other_len + t) * channels + ch;
          s += in[idx] * w[i - lo] / total;
        }
        const size_t dst = horizontal ? (static_cast<size_t>(t) * out_len + o) * channels + ch : (static_cast<size_t>(o) * other_len + t) * channels + ch;
        out[dst] = std::min(255.0, std::max(0.0, std::round(s)));
      }
  }
  return out;
}

void test_resize(ThreadPool& pool) {
  struct Case { int w, h, ow, oh, channels; ResampleFilter f; };
  std::uniform_int_distribution<int> byte(0, 255);
  for (const Case& k : {Case{17, 11, 5, 4, 3, ResampleFilter::kBicubic}, Case{40, 30, 64, 48, 1, ResampleFilter::kBicubic},
                        Case{33, 33, 7, 7, 4, ResampleFilter::kBilinear}, Case{9, 20, 9, 6, 3, ResampleFilter::kBicubic},
                        Case{300, 200, 224, 149, 3, ResampleFilter::kBicubic}}) {
    std::vector<uint8_t> src(static_cast<size_t>(k.w) * k.h * k.channels);
    for (auto& v : src) v = static_cast<uint8_t>(byte(g_rng));
    std::vector<double> image(src.begin(), src.end());
    if (k.ow != k.w) image = resample_pass(image, k.w, k.ow, k.h, k.channels, true, k.h, k.f);
    if (k.oh != k.h) image = resample_pass(image, k.h, k.oh, k.ow, k.channels, false, k.ow, k.f);
    std::vector<uint8_t> got(static_cast<size_t>(k.ow) * k.oh * k.channels);
    resize_u8(PixelView{src.data(), k.w, k.h, k.channels, static_cast<int64_t>(k.w) * k.channels}, k.ow, k.oh, k.f, Window{0, 0, k.ow, k.oh},
              got.data(), &pool);
    int worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(static_cast<int>(got[i]) - static_cast<int>(image[i])));
    check(worst <= 1, "resize_u8 " + shape_name({k.w, k.h, k.ow, k.oh, k.channels}) + " within 1 level of the double reference (worst " +
                          std::to_string(worst) + ")");
    // A window equals the same region of the whole result.
    const Window win{k.ow / 3, k.oh / 4, k.ow - k.ow / 3, k.oh / 2 + 1};
    std::vector<uint8_t> part(static_cast<size_t>(win.width) * win.height * k.channels);
    resize_u8(PixelView{src.data(), k.w, k.h, k.channels, static_cast<int64_t>(k.w) * k.channels}, k.ow, k.oh, k.f, win, part.data(), nullptr);
    bool same = true;
    for (int y = 0; y < win.height; ++y)
      same = same && std::memcmp(&part[static_cast<size_t>(y) * win.width * k.channels],
                                 &got[(static_cast<size_t>(y + win.y) * k.ow + win.x) * k.channels], static_cast<size_t>(win.width) * k.channels) == 0;
    check(same, "resize_u8 window " + shape_name({win.x, win.y, win.width, win.height}) + " equals the crop of the full resize");
  }
}

void test_preprocess(ThreadPool& pool) {
  std::uniform_int_distribution<int> byte(0, 255);
  PreprocessSpec spec;
  spec.size = 32;
  spec.mean[0] = 0.48f, spec.mean[1] = 0.45f, spec.mean[2] = 0.40f;
  spec.std[0] = 0.26f, spec.std[1] = 0.27f, spec.std[2] = 0.28f;
  // Same size: no resampling, only ToTensor + Normalize into [3, S, S].
  for (PixelMode mode : {PixelMode::kRGB, PixelMode::kL}) {
    const int channels = mode == PixelMode::kL ? 1 : 3;
    std::vector<uint8_t> px(32 * 32 * channels);
    for (auto& v : px) v = static_cast<uint8_t>(byte(g_rng));
    ImageU8 image{PixelView{px.data(), 32, 32, channels, 32 * channels}, mode};
    std::vector<float> got(3 * 32 * 32);
    preprocess_image(image, spec, got.data(), &pool);
    std::vector<double> want(got.size());
    for (int ch = 0; ch < 3; ++ch)
      for (int i = 0; i < 32 * 32; ++i) want[ch * 1024 + i] = (px[i * channels + (channels == 1 ? 0 : ch)] / 255.0 - spec.mean[ch]) / spec.std[ch];
    expect_close(got, want, 1e-6, std::string("preprocess ") + (channels == 1 ? "L" : "RGB") + " 32x32 -> 32: normalize + CHW");
  }
  // Shortest side to S, then the centre crop: the resize of the whole image at the plan's offsets.
  for (const auto& [w, h] : {std::pair<int, int>{64, 40}, {41, 90}}) {
    std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
    for (auto& v : px) v = static_cast<uint8_t>(byte(g_rng));
    const PreprocessPlan plan = plan_preprocess(w, h, spec);
    const int short_side = std::min(w, h);
    const int rw = w == short_side ? 32 : static_cast<int>(static_cast<int64_t>(w) * 32 / h);
    const int rh = h == short_side ? 32 : static_cast<int>(static_cast<int64_t>(h) * 32 / w);
    check(plan.resized_width == rw && plan.resized_height == rh,
          "plan_preprocess " + shape_name({w, h}) + " -> resized " + shape_name({plan.resized_width, plan.resized_height}));
    check(plan.offset_x == (plan.resized_width - 32 + 1) / 2 || plan.offset_x == (plan.resized_width - 32) / 2, "plan_preprocess centre crop x");
    std::vector<uint8_t> full(static_cast<size_t>(plan.resized_width) * plan.resized_height * 3);
    resize_u8(PixelView{px.data(), w, h, 3, static_cast<int64_t>(w) * 3}, plan.resized_width, plan.resized_height, ResampleFilter::kBicubic,
              Window{0, 0, plan.resized_width, plan.resized_height}, full.data(), nullptr);
    std::vector<float> got(3 * 32 * 32);
    preprocess_image(ImageU8{PixelView{px.data(), w, h, 3, static_cast<int64_t>(w) * 3}, PixelMode::kRGB}, spec, got.data(), &pool);
    std::vector<double> want(got.size());
    for (int ch = 0; ch < 3; ++ch)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
          want[(ch * 32 + y) * 32 + x] =
              (full[((static_cast<size_t>(y + plan.offset_y)) * plan.resized_width + x + plan.offset_x) * 3 + ch] / 255.0 - spec.mean[ch]) / spec.std[ch];
    expect_close(got, want, 1e-6, "preprocess RGB " + shape_name({w, h}) + " -> 32: resize shortest, centre crop, normalize");
  }
}

// Writes `bytes` to a temp file; returns its path.
std::string temp_file(const std::vector<unsigned char>& bytes) {
  char path[] = "/tmp/cclip-ops-test-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  if (write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) throw std::runtime_error("write failed");
  close(fd);
  return path;
}

template <typename T>
void append(std::vector<unsigned char>& out, T v) {
  const auto* p = reinterpret_cast<const unsigned char*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

std::string error_code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  } catch (const std::exception& e) {
    return std::string("untyped: ") + e.what();
  }
  return "none";
}

void test_weight_reader() {
  // One 2x3 tensor in each dtype; the F32 one also transposed (strides [1, 2]) as torch.save of a .t() stores it.
  const float values[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -7.5f, 65504.f};
  std::vector<unsigned char> bytes;
  std::vector<TensorSource> sources;
  auto add = [&](const std::string& name, SourceDType dtype, Shape strides, const std::vector<unsigned char>& data) {
    sources.push_back(TensorSource{name, dtype, {2, 3}, strides, "", bytes.size(), data.size()});
    bytes.insert(bytes.end(), data.begin(), data.end());
  };
  std::vector<unsigned char> f32, f64, bf16, f16, transposed;
  for (float v : values) append(f32, v), append(f64, static_cast<double>(v)), append(bf16, float_to_bf16(v));
  for (uint16_t h : {0x3800, 0xbd00, 0x4200, 0x1419, 0xc780, 0x7bff}) append(f16, static_cast<uint16_t>(h));  // the values in fp16
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 2; ++i) append(transposed, values[i * 3 + j]);
  add("f32", SourceDType::F32, {3, 1}, f32);
  add("f64", SourceDType::F64, {3, 1}, f64);
  add("bf16", SourceDType::BF16, {3, 1}, bf16);
  add("f16", SourceDType::F16, {3, 1}, f16);
  add("strided", SourceDType::F32, {1, 2}, transposed);
  std::vector<float> poisoned = {1, 2, NAN, 4, 5, 6};
  std::vector<unsigned char> nan_bytes;
  for (float v : poisoned) append(nan_bytes, v);
  add("nan", SourceDType::F32, {3, 1}, nan_bytes);
  std::vector<unsigned char> huge_bytes;
  for (double v : {1.0, 2.0, 1e300, 4.0, 5.0, 6.0}) append(huge_bytes, v);
  add("huge_f64", SourceDType::F64, {3, 1}, huge_bytes);
  const std::string file = temp_file(bytes);
  for (auto& s : sources) s.file = file;

  std::vector<std::pair<std::string, Shape>> expected;
  for (const auto& s : sources) expected.emplace_back(s.name, s.shape);
  WeightLoader loader(sources, expected, nullptr);
  for (const char* name : {"f32", "f64", "bf16", "f16", "strided"}) {
    const std::vector<float> got = loader.read(name);
    bool ok = got.size() == 6;
    for (int i = 0; ok && i < 6; ++i) {
      const float want = std::string(name) == "bf16" ? bf16_to_float(float_to_bf16(values[i])) : values[i];
      ok = std::fabs(got[i] - want) <= std::fabs(want) * (std::string(name) == "f16" ? 1e-3f : 0.f);
    }
    check(ok, std::string("WeightLoader reads ") + name + " as fp32 in row-major order");
  }
  check(error_code_of([&] { loader.read("nan"); }) == "E_CHECKPOINT_CORRUPT", "WeightLoader refuses NaN weights (E_CHECKPOINT_CORRUPT)");
  check(error_code_of([&] { loader.read("huge_f64"); }) == "E_CHECKPOINT_CORRUPT", "WeightLoader refuses F64 weights beyond float range");
  auto missing = expected;
  missing.emplace_back("absent", Shape{1});
  check(error_code_of([&] { WeightLoader l(sources, missing, nullptr); }) == "E_TENSOR_MISSING", "a missing tensor is E_TENSOR_MISSING");
  auto wrong = expected;
  wrong[0].second = {3, 2};
  check(error_code_of([&] { WeightLoader l(sources, wrong, nullptr); }) == "E_TENSOR_SHAPE", "a wrong shape is E_TENSOR_SHAPE");
  auto past = sources;
  past[0].offset = bytes.size() - 4;
  check(error_code_of([&] { WeightLoader l(past, expected, nullptr); }) == "E_CHECKPOINT_CORRUPT", "bytes past the file's end are E_CHECKPOINT_CORRUPT");
  unlink(file.c_str());
}

const char* kArchitecture =
    R"({"embedDim":16,"vision":{"timmModelName":"convnext_xxlarge","depths":[1,1,1,1],"dims":[8,8,8,8],"normEps":1e-5,"imageSize":32,)"
    R"("proj":"linear","projBias":false},"text":{"width":8,"heads":2,"layers":1,"contextLength":5,"vocabSize":10,"normEps":0.001}})";

std::string request_with(const std::string& architecture, const std::string& options = R"({"precision":"bf16","threads":3})",
                         const std::string& extra = "") {
  return std::string(R"({"architecture":)") + architecture +
         R"(,"tensors":[{"name":"a","dtype":"BF16","shape":[2,3],"strides":[3,1],"file":"/x/\u00e9.safetensors","offset":8,"byteLength":12}],)" +
         R"("options":)" + options + extra + "}";
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  if (at == std::string::npos) throw std::runtime_error("test bug: no " + from);
  return s.replace(at, from.size(), to);
}

void test_load_request() {
  const LoadRequest r = parse_load_request(request_with(kArchitecture));
  check(r.config.embed_dim == 16 && r.config.vision.depths[3] == 1 && r.config.vision.norm_eps == 1e-5f && r.config.vision.image_size == 32 &&
            !r.config.vision.proj_mlp && r.config.text.width == 8 && r.config.text.heads == 2 && r.config.text.context_length == 5 &&
            r.config.text.vocab_size == 10 && r.config.text.norm_eps == 0.001f,
        "load request: architecture fields");
  check(r.tensors.size() == 1 && r.tensors[0].dtype == SourceDType::BF16 && r.tensors[0].shape == Shape{2, 3} && r.tensors[0].offset == 8 &&
            r.tensors[0].byte_length == 12 && r.tensors[0].file == "/x/\xc3\xa9.safetensors",
        "load request: tensor entry (with a \\u escape in its file name)");
  check(r.options.precision == Precision::BF16 && r.options.threads == 3 && !r.options.cuda && r.options.graphs, "load request: options");
  const LoadRequest t = parse_load_request(request_with(kArchitecture, R"({"precision":"fp32","device":"cuda","graphs":false,"deviceIndex":1})",
                                                        R"(,"sources":[{"file":"b","size":5},{"file":"a","size":7}])"));
  check(t.options.cuda && !t.options.graphs && t.options.device_index == 1 && t.sources.size() == 2 && t.sources[0].first == "b" &&
            t.sources[1].second == 7,
        "load request: torch options and wasm sources (in request order)");

  struct Bad { std::string label, text, code; };
  const std::vector<Bad> bad = {
      {"a field one side added and the other lacks", request_with(replace(kArchitecture, R"("embedDim":16)", R"("embedDim":16,"newField":1)")), "E_INVALID_ARGUMENT"},
      {"a missing field", request_with(replace(kArchitecture, R"("vocabSize":10,)", "")), "E_INVALID_ARGUMENT"},
      {"a fractional integer", request_with(replace(kArchitecture, R"("width":8)", R"("width":8.5)")), "E_INVALID_ARGUMENT"},
      {"a string for a number", request_with(replace(kArchitecture, R"("heads":2)", R"("heads":"2")")), "E_INVALID_ARGUMENT"},
      {"three depths", request_with(replace(kArchitecture, "[1,1,1,1]", "[1,1,1]")), "E_INVALID_ARGUMENT"},
      {"width not a multiple of heads", request_with(replace(kArchitecture, R"("heads":2)", R"("heads":3)")), "E_CONFIG"},
      {"an image size not a multiple of 32", request_with(replace(kArchitecture, R"("imageSize":32)", R"("imageSize":48)")), "E_CONFIG"},
      {"text normEps 0", request_with(replace(kArchitecture, R"("normEps":0.001)", R"("normEps":0)")), "E_CONFIG"},
      {"an unknown dtype", replace(request_with(kArchitecture), R"("BF16")", R"("I8")"), "E_TENSOR_SHAPE"},
      {"an unknown precision", request_with(kArchitecture, R"({"precision":"fp8"})"), "E_INVALID_ARGUMENT"},
      {"threads out of range", request_with(kArchitecture, R"({"precision":"fp32","threads":5000})"), "E_INVALID_ARGUMENT"},
      {"truncated JSON", request_with(kArchitecture).substr(0, 60), "E_INVALID_ARGUMENT"},
      {"a duplicate key", replace(request_with(kArchitecture), R"("embedDim":16)", R"("embedDim":16,"embedDim":16)"), "E_INVALID_ARGUMENT"},
      {"trailing text", request_with(kArchitecture) + "x", "E_INVALID_ARGUMENT"},
      {"nesting too deep", std::string(100, '[') + std::string(100, ']'), "E_INVALID_ARGUMENT"},
      {"an offset beyond 2^53", replace(request_with(kArchitecture), R"("offset":8)", R"("offset":1e300)"), "E_INVALID_ARGUMENT"},
      {"a repeated source", request_with(kArchitecture, R"({"precision":"fp32"})", R"(,"sources":[{"file":"a","size":1},{"file":"a","size":1}])"), "E_INVALID_ARGUMENT"},
  };
  for (const Bad& b : bad) {
    const std::string code = error_code_of([&] { parse_load_request(b.text); });
    check(code == b.code, "load request refuses " + b.label + ": " + b.code + " (got " + code + ")");
  }
  const json::Value v = json::parse(R"({"s":"a\"b\\c\n\ud83d\ude00","n":-1.5e3,"t":true,"z":null,"a":[]})");
  check(v.find("s")->as_string() == "a\"b\\c\n\xf0\x9f\x98\x80" && v.find("n")->as_number() == -1500 && v.find("t")->as_bool() &&
            v.find("z")->is_null() && v.find("a")->is_array(),
        "json: escapes, surrogate pairs, numbers, literals");
}

}  // namespace

int main() {
  ThreadPool pool(2);
  test_layer_norm(pool);
  test_depthwise(pool);
  test_patchify(pool);
  test_pooling();
  test_attention(pool);
  test_linear(pool);
  test_resize(pool);
  test_preprocess(pool);
  test_weight_reader();
  test_load_request();
  return cclip_test::summary();
}
