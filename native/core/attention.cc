// Causal multi-head self-attention for the text tower (L <= 77, head_dim 64 for the real models), one task per
// (sequence, head). Scores come out 8 keys at a time from a transposed K, and P.V keeps the head's output row in
// registers; both are Vec8 code compiled twice (baseline and AVX2+FMA) like the depthwise conv.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"
#include "vec8.h"

namespace cclip {

namespace {

struct AttentionArgs {
  const float* qkv;  // [n, len, 3 * width]
  int n, len, width, heads;
  float* out;  // [n, len, width]
};

// HD8 = head_dim / 8 when head_dim is a multiple of 8 (0: any head_dim, scalar P.V).
template <int HD8>
CCLIP_ALWAYS_INLINE void attend_head(const AttentionArgs& a, int seq, int head, float* key_t /* [hd, len8] */,
                                     float* scores /* [len8] */) {
  const int head_dim = a.width / a.heads, len = a.len, len8 = (len + 7) / 8 * 8;
  const int64_t row = 3 * static_cast<int64_t>(a.width);
  const float* base = a.qkv + static_cast<int64_t>(seq) * len * row + static_cast<int64_t>(head) * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (int d = 0; d < head_dim; ++d) {  // K^T, zero-padded to len8 columns
    float* dst = key_t + static_cast<int64_t>(d) * len8;
    for (int j = 0; j < len; ++j) dst[j] = base[j * row + a.width + d];
    for (int j = len; j < len8; ++j) dst[j] = 0.f;
  }
  for (int i = 0; i < len; ++i) {
    const float* q = base + i * row;
    const int blocks = (i + 8) / 8;  // key blocks covering 0..i
    for (int b = 0; b < blocks; ++b) store8(scores + 8 * b, splat8(0.f));
    for (int d = 0; d < head_dim; ++d) {
      const Vec8 qd = splat8(q[d] * scale);
      const float* kt = key_t + static_cast<int64_t>(d) * len8;
      for (int b = 0; b < blocks; ++b) store8(scores + 8 * b, load8(scores + 8 * b) + qd * load8(kt + 8 * b));
    }
    float max_score = scores[0];
    for (int j = 1; j <= i; ++j) max_score = std::max(max_score, scores[j]);
    float total = 0.f;
    for (int j = 0; j <= i; ++j) {
      scores[j] = std::exp(scores[j] - max_score);
      total += scores[j];
    }
    const float inv_total = 1.0f / total;
    float* o = a.out + (static_cast<int64_t>(seq) * len + i) * a.width + static_cast<int64_t>(head) * head_dim;
    if constexpr (HD8 > 0) {
      Vec8 acc[HD8];
      for (int v = 0; v < HD8; ++v) acc[v] = splat8(0.f);
      for (int j = 0; j <= i; ++j) {
        const Vec8 p = splat8(scores[j] * inv_total);
        const float* value = base + j * row + 2 * a.width;
        for (int v = 0; v < HD8; ++v) acc[v] += p * load8(value + 8 * v);
      }
      for (int v = 0; v < HD8; ++v) store8(o + 8 * v, acc[v]);
    } else {
      for (int d = 0; d < head_dim; ++d) o[d] = 0.f;
      for (int j = 0; j <= i; ++j) {
        const float p = scores[j] * inv_total;
        const float* value = base + j * row + 2 * a.width;
        for (int d = 0; d < head_dim; ++d) o[d] += p * value[d];
      }
    }
  }
}

CCLIP_ALWAYS_INLINE void attend_tasks(const AttentionArgs& a, int64_t begin, int64_t end, float* key_t, float* scores) {
  const int head_dim = a.width / a.heads;
  for (int64_t task = begin; task < end; ++task) {
    const int seq = static_cast<int>(task / a.heads), head = static_cast<int>(task % a.heads);
    switch (head_dim) {
      case 8: attend_head<1>(a, seq, head, key_t, scores); break;
      case 16: attend_head<2>(a, seq, head, key_t, scores); break;
      case 32: attend_head<4>(a, seq, head, key_t, scores); break;
      case 64: attend_head<8>(a, seq, head, key_t, scores); break;
      case 128: attend_head<16>(a, seq, head, key_t, scores); break;
      default: attend_head<0>(a, seq, head, key_t, scores); break;
    }
  }
}

void attend_tasks_portable(const AttentionArgs& a, int64_t begin, int64_t end, float* key_t, float* scores) {
  attend_tasks(a, begin, end, key_t, scores);
}

#if CCLIP_X86_CLONES
CCLIP_TARGET_AVX2 void attend_tasks_avx2(const AttentionArgs& a, int64_t begin, int64_t end, float* key_t, float* scores) {
  attend_tasks(a, begin, end, key_t, scores);
}
#endif

}  // namespace

void causal_attention(const float* qkv, int n, int len, int width, int heads, float* out, ThreadPool& pool) {
  const AttentionArgs args{qkv, n, len, width, heads, out};
  auto* tasks_fn = &attend_tasks_portable;
#if CCLIP_X86_CLONES
  if (cpu_has_avx2_fma()) tasks_fn = &attend_tasks_avx2;
#endif
  const int len8 = (len + 7) / 8 * 8, head_dim = width / heads;
  pool.parallel_for(static_cast<int64_t>(n) * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> key_t(static_cast<size_t>(head_dim) * len8), scores(len8);
    tasks_fn(args, begin, end, key_t.data(), scores.data());
  });
}

}  // namespace cclip
