// Tests for cclip::linear / pack_weight / gelu and the thread pool against a double-precision reference.
// Every kernel variant this CPU can run is tested, plus "wide": the AVX-512 instantiation logic (64-byte
// vectors, 12 x 32 tile) compiled for baseline x86-64 / any target, so its layout and tails are checked here too.
// Build and run: bench/gemm/run.sh test   (prints "N passed, N failed"; exit status 1 on any failure)
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "../cpu_features.h"
#include "../gemm.h"
#include "../gemm_internal.h"
#include "../gemm_pack.h"
#include "../threadpool.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // 64-byte vectors without AVX-512: only inlined helpers
#define CCLIP_K_NS test_wide
#define CCLIP_K_NAME "wide"
#define CCLIP_K_TARGET
#define CCLIP_K_VBYTES 64
#define CCLIP_K_MR 12
#define CCLIP_K_MC 48
#define CCLIP_K_KC 64
#define CCLIP_K_NC 96
#include "../gemm_kernels.h"

using namespace cclip;
using cclip_test::check;
using gemm_detail::KernelSet;

static double gelu_ref(double v) { return 0.5 * v * std::erfc(-v * 0.70710678118654752440); }

static void test_bf16_helpers() {
  check(float_to_bf16(1.0f) == 0x3f80, "bf16(1)");
  check(bf16_to_float(0x3f80) == 1.0f, "float(bf16 1)");
  // Round to nearest even: 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7 -> 1.
  check(float_to_bf16(1.0f + 1.0f / 256) == 0x3f80, "bf16 tie to even (down)");
  check(float_to_bf16(1.0f + 3.0f / 256) == 0x3f82, "bf16 tie to even (up)");
  check(std::isnan(bf16_to_float(float_to_bf16(NAN))), "bf16 NaN");
  check(bf16_to_float(float_to_bf16(-INFINITY)) == -INFINITY, "bf16 -inf");
}

static void test_gelu(const KernelSet* ks) {
  double worst = 0, worst_x = 0;
  for (int i = -400000; i <= 400000; ++i) {
    const float x = i * 5e-5f;  // [-20, 20]
    const double ref = gelu_ref(x);
    const float got = ks->gelu1(x);
    if (x < -12.9f) {  // |gelu| < 1.5e-37 here: only needs to be ~0
      if (!(std::fabs(got) < 1e-36f)) worst = 1, worst_x = x;
      continue;
    }
    const double rel = std::fabs(got - ref) / std::fabs(ref);
    if (rel > worst) worst = rel, worst_x = x;
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "[%s] gelu max rel err %.3g at x=%g (limit 1e-6)", ks->name, worst, worst_x);
  check(worst < 1e-6, buf);
  check(ks->gelu1(0.0f) == 0.0f, std::string("[") + ks->name + "] gelu(0)");
  check(std::isnan(ks->gelu1(NAN)), std::string("[") + ks->name + "] gelu(NaN)");
  check(ks->gelu1(INFINITY) == INFINITY, std::string("[") + ks->name + "] gelu(inf)");
  check(std::fabs(ks->gelu1(-30.0f)) < 1e-30f, std::string("[") + ks->name + "] gelu(-30)");
  if (std::getenv("GEMM_TEST_VERBOSE")) std::printf("%s\n", buf);
}

struct Case {
  int m, n, k;
};

