// This machine's limits, measured: fp32 FMA peak (AVX2 ymm, and AVX-512 zmm where the CPU has avx512f), the bf16
// dot peak (vdpbf16ps zmm, where it has avx512_bf16), the AMX bf16 tile peak (tdpbf16ps, where it has amx_bf16 and
// Linux grants the tile state) and read bandwidth, on 1 thread and on all threads the process
// may use. Prints one JSON object on stdout. No dependencies; every ISA-specific function carries its own target
// attribute and is chosen at run time, so `g++ -O2 -pthread limits.cc` runs on any x86-64.
//
//   g++ -O2 -pthread -std=c++17 -o build-bench/limits bench/limits.cc && build-bench/limits [--seconds 0.25]
#include <immintrin.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// 12 independent accumulator chains: FMA latency (4-5 cycles) x 2 FMA ports needs >= 10 in flight.
constexpr int kChains = 12;
// Inner repetitions per loop trip, so the loop counter costs nothing.
constexpr int kUnroll = 16;
// Fully unrolled, so the accumulators live in registers (not in memory, where store forwarding would bound them).
#define UNROLLED _Pragma("GCC unroll 16")

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Each kernel runs `trips` trips of kChains x kUnroll vector ops and returns a value that depends on every one of
// them (so none is optimised away). acc = acc * a + b with a < 1 stays finite and never goes denormal.

// One chain kernel: kChains accumulators of vector type V, each trip applying acc = OP(acc, a, b) kUnroll times
// per chain; INIT declares a and b, ADD and LANE0 fold the chains into one float.
#define CHAIN_KERNEL(name, ISA, V, SET1, INIT, OP, ADD, LANE0)                      \
  __attribute__((target(ISA))) float name(long trips) {                            \
    V acc[kChains];                                                                 \
    for (int c = 0; c < kChains; c++) acc[c] = SET1(1.0f + c);                      \
    INIT;                                                                           \
    for (long t = 0; t < trips; t++)                                                \
      UNROLLED for (int u = 0; u < kUnroll; u++)                                    \
        UNROLLED for (int c = 0; c < kChains; c++) acc[c] = OP(acc[c], a, b);      \
    V sum = acc[0];                                                                 \
    for (int c = 1; c < kChains; c++) sum = ADD(sum, acc[c]);                       \
    return LANE0(sum);                                                              \
  }

CHAIN_KERNEL(fma_ymm, "avx2,fma", __m256, _mm256_set1_ps,
             const __m256 a = _mm256_set1_ps(0.9999f); const __m256 b = _mm256_set1_ps(1e-4f),
             _mm256_fmadd_ps, _mm256_add_ps, _mm256_cvtss_f32)
CHAIN_KERNEL(fma_zmm, "avx512f", __m512, _mm512_set1_ps,
             const __m512 a = _mm512_set1_ps(0.9999f); const __m512 b = _mm512_set1_ps(1e-4f),
             _mm512_fmadd_ps, _mm512_add_ps, _mm512_cvtss_f32)
// vdpbf16ps: per fp32 lane, acc += a[2i] * b[2i] + a[2i+1] * b[2i+1] (4 FLOPs, 64 per zmm instruction); the sum
// drifts slowly.
CHAIN_KERNEL(dot_bf16_zmm, "avx512f,avx512bf16", __m512, _mm512_set1_ps,
             const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
             const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(-1e-3f), _mm512_set1_ps(-1e-3f)),
             _mm512_dpbf16_ps, _mm512_add_ps, _mm512_cvtss_f32)
