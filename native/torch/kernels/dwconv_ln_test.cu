// GPU check of dwconv_ln.cu against a float64 CPU reference (no libtorch): fp32 and bf16 activations, the
// XXLarge stage shapes and odd ones (w not a multiple of the strip, images smaller than the kernel, odd C).
// Exit status 0 when every case is within tolerance. Also times the XXLarge shapes at batch 64.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "dwconv_ln.h"

using cclip::kernels::ActType;

#define CHECK(x)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (x);                                                                 \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                       \
    }                                                                                     \
  } while (0)

static float bf16_round(float v) { return __bfloat162float(__float2bfloat16(v)); }

// The reference, from PyTorch-layout weights [C, 1, 7, 7] (so the tap-major transpose is tested too).
static void reference(const std::vector<float>& x, const std::vector<float>& w_pt, const std::vector<float>& cb, const std::vector<float>& lw,
                      const std::vector<float>& lb, std::vector<double>& y, int n, int h, int w, int c, double eps) {
  std::vector<double> conv(c);
  for (int b = 0; b < n; b++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w; j++) {
        for (int ch = 0; ch < c; ch++) {
          double s = cb[ch];
          for (int dy = 0; dy < 7; dy++)
            for (int dx = 0; dx < 7; dx++) {
              const int ii = i + dy - 3, jj = j + dx - 3;
              if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
              s += double(x[((size_t(b) * h + ii) * w + jj) * c + ch]) * w_pt[size_t(ch) * 49 + dy * 7 + dx];
            }
          conv[ch] = s;
        }
        double mean = 0, var = 0;
        for (int ch = 0; ch < c; ch++) mean += conv[ch];
        mean /= c;
        for (int ch = 0; ch < c; ch++) var += (conv[ch] - mean) * (conv[ch] - mean);
        var /= c;
        const double rstd = 1.0 / std::sqrt(var + eps);
        for (int ch = 0; ch < c; ch++) y[((size_t(b) * h + i) * w + j) * c + ch] = (conv[ch] - mean) * rstd * lw[ch] + lb[ch];
      }
}