// linear() vs. the double reference for one shape, over the epilogue modes in `modes`
// (bits: 1 bias, 2 gelu, 4 scale, 8 residual, 16 residual aliases y), each on pools[mode % 3].
static void run_case(const KernelSet* ks, Precision prec, const Case& c, const std::vector<int>& modes,
                     ThreadPool* const* pools, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.m) * c.k), w(static_cast<size_t>(c.n) * c.k), bias(c.n), scale(c.n),
      res(static_cast<size_t>(c.m) * c.n);
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng) * 0.1f;
  for (auto& v : bias) v = nd(rng);
  for (auto& v : scale) v = nd(rng);
  for (auto& v : res) v = nd(rng);
  PackedWeight pw = gemm_detail::pack_weight_with(ks, w.data(), c.n, c.k, prec);
  // Reference x . W^T in double, with |x| . |W|^T for the tolerance.
  std::vector<double> acc(static_cast<size_t>(c.m) * c.n), mag(acc.size());
  std::vector<float> wr(w), xr(x);
  if (prec == Precision::BF16)
    for (auto& v : wr) v = bf16_to_float(float_to_bf16(v));
  if (prec == Precision::BF16 && ks->bf16_dot)  // these kernels round the activations to bf16 as well
    for (auto& v : xr) v = bf16_to_float(float_to_bf16(v));
  for (int i = 0; i < c.m; ++i)
    for (int j = 0; j < c.n; ++j) {
      double a = 0, g = 0;
      for (int t = 0; t < c.k; ++t) {
        const double p = static_cast<double>(xr[static_cast<size_t>(i) * c.k + t]) * wr[static_cast<size_t>(j) * c.k + t];
        a += p;
        g += std::fabs(p);
      }
      acc[static_cast<size_t>(i) * c.n + j] = a;
      mag[static_cast<size_t>(i) * c.n + j] = g;
    }
  for (int mode : modes) {
    ThreadPool& pool = *pools[mode % 3];
    const bool use_bias = mode & 1, use_gelu = mode & 2, use_scale = mode & 4, use_res = mode & 8, alias = mode & 16;
    std::vector<float> y(static_cast<size_t>(c.m) * c.n, NAN);
    Epilogue ep;
    ep.gelu = use_gelu;
    ep.scale = use_scale ? scale.data() : nullptr;
    if (use_res) {
      if (alias) {
        y = res;
        ep.residual = y.data();
      } else {
        ep.residual = res.data();
      }
    }
    linear(x.data(), c.m, pw, use_bias ? bias.data() : nullptr, y.data(), ep, pool);
    double worst = 0;  // error / tolerance
    for (int i = 0; i < c.m; ++i) {
      for (int j = 0; j < c.n; ++j) {
        const size_t o = static_cast<size_t>(i) * c.n + j;
        double a = acc[o], g = mag[o];
        if (use_bias) a += bias[j], g += std::fabs(bias[j]);
        double v = use_gelu ? gelu_ref(a) : a;
        double vmag = g * 1.2;
        if (use_scale) v *= scale[j], vmag *= std::fabs(scale[j]);
        const double r = use_res ? res[o] : 0.0;
        v += r;
        // fp32 accumulation error bound (loose in K, tight enough to catch any indexing error) + output rounding.
        const double tol = 1.2e-7 * (c.k + 16) * vmag * 0.25 + 1.5e-6 * (std::fabs(v) + std::fabs(r)) + 1e-30;
        const double got = y[o];
        const double e = std::isfinite(got) ? std::fabs(got - v) / tol : 1e30;
        if (e > worst) worst = e;
      }
    }
    char buf[200];
    std::snprintf(buf, sizeof buf, "[%s %s t=%d] M=%d N=%d K=%d bias=%d gelu=%d scale=%d res=%d alias=%d err/tol=%.3g",
                  ks->name, prec == Precision::F32 ? "f32" : "bf16", pool.size(), c.m, c.n, c.k, use_bias, use_gelu,
                  use_scale, use_res, alias ? 1 : 0, worst);
    check(worst <= 1.0, buf);
  }
}

