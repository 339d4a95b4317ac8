// GEMM microbenchmark: cclip::linear (fused epilogue) on the ConvNeXt-XXLarge / text-tower shapes, fp32 and
// bf16, 1 and 2 threads; with -DWITH_OPENBLAS also cblas_sgemm + a separate bias/GELU/scale/residual pass
// ("OBLAS", what the ratios compare against) and cblas_sgemm alone ("OBsgemm", no epilogue at all).
// Run: bench/gemm/run.sh bench [--quick] [--threads 1,2] [--filter SUBSTR] [--cpu-time] [--cold]
// --cold rotates through enough copies of each weight (> 96 MB) that every call streams it from memory, as in a
// real forward pass (each layer's weights are used once), and adds the weight read rate in GB/s.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../../native/core/gemm.h"
#include "../../native/core/gemm_internal.h"
#include "../../native/core/threadpool.h"

#ifdef WITH_OPENBLAS
#include <cblas.h>
#endif

using namespace cclip;

namespace {

struct Shape {
  const char* name;
  int m, n, k;
  int per_image;  // occurrences in one 256 px image forward pass (0: not part of it)
  int epi;        // 0: bias, 1: bias + GELU, 2: bias + scale + residual (aliasing y)
};

// ConvNeXt-XXLarge at 256 px, batch 1 (dims 384/768/1536/3072, depths 3/4/30/3), the stem/downsample convs as
// GEMMs over 4x4 / 2x2 patches, and the text tower (width 1024, 77 tokens).
const Shape kShapes[] = {
    {"stem 4x4 conv", 4096, 384, 48, 1, 0},
    {"s0 fc1", 4096, 1536, 384, 3, 1},
    {"s0 fc2", 4096, 384, 1536, 3, 2},
    {"down1 2x2", 1024, 768, 1536, 1, 0},
    {"s1 fc1", 1024, 3072, 768, 4, 1},
    {"s1 fc2", 1024, 768, 3072, 4, 2},
    {"down2 2x2", 256, 1536, 3072, 1, 0},
    {"s2 fc1", 256, 6144, 1536, 30, 1},
    {"s2 fc2", 256, 1536, 6144, 30, 2},
    {"down3 2x2", 64, 3072, 6144, 1, 0},
    {"s3 fc1", 64, 12288, 3072, 3, 1},
    {"s3 fc2", 64, 3072, 12288, 3, 2},
    {"head proj M=1", 1, 1024, 3072, 1, 0},
    {"text qkv", 77, 3072, 1024, 0, 0},
    {"text out", 77, 1024, 1024, 0, 2},
    {"text fc1", 77, 4096, 1024, 0, 1},
    {"text fc2", 77, 1024, 4096, 0, 2},
    {"text fc1 M=12", 12, 4096, 1024, 0, 1},
    {"text qkv M=7", 7, 3072, 1024, 0, 0},
    {"text fc1 M=7", 7, 4096, 1024, 0, 1},
    {"text fc2 M=7", 7, 1024, 4096, 0, 2},
    {"s2 fc1 batch8", 2048, 6144, 1536, 0, 1},
    // The row chunks the model runs stages 0 and 1 in (convnext.cc, mlp_chunk_rows: hidden activations of ~4 MB).
    {"s0 fc1 chunk", 624, 1536, 384, 0, 1},
    {"s0 fc2 chunk", 624, 384, 1536, 0, 2},
    {"s1 fc1 chunk", 512, 3072, 768, 0, 1},
    {"s1 fc2 chunk", 512, 768, 3072, 0, 2},
};

bool g_cold = false;      // --cold: weights streamed from memory (see the header)
bool g_cpu_time = false;  // --cpu-time: thread CPU time instead of wall time (1 thread; robust on a busy machine)

double now_s() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best seconds per call over `reps` rounds of at least min_s each.
template <class F>
double time_best(F&& f, double min_s, int reps) {
  f();  // warm up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    int iters = 0;
    const double t0 = now_s();
    double t;
    do {
      f();
      ++iters;
      t = now_s() - t0;
    } while (t < min_s);
    best = std::min(best, t / iters);
  }
  return best;
}

struct Data {
  std::vector<float> x, w, bias, scale, y;
};

Data make_data(const Shape& s) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  Data d;
  d.x.resize(static_cast<size_t>(s.m) * s.k);
  d.w.resize(static_cast<size_t>(s.n) * s.k);
  d.bias.resize(s.n);
  d.scale.resize(s.n);
  d.y.resize(static_cast<size_t>(s.m) * s.n);
  for (auto& v : d.x) v = nd(rng);
  for (auto& v : d.w) v = nd(rng) * 0.05f;
  for (auto& v : d.bias) v = nd(rng);
  for (auto& v : d.scale) v = nd(rng) * 1e-3f;  // keeps the residual stream bounded over repeated calls
  for (auto& v : d.y) v = nd(rng);
  return d;
}