#undef CHAIN_KERNEL

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11  // the AMX intrinsics (GCC >= 11)
#define HAVE_AMX_INTRINSICS 1
// tdpbf16ps: C[16 x 16] fp32 += A[16 x 32] bf16 . B[32 x 16] bf16 (16384 FLOPs); 4 independent C tiles, A and B
// tiles loaded once, kChains x kUnroll tile products per trip (the caller's FLOP count). Inputs are 2^-10, so the sums
// stay finite.
struct alignas(64) TileConfig {
  unsigned char palette = 1, start_row = 0, reserved[14] = {};
  unsigned short bytes_per_row[16] = {};
  unsigned char rows[16] = {};
};
__attribute__((target("amx-tile,amx-bf16"))) float dot_bf16_amx(long trips) {
  TileConfig config;
  for (int t = 0; t < 8; t++) config.bytes_per_row[t] = 64, config.rows[t] = 16;
  alignas(64) unsigned short ones[16 * 32];
  std::fill(ones, ones + 16 * 32, static_cast<unsigned short>(0x3a80));  // bf16 2^-10
  alignas(64) float c[16 * 16];
  _tile_loadconfig(&config);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  for (long t = 0; t < trips; t++)
    for (int u = 0; u < kUnroll * kChains / 4; u++) {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  _tile_stored(0, c, 64);
  _tile_release();
  return c[0];
}

// Linux keeps the AMX tile data state off until the process asks (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA).
bool amx_permitted() { return syscall(SYS_arch_prctl, 0x1023, 18) == 0; }
#else
#define HAVE_AMX_INTRINSICS 0
float dot_bf16_amx(long) { return 0; }
#endif

// Sums floats [begin, end) with 8 independent ymm accumulators (enough loads in flight to saturate DRAM).
__attribute__((target("avx2"))) float read_ymm(const float* begin, const float* end) {
  __m256 acc[8];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (const float* p = begin; p + 64 <= end; p += 64)
    UNROLLED for (int i = 0; i < 8; i++) acc[i] = _mm256_add_ps(acc[i], _mm256_load_ps(p + 8 * i));
  for (int i = 1; i < 8; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
  return _mm256_cvtss_f32(acc[0]);
}

int usable_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

volatile float g_sink;  // keeps every kernel's result alive
// The smallest CPU share (thread CPU time / wall time) of any thread in the best repetition of any measurement:
// below ~0.95, other processes took CPU time meanwhile and the figures understate the machine.
double g_min_cpu_share = 1.0;

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Run { double seconds; double cpu_share; };

// Runs `work(thread_index)` on `threads` threads started together: the wall seconds until the last ends, and the
// smallest share of that time any thread spent on a CPU.
Run run_parallel(int threads, const std::function<float(int)>& work) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  std::vector<float> sinks(threads);
  std::vector<double> cpu(threads);
  for (int t = 0; t < threads; t++)
    pool.emplace_back([&, t] {
      ready++;
      while (!go.load()) std::this_thread::yield();
      const double c0 = thread_cpu_seconds();
      sinks[t] = work(t);
      cpu[t] = thread_cpu_seconds() - c0;
    });
  while (ready.load() < threads) std::this_thread::yield();
  const auto t0 = Clock::now();
  go = true;
  for (auto& th : pool) th.join();
  const double s = seconds_since(t0);
  for (float v : sinks) g_sink = v;
  return {s, *std::min_element(cpu.begin(), cpu.end()) / s};
}

// GFLOP/s of `kernel` on `threads` threads, best of 3: each thread runs the trips one thread needs for `target_s`.
double peak_gflops(float (*kernel)(long), double flops_per_op, int threads, double target_s) {
  long trips = 1000;
  for (;;) {  // calibrate on one thread
    const auto t0 = Clock::now();
    g_sink = kernel(trips);
    const double s = seconds_since(t0);
    if (s > target_s / 4) { trips = static_cast<long>(trips * target_s / s); break; }
    trips *= 4;
  }
  double best = 0, share = 1;
  for (int rep = 0; rep < 3; rep++) {
    const Run r = run_parallel(threads, [&](int) { return kernel(trips); });
    const double gflops = double(trips) * kUnroll * kChains * flops_per_op * threads / r.seconds / 1e9;
    if (gflops > best) best = gflops, share = r.cpu_share;
  }
  g_min_cpu_share = std::min(g_min_cpu_share, share);
  return best;
}

// GB/s reading `buffer` (split evenly among `threads`), best of `passes` (each ~40 ms: many are cheap).
double read_gbps(const float* buffer, size_t count, int threads, int passes) {
  double best = 0, cpu_share = 1;
  const size_t share = count / threads / 64 * 64;
  for (int p = 0; p < passes; p++) {
    const Run r = run_parallel(threads, [&](int t) { return read_ymm(buffer + t * share, buffer + (t + 1) * share); });
    const double gbps = double(share) * threads * sizeof(float) / r.seconds / 1e9;
    if (gbps > best) best = gbps, cpu_share = r.cpu_share;
  }
  g_min_cpu_share = std::min(g_min_cpu_share, cpu_share);
  return best;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  double target_s = 0.25;  // per FMA measurement and thread count
  for (int i = 1; i + 1 < argc; i++)
    if (!std::strcmp(argv[i], "--seconds")) target_s = std::atof(argv[i + 1]);
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
#if HAVE_AMX_INTRINSICS
  const bool amx = __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("amx-tile") && amx_permitted();
#else
  const bool amx = false;
#endif
  const int threads = usable_threads();
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);

  std::printf("{\"cpu\": %s, \"threads\": %d, \"load_avg_1m\": %.2f, \"flags\": {\"avx2\": %s, \"fma\": %s, \"avx512f\": %s, \"avx512_bf16\": %s, \"amx_bf16\": %s}",
              json_string(cpu_model()).c_str(), threads, load[0], avx2 ? "true" : "false", __builtin_cpu_supports("fma") ? "true" : "false",
              avx512 ? "true" : "false", bf16 ? "true" : "false", amx ? "true" : "false");
  // FLOPs per instruction: an FMA is 2 per lane (8 ymm / 16 zmm lanes); vdpbf16ps is 4 per fp32 lane; tdpbf16ps
  // 2 x 16 x 16 x 32.
  struct Peak { const char* key; bool present; float (*kernel)(long); double flops; };
  const Peak peaks[] = {{"fma_ymm", avx2, fma_ymm, 16}, {"fma_zmm", avx512, fma_zmm, 32}, {"bf16_dot_zmm", bf16, dot_bf16_zmm, 64},
                       {"bf16_amx", amx, dot_bf16_amx, 16384}};
  for (const Peak& p : peaks) {
    if (!p.present) continue;
    std::printf(", \"%s_gflops_1t\": %.1f", p.key, peak_gflops(p.kernel, p.flops, 1, target_s));
    std::printf(", \"%s_gflops_all\": %.1f", p.key, peak_gflops(p.kernel, p.flops, threads, target_s));
    std::fflush(stdout);
  }
  if (avx2) {
    const size_t bytes = size_t(1) << 30;
    auto* buffer = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (buffer) {
      const size_t count = bytes / sizeof(float);
      run_parallel(threads, [&](int t) {  // fault every page in (first touch), in parallel
        const size_t share = count / threads;
        std::fill(buffer + t * share, t + 1 == threads ? buffer + count : buffer + (t + 1) * share, 1.0f);
        return 0.0f;
      });
      std::printf(", \"read_gbps_1t\": %.1f, \"read_gbps_all\": %.1f, \"read_buffer_bytes\": %zu",
                  read_gbps(buffer, count, 1, 8), read_gbps(buffer, count, threads, 8), bytes);
      std::free(buffer);
    }
  }
  getloadavg(load, 3);
  std::printf(", \"min_cpu_share\": %.3f, \"load_avg_1m_end\": %.2f}\n", g_min_cpu_share, load[0]);
  return 0;
}