// pack_weight's bytes against the layouts gemm_internal.h documents, element by element (NaN, a denormal and an
// infinity included), for odd N and K, K past one 64-deep pack block, and 1 and 3 threads.
static void test_pack_layout(const KernelSet* ks, ThreadPool& pool3) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Case& c : {Case{70, 0, 131}, Case{5, 0, 1}, Case{33, 0, 64}}) {
    const int n = c.m, k = c.k;
    std::vector<float> w(static_cast<size_t>(n) * k);
    for (auto& v : w) v = nd(rng);
    if (w.size() > 7) w[3] = NAN, w[5] = 1e-40f, w[7] = -INFINITY, w[9] = 1.00390625f;  // a tie: rounds to even
    for (Precision prec : {Precision::F32, Precision::BF16}) {
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
        const PackedWeight pw = gemm_detail::pack_weight_parallel_with(ks, w.data(), n, k, prec, pool);
        const KernelSet* used = pw.kernels;
        const int nr = used->nr, panels = (n + nr - 1) / nr, k_stored = (k + used->k_align - 1) / used->k_align * used->k_align;
        auto value = [&](int col, int kk) { return col < n && kk < k ? w[static_cast<size_t>(col) * k + kk] : 0.0f; };
        bool same = true;
        for (int p = 0; p < panels && same; ++p)
          for (int kk = 0; kk < k_stored && same; ++kk)
            for (int j = 0; j < nr && same; ++j) {
              const size_t panel = static_cast<size_t>(p) * nr * k_stored;
              const int col = p * nr + j;
              if (prec == Precision::F32) {
                const float got = static_cast<const float*>(pw.data.get())[panel + static_cast<size_t>(kk) * nr + j];
                const float want = value(col, kk);
                same = std::memcmp(&got, &want, 4) == 0;
              } else {
                const uint16_t* h = static_cast<const uint16_t*>(pw.data.get()) + panel;
                // bf16_dot: pair row kk / 2, column j, half kk % 2; else row kk, slot 2j (j < nr/2) or 2(j - nr/2) + 1.
                const size_t at = used->bf16_dot ? (static_cast<size_t>(kk / 2) * nr + j) * 2 + kk % 2
                                                 : static_cast<size_t>(kk) * nr + (j < nr / 2 ? 2 * j : 2 * (j - nr / 2) + 1);
                same = h[at] == float_to_bf16(value(col, kk));
              }
            }
        char buf[120];
        std::snprintf(buf, sizeof buf, "[%s %s t=%d] pack layout N=%d K=%d", used->name, prec == Precision::F32 ? "f32" : "bf16",
                      pool ? pool->size() : 1, n, k);
        check(same, buf);
      }
    }
  }
}

static void test_linear(const KernelSet* ks, ThreadPool& pool1, ThreadPool& pool2, ThreadPool& pool3) {
  std::mt19937 rng(1234);
  const int dims[] = {1, 3, 17, 77, 100, 385};
  std::vector<Case> cases;
  for (int m : dims)
    for (int n : dims)
      for (int k : {1, 17, 100, 385}) cases.push_back({m, n, k});
  cases.push_back({12, 48, 520});   // several K passes
  cases.push_back({130, 200, 700});
  cases.push_back({256, 130, 64});  // several M blocks and N ranges
  cases.push_back({3, 1000, 33});
  cases.push_back({5, 7, 0});       // K = 0: y = epilogue(bias)
  cases.push_back({200, 70, 3000});  // an A block larger than any L2: pass-major order (smaller ones: panel major)
  cases.push_back({700, 20, 3000});  // packed A over 8 MB: two row chunks
  cases.push_back({25, 70, 20000});  // a few rows, A over L2 (>= 1.8 MB): panel major in K blocks (gemm.cc, shared_k_block)

  ThreadPool* pools[3] = {&pool1, &pool2, &pool3};
  int idx = 0;
  for (const Case& c : cases) {
    for (Precision prec : {Precision::F32, Precision::BF16}) {
      // All 16 epilogue combinations (+ aliasing) on small shapes; a rotating subset elsewhere.
      const bool small = static_cast<double>(c.m) * c.n * c.k <= 40000;
      std::vector<int> modes;
      for (int mode = 0; mode < 32; ++mode) {
        if ((mode & 16) && !(mode & 8)) continue;
        if (!small && (mode + idx) % 5 != 0) continue;
        modes.push_back(mode);
      }
      run_case(ks, prec, c, modes, pools, rng);
      ++idx;
    }
  }
}