#ifdef WITH_OPENBLAS
void openblas_linear(const Shape& s, Data& d, std::vector<float>& tmp) {
  float* out = s.epi == 2 ? tmp.data() : d.y.data();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.m, s.n, s.k, 1.0f, d.x.data(), s.k, d.w.data(), s.k, 0.0f, out,
              s.n);
  for (int i = 0; i < s.m; ++i) {
    float* o = out + static_cast<size_t>(i) * s.n;
    float* y = d.y.data() + static_cast<size_t>(i) * s.n;
    if (s.epi == 0) {
      for (int j = 0; j < s.n; ++j) o[j] += d.bias[j];
    } else if (s.epi == 1) {
      for (int j = 0; j < s.n; ++j) {
        const float v = o[j] + d.bias[j];
        o[j] = 0.5f * v * (1.0f + std::erf(v * 0.70710678f));
      }
    } else {
      for (int j = 0; j < s.n; ++j) y[j] += d.scale[j] * (o[j] + d.bias[j]);
    }
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::vector<int> thread_counts = {1, 2};
  std::string filter;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      thread_counts.clear();
      for (const char* p = argv[++i]; *p;) {
        thread_counts.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p) ++p;
      }
    } else if (!std::strcmp(argv[i], "--cpu-time")) {
      g_cpu_time = true;
      thread_counts = {1};
    } else if (!std::strcmp(argv[i], "--cold")) {
      g_cold = true;
    } else if (!std::strcmp(argv[i], "--filter") && i + 1 < argc) {
      filter = argv[++i];
    }
  }
  const double min_s = quick ? 0.02 : 0.08;
  const int reps = quick ? 2 : 4;
  std::printf("kernels: %s; %s\n", gemm_detail::best_kernels()->name,
#ifdef WITH_OPENBLAS
              "peer: OpenBLAS cblas_sgemm + separate epilogue pass"
#else
              "no OpenBLAS peer (build with -DWITH_OPENBLAS)"
#endif
  );
  std::printf("%-16s %5s %6s %6s %4s | %8s %8s", "shape", "M", "N", "K", "thr", "f32 GF/s", "bf16GF/s");
  if (g_cold) std::printf(" %8s %8s", "f32 GB/s", "bf16GB/s");
#ifdef WITH_OPENBLAS
  std::printf(" %8s %7s %7s %8s", "OBLAS", "f32/OB", "bf16/OB", "OBsgemm");
#endif
  std::printf("\n");
  std::vector<double> image_s(thread_counts.size() * 3, 0.0);  // per thread count: f32, bf16, openblas
  for (size_t ti = 0; ti < thread_counts.size(); ++ti) {
    const int threads = thread_counts[ti];
    ThreadPool pool(threads);
#ifdef WITH_OPENBLAS
    openblas_set_num_threads(threads);
#endif
    for (const Shape& s : kShapes) {
      if (!filter.empty() && std::string(s.name).find(filter) == std::string::npos) continue;
      Data d = make_data(s);
      const double flops = 2.0 * s.m * s.n * s.k;
      double t[4] = {0, 0, 0, 0};
      for (int p = 0; p < 2; ++p) {
        const Precision precision = p == 0 ? Precision::F32 : Precision::BF16;
        std::vector<PackedWeight> copies(1, pack_weight(d.w.data(), s.n, s.k, precision));
        while (g_cold && copies.size() * copies[0].bytes() < (96u << 20)) copies.push_back(pack_weight(d.w.data(), s.n, s.k, precision));
        size_t next = 0;
        Epilogue ep;
        ep.gelu = s.epi == 1;
        if (s.epi == 2) {
          ep.scale = d.scale.data();
          ep.residual = d.y.data();
        }
        t[p] = time_best(
            [&] { linear(d.x.data(), s.m, copies[next++ % copies.size()], d.bias.data(), d.y.data(), ep, pool); }, min_s,
            reps);
      }
#ifdef WITH_OPENBLAS
      std::vector<float> tmp(s.epi == 2 ? d.y.size() : 0);
      t[2] = time_best([&] { openblas_linear(s, d, tmp); }, min_s, reps);
      std::vector<float> out(d.y.size());
      t[3] = time_best(
          [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.m, s.n, s.k, 1.0f, d.x.data(), s.k, d.w.data(), s.k,
                        0.0f, out.data(), s.n);
          },
          min_s, reps);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let OpenBLAS's spinning threads park
#endif
      std::printf("%-16s %5d %6d %6d %4d | %8.1f %8.1f", s.name, s.m, s.n, s.k, threads, flops / t[0] * 1e-9,
                  flops / t[1] * 1e-9);
      if (g_cold) std::printf(" %8.1f %8.1f", 4.0 * s.n * s.k / t[0] * 1e-9, 2.0 * s.n * s.k / t[1] * 1e-9);
#ifdef WITH_OPENBLAS
      std::printf(" %8.1f %7.2f %7.2f %8.1f", flops / t[2] * 1e-9, t[2] / t[0], t[2] / t[1], flops / t[3] * 1e-9);
#endif
      std::printf("\n");
      std::fflush(stdout);
      for (int p = 0; p < 3; ++p) image_s[ti * 3 + p] += s.per_image * t[p];
    }
  }
  if (filter.empty()) {
    for (size_t ti = 0; ti < thread_counts.size(); ++ti) {
      std::printf("GEMM time per 256 px ConvNeXt-XXLarge image, %d thread(s): f32 %.3f s, bf16 %.3f s", thread_counts[ti],
                  image_s[ti * 3], image_s[ti * 3 + 1]);
#ifdef WITH_OPENBLAS
      std::printf(", OpenBLAS %.3f s", image_s[ti * 3 + 2]);
#endif
      std::printf("\n");
    }
  }
  return 0;
}