template <typename T>
static T* upload(const std::vector<T>& v) {
  T* d = nullptr;
  CHECK(cudaMalloc(&d, v.size() * sizeof(T)));
  CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

struct Case {
  int n, h, w, c;
};

static bool run_case(const Case& k, ActType type, std::mt19937& rng) {
  const size_t count = size_t(k.n) * k.h * k.w * k.c;
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(count), w_pt(size_t(k.c) * 49), w_tap(size_t(k.c) * 49), cb(k.c), lw(k.c), lb(k.c);
  for (auto& v : x) v = type == ActType::kBF16 ? bf16_round(u(rng)) : u(rng);
  for (auto& v : w_pt) v = g(rng) / 7.0f;
  for (int ch = 0; ch < k.c; ch++)
    for (int t = 0; t < 49; t++) w_tap[size_t(t) * k.c + ch] = w_pt[size_t(ch) * 49 + t];
  for (int ch = 0; ch < k.c; ch++) {
    cb[ch] = 0.1f * g(rng);
    lw[ch] = 1.0f + 0.2f * g(rng);
    lb[ch] = 0.1f * g(rng);
  }
  const double eps = 1e-5;
  std::vector<double> ref(count);
  reference(x, w_pt, cb, lw, lb, ref, k.n, k.h, k.w, k.c, eps);

  float *dw = upload(w_tap), *dcb = upload(cb), *dlw = upload(lw), *dlb = upload(lb);
  std::vector<float> got(count);
  void *dx = nullptr, *dy = nullptr;
  if (type == ActType::kF32) {
    dx = upload(x);
    CHECK(cudaMalloc(&dy, count * sizeof(float)));
  } else {
    std::vector<__nv_bfloat16> xb(count);
    for (size_t i = 0; i < count; i++) xb[i] = __float2bfloat16(x[i]);
    dx = upload(xb);
    CHECK(cudaMalloc(&dy, count * sizeof(__nv_bfloat16)));
  }
  CHECK(cudaMemset(dy, 0xff, count * (type == ActType::kF32 ? 4 : 2)));  // NaN: unwritten outputs show
  const int err = cclip::kernels::dwconv7_layernorm(type, dx, dw, dcb, dlw, dlb, dy, k.n, k.h, k.w, k.c, float(eps), nullptr);
  if (err) {
    std::printf("FAIL launch %s\n", cudaGetErrorString(cudaError_t(err)));
    return false;
  }
  CHECK(cudaDeviceSynchronize());
  if (type == ActType::kF32) {
    CHECK(cudaMemcpy(got.data(), dy, count * sizeof(float), cudaMemcpyDeviceToHost));
  } else {
    std::vector<__nv_bfloat16> yb(count);
    CHECK(cudaMemcpy(yb.data(), dy, count * sizeof(__nv_bfloat16), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < count; i++) got[i] = __bfloat162float(yb[i]);
  }
  // fp32: float accumulation vs double; bf16: plus the output's rounding (8 significant bits).
  const double rel = type == ActType::kF32 ? 2e-5 : 8e-3, abs_tol = type == ActType::kF32 ? 2e-5 : 2e-3;
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < count; i++) {
    const double d = std::fabs(double(got[i]) - ref[i]);
    if (!(d <= abs_tol + rel * std::fabs(ref[i]))) bad++;
    if (!(d <= worst)) worst = d;  // NaN propagates
  }
  std::printf("%s n=%d h=%d w=%d c=%d: max |diff| %.3e, %zu outside tolerance -> %s\n", type == ActType::kF32 ? "fp32" : "bf16", k.n, k.h, k.w,
              k.c, worst, bad, bad == 0 ? "ok" : "FAIL");
  cudaFree(dx), cudaFree(dy), cudaFree(dw), cudaFree(dcb), cudaFree(dlw), cudaFree(dlb);
  return bad == 0;
}

static void time_case(const Case& k) {
  const size_t count = size_t(k.n) * k.h * k.w * k.c;
  void *dx, *dy;
  float* p;
  CHECK(cudaMalloc(&dx, count * 2));
  CHECK(cudaMalloc(&dy, count * 2));
  CHECK(cudaMalloc(&p, size_t(k.c) * 52 * sizeof(float)));
  CHECK(cudaMemset(dx, 0, count * 2));
  CHECK(cudaMemset(p, 0, size_t(k.c) * 52 * sizeof(float)));
  cudaEvent_t a, b;
  cudaEventCreate(&a), cudaEventCreate(&b);
  for (int i = 0; i < 3; i++) cclip::kernels::dwconv7_layernorm(ActType::kBF16, dx, p, p + 49 * k.c, p + 50 * k.c, p + 51 * k.c, dy, k.n, k.h, k.w, k.c, 1e-5f, nullptr);
  const int iters = 20;
  cudaEventRecord(a);
  for (int i = 0; i < iters; i++) cclip::kernels::dwconv7_layernorm(ActType::kBF16, dx, p, p + 49 * k.c, p + 50 * k.c, p + 51 * k.c, dy, k.n, k.h, k.w, k.c, 1e-5f, nullptr);
  cudaEventRecord(b);
  CHECK(cudaEventSynchronize(b));
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  ms /= iters;
  std::printf("time bf16 n=%d h=%d w=%d c=%d: %.3f ms (%.0f GB/s of activations in+out)\n", k.n, k.h, k.w, k.c, ms, 2.0 * count * 2 / (ms * 1e6));
  cudaFree(dx), cudaFree(dy), cudaFree(p);
}

int main() {
  std::mt19937 rng(1234);
  const Case cases[] = {{2, 64, 64, 384}, {2, 32, 32, 768}, {1, 16, 16, 1536}, {1, 8, 8, 3072}, {3, 7, 13, 40}, {1, 3, 2, 8}, {2, 5, 9, 33}, {1, 4, 4, 12288}};
  bool ok = true;
  for (const Case& k : cases) {
    ok &= run_case(k, ActType::kF32, rng);
    ok &= run_case(k, ActType::kBF16, rng);
  }
  // Out-of-range sizes are refused, not launched.
  const bool refused = cclip::kernels::dwconv7_layernorm(ActType::kF32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 1, 1, 1, 1e-5f, nullptr) != 0;
  std::printf("null pointers refused: %s\n", refused ? "ok" : "FAIL");
  ok &= refused;
  for (const Case& k : {Case{64, 64, 64, 384}, Case{64, 32, 32, 768}, Case{64, 16, 16, 1536}, Case{64, 8, 8, 3072}}) time_case(k);
  std::printf(ok ? "dwconv_ln: all cases ok\n" : "dwconv_ln: FAILURES\n");
  return ok ? 0 : 1;
}