// A row's result does not depend on the rest of its batch: each row alone (the weight-streaming path, M <= MR)
// is bit-identical to that row within batches of every size (the blocked paths), on 1 and 2 threads.
static void test_batch_invariance(const KernelSet* ks, ThreadPool& pool1, ThreadPool& pool2) {
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (Precision prec : {Precision::F32, Precision::BF16}) {
    for (const Case& c : {Case{40, 100, 700}, Case{3 * ks->mr + 1, 70, 1031}, Case{300, 40, 2000},
                          Case{std::max(25, 2 * ks->mr + 1), 40, 20000}}) {  // just past the streaming rows
      std::vector<float> x(static_cast<size_t>(c.m) * c.k), w(static_cast<size_t>(c.n) * c.k), bias(c.n);
      for (auto& v : x) v = nd(rng);
      for (auto& v : w) v = nd(rng) * 0.1f;
      for (auto& v : bias) v = nd(rng);
      PackedWeight pw = gemm_detail::pack_weight_with(ks, w.data(), c.n, c.k, prec);
      Epilogue ep;
      ep.gelu = true;
      std::vector<float> alone(static_cast<size_t>(c.m) * c.n);
      for (int i = 0; i < c.m; ++i)
        linear(x.data() + static_cast<size_t>(i) * c.k, 1, pw, bias.data(), alone.data() + static_cast<size_t>(i) * c.n, ep, pool1);
      bool same = true;
      for (int rows : {2, ks->mr, ks->mr + 1, c.m}) {
        for (ThreadPool* pool : {&pool1, &pool2}) {
          std::vector<float> batch(static_cast<size_t>(rows) * c.n);
          linear(x.data(), rows, pw, bias.data(), batch.data(), ep, *pool);
          same = same && std::memcmp(batch.data(), alone.data(), batch.size() * sizeof(float)) == 0;
        }
      }
      char buf[160];
      std::snprintf(buf, sizeof buf, "[%s %s] N=%d K=%d: rows alone == rows in batches of 2, MR, MR+1, %d", ks->name,
                    prec == Precision::F32 ? "f32" : "bf16", c.n, c.k, c.m);
      check(same, buf);
    }
  }
}

