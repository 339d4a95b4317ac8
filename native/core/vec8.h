// Eight (Vec8) or sixteen (Vec16) floats as one value for the non-GEMM kernels: a GCC/clang vector extension (one
// ymm / zmm with AVX / AVX-512, several xmm with SSE, wasm simd128 groups under Emscripten), or a plain array
// elsewhere. Loads and stores go through memcpy, so any alignment is fine. Also the run-time switches that let a
// kernel be compiled more than once (baseline, AVX2+FMA and AVX-512 via function-level target attributes; no
// intrinsics).
#pragma once
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"  // Vec8 never crosses a non-inlined call
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CCLIP_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define CCLIP_ALWAYS_INLINE inline
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CCLIP_X86_CLONES 1
#define CCLIP_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define CCLIP_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define CCLIP_X86_CLONES 0
#endif

namespace cclip {

#if defined(__GNUC__) || defined(__clang__)
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec16 __attribute__((vector_size(64)));
#else
template <int N>
struct FloatLanes {
  float lane[N];
  FloatLanes& operator+=(const FloatLanes& o) {
    for (int i = 0; i < N; ++i) lane[i] += o.lane[i];
    return *this;
  }
  FloatLanes operator+(const FloatLanes& o) const {
    FloatLanes r;
    for (int i = 0; i < N; ++i) r.lane[i] = lane[i] + o.lane[i];
    return r;
  }
  FloatLanes operator-(const FloatLanes& o) const {
    FloatLanes r;
    for (int i = 0; i < N; ++i) r.lane[i] = lane[i] - o.lane[i];
    return r;
  }
  FloatLanes operator*(const FloatLanes& o) const {
    FloatLanes r;
    for (int i = 0; i < N; ++i) r.lane[i] = lane[i] * o.lane[i];
    return r;
  }
  FloatLanes operator*(float s) const {
    FloatLanes r;
    for (int i = 0; i < N; ++i) r.lane[i] = lane[i] * s;
    return r;
  }
};
typedef FloatLanes<8> Vec8;
typedef FloatLanes<16> Vec16;
#endif

CCLIP_ALWAYS_INLINE Vec8 load8(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

CCLIP_ALWAYS_INLINE void store8(float* p, const Vec8& v) { std::memcpy(p, &v, sizeof(v)); }

CCLIP_ALWAYS_INLINE Vec16 load16(const float* p) {
  Vec16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

CCLIP_ALWAYS_INLINE void store16(float* p, const Vec16& v) { std::memcpy(p, &v, sizeof(v)); }

CCLIP_ALWAYS_INLINE Vec8 splat8(float s) {
#if defined(__GNUC__) || defined(__clang__)
  return Vec8{s, s, s, s, s, s, s, s};
#else
  Vec8 v;
  for (int i = 0; i < 8; ++i) v.lane[i] = s;
  return v;
#endif
}

// The same for either width (V = Vec8 or Vec16), for kernels written once over the vector type.
template <typename V>
CCLIP_ALWAYS_INLINE V load_vec(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename V>
CCLIP_ALWAYS_INLINE void store_vec(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(v));
}

template <typename V>
CCLIP_ALWAYS_INLINE V splat_vec(float f) {
  V v;
  float lanes[sizeof(V) / sizeof(float)];
  for (float& l : lanes) l = f;
  std::memcpy(&v, lanes, sizeof(v));
  return v;
}

template <typename V>
CCLIP_ALWAYS_INLINE float lane_sum(const V& v) {
  float lanes[sizeof(V) / sizeof(float)];
  std::memcpy(lanes, &v, sizeof(v));
  float total = 0;
  for (float f : lanes) total += f;
  return total;
}

// Whether the AVX2+FMA clones may run here (x86-64 only).
inline bool cpu_has_avx2_fma() {
#if CCLIP_X86_CLONES
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

// Whether the AVX-512 clones may run here (x86-64 only; __builtin_cpu_supports also checks the OS saves zmm state).
inline bool cpu_has_avx512f() {
#if CCLIP_X86_CLONES
  static const bool yes = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
  return yes;
#else
  return false;
#endif
}

}  // namespace cclip