// The thread pool: coverage, exceptions, nesting, concurrent callers on separate pools, teardown.
static void test_threadpool() {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    check(pool.size() == threads, "pool size");
    for (int64_t n : {0, 1, 2, 7, 100, 10007}) {
      for (int64_t grain : {1, 3, 64}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        for (auto& h : hits) h = 0;
        bool grain_ok = true;
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          if (e - b < grain && e != n) grain_ok = false;
          for (int64_t i = b; i < e; ++i) hits[i]++;
        });
        bool ok = grain_ok;
        for (auto& h : hits) ok = ok && h == 1;
        check(ok, "parallel_for covers once, threads=" + std::to_string(threads) + " n=" + std::to_string(n));
      }
    }
    bool threw = false;
    try {
      pool.parallel_for(100, 1, [&](int64_t, int64_t e) {
        if (e > 50) throw std::runtime_error("boom");
      });
    } catch (const std::runtime_error&) {
      threw = true;
    }
    check(threw, "exception rethrown, threads=" + std::to_string(threads));
    std::atomic<int64_t> sum{0};
    pool.parallel_for(8, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        pool.parallel_for(10, 1, [&](int64_t b2, int64_t e2) { sum += (e2 - b2) * (i + 1); });
    });
    check(sum == 360, "nested parallel_for, threads=" + std::to_string(threads));
  }
  // Many tiny loops back to back, several pools used concurrently from different threads.
  std::atomic<bool> ok{true};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&ok, c] {
      ThreadPool pool(2);
      for (int it = 0; it < 3000; ++it) {
        std::atomic<int> cnt{0};
        pool.parallel_for(2 + (it + c) % 5, 1, [&](int64_t b, int64_t e) { cnt += static_cast<int>(e - b); });
        if (cnt != 2 + (it + c) % 5) ok = false;
      }
    });
  }
  for (auto& t : callers) t.join();
  check(ok, "concurrent pools, many small loops");
  // Two threads sharing one pool are serialised.
  {
    ThreadPool pool(2);
    std::atomic<int> total{0};
    std::thread a([&] {
      for (int i = 0; i < 500; ++i) pool.parallel_for(4, 1, [&](int64_t b, int64_t e) { total += int(e - b); });
    });
    std::thread b([&] {
      for (int i = 0; i < 500; ++i) pool.parallel_for(4, 1, [&](int64_t b2, int64_t e) { total += int(e - b2); });
    });
    a.join();
    b.join();
    check(total == 4000, "shared pool, concurrent callers");
  }
  // Construct/destroy quickly, including right after a loop and after workers went to sleep.
  for (int i = 0; i < 200; ++i) {
    ThreadPool pool(3);
    if (i % 2) pool.parallel_for(10, 1, [](int64_t, int64_t) {});
  }
  {
    ThreadPool pool(2);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past the spin: workers asleep
    std::atomic<int> cnt{0};
    for (int i = 0; i < 20; ++i) pool.parallel_for(2, 1, [&](int64_t b, int64_t e) { cnt += int(e - b); });
    check(cnt == 40, "wake sleeping workers");
  }
  check(true, "pool teardown");
}

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main() {
  const double t0 = now_s();
  test_bf16_helpers();
  test_threadpool();
  const double t1 = now_s();
  std::vector<const KernelSet*> sets = {gemm_detail::kernels_generic(), gemm_detail::test_wide::kernel_set()};
  const CpuFeatures& cpu = cpu_features();
  if (cpu.avx2_fma && gemm_detail::kernels_avx2()) sets.push_back(gemm_detail::kernels_avx2());
  if (cpu.avx512f && gemm_detail::kernels_avx512()) sets.push_back(gemm_detail::kernels_avx512());
  if (cpu.avx512bf16 && gemm_detail::kernels_avx512bf16()) sets.push_back(gemm_detail::kernels_avx512bf16());
  if (cpu.amx_bf16 && gemm_detail::kernels_amx()) sets.push_back(gemm_detail::kernels_amx());
  if (gemm_detail::kernels_neon()) sets.push_back(gemm_detail::kernels_neon());
  // GEMM_TEST_ONLY=<name> keeps one variant (the arm64 run under qemu tests the NEON one only: emulation is slow).
  if (const char* only = std::getenv("GEMM_TEST_ONLY")) {
    std::vector<const KernelSet*> kept;
    for (auto* ks : sets)
      if (std::strcmp(ks->name, only) == 0) kept.push_back(ks);
    check(!kept.empty(), "GEMM_TEST_ONLY names a variant built here");
    sets = kept;
  }
  std::printf("kernel variants tested:");
  for (auto* ks : sets) std::printf(" %s", ks->name);
  std::printf(" (default: %s; for bf16 weights: %s)\n", gemm_detail::best_kernels()->name,
              gemm_detail::best_bf16_kernels()->name);
  ThreadPool pool1(1), pool2(2), pool3(3);
  for (const KernelSet* ks : sets) {
    test_gelu(ks);
    test_pack_layout(ks, pool3);
    test_linear(ks, pool1, pool2, pool3);
    test_batch_invariance(ks, pool1, pool2);
  }
  // The public entry points use the default variant.
  {
    std::vector<float> w(6 * 5), x(2 * 5), y(2 * 6);
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 7) - 3;
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 3);
    PackedWeight pw = pack_weight(w.data(), 6, 5, Precision::F32);
    linear(x.data(), 2, pw, nullptr, y.data(), Epilogue{}, pool2);
    bool ok = pw.kernels == gemm_detail::best_kernels() && pw.bytes() > 0;
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 6; ++j) {
        float r = 0;
        for (int t = 0; t < 5; ++t) r += x[i * 5 + t] * w[j * 5 + t];
        ok = ok && y[i * 6 + j] == r;
      }
    check(ok, "pack_weight/linear default path");
    check(pack_weight(w.data(), 6, 5, Precision::BF16).kernels == gemm_detail::best_bf16_kernels(),
          "bf16 pack_weight takes the bf16 default variant");
  }
  // Variant choice under each CCLIP_GEMM_ISA ceiling, for a CPU with every x86 feature and for a bare one.
  {
    using gemm_detail::choose_kernels;
    using gemm_detail::isa_ceiling;
    check(isa_ceiling(nullptr) == 3 && isa_ceiling("") == 3 && isa_ceiling("generic") == 0 && isa_ceiling("avx2") == 1 &&
              isa_ceiling("avx512") == 2 && isa_ceiling("avx512bf16") == 4 && isa_ceiling("amx") == 5,
          "CCLIP_GEMM_ISA values");
    CpuFeatures all, none, slow_dot;
    all.avx2_fma = all.avx512f = all.avx512bf16 = all.bf16_dot_fast = true;
    slow_dot = all;
    slow_dot.bf16_dot_fast = false;  // Intel: vdpbf16ps at half the FMA rate
    const KernelSet* generic = gemm_detail::kernels_generic();
    check(choose_kernels(0, all, Precision::BF16) == generic && choose_kernels(3, none, Precision::BF16) ==
              (gemm_detail::kernels_neon() ? gemm_detail::kernels_neon() : generic),
          "generic under the generic ceiling or on a bare CPU");
    if (gemm_detail::kernels_avx512bf16()) {
      check(choose_kernels(3, all, Precision::BF16) == gemm_detail::kernels_avx512bf16(), "avx512bf16 for bf16 weights");
      check(choose_kernels(3, all, Precision::F32) == gemm_detail::kernels_avx512(), "avx512 for fp32 weights");
      check(choose_kernels(2, all, Precision::BF16) == gemm_detail::kernels_avx512(), "CCLIP_GEMM_ISA=avx512: no bf16 dot");
      check(choose_kernels(1, all, Precision::BF16) == gemm_detail::kernels_avx2(), "CCLIP_GEMM_ISA=avx2");
      check(choose_kernels(3, slow_dot, Precision::BF16) == gemm_detail::kernels_avx512(),
            "a slow bf16 dot: bf16 weights widened in the avx512 kernel");
      check(choose_kernels(4, slow_dot, Precision::BF16) == gemm_detail::kernels_avx512bf16() &&
                choose_kernels(4, slow_dot, Precision::F32) == gemm_detail::kernels_avx512(),
            "CCLIP_GEMM_ISA=avx512bf16 takes the dot kernel for bf16 weights only");
    }
    if (gemm_detail::kernels_amx()) {
      CpuFeatures amx = slow_dot;
      amx.amx_bf16 = true;
      check(choose_kernels(3, amx, Precision::BF16) == gemm_detail::kernels_amx() &&
                choose_kernels(5, amx, Precision::BF16) == gemm_detail::kernels_amx() &&
                choose_kernels(3, amx, Precision::F32) == gemm_detail::kernels_avx512(),
            "amx for bf16 weights where the CPU has AMX-BF16 (unset or CCLIP_GEMM_ISA=amx), avx512 for fp32");
      check(choose_kernels(4, amx, Precision::BF16) == gemm_detail::kernels_avx512bf16() &&
                choose_kernels(2, amx, Precision::BF16) == gemm_detail::kernels_avx512(),
            "CCLIP_GEMM_ISA=avx512bf16 / avx512 on an AMX CPU: no tiles");
      check(choose_kernels(5, slow_dot, Precision::BF16) == gemm_detail::kernels_avx512(),
            "CCLIP_GEMM_ISA=amx without AMX: the best of the rest");
    }
    check(std::fabs(gelu(1.0f) - 0.841344746f) < 1e-6f, "gelu(1)");
  }
  std::printf("(thread pool tests %.1f s, linear tests %.1f s)\n", t1 - t0, now_s() - t1);
  return cclip_test::summary();
}
