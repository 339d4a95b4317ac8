// Causal multi-head self-attention for the text tower (L <= 77, head_dim 64 for the real models), one task per
// (sequence, head). Scores come out for 4 query rows x 8 keys at a time from a transposed K (each K^T load shared by
// the 4 rows), the softmax takes a vector exp, and P.V keeps the head's output row in registers; all Vec8 code
// compiled twice (baseline and AVX2+FMA) like the depthwise conv. In the AVX2 clone, splat8() of a variable compiles
// to insert chains (it is inlined from baseline code), so hot loops write vector * scalar instead.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "ops.h"
#include "vec8.h"

namespace cclip {

namespace {

struct AttentionArgs {
  const float* qkv;       // [rows, 3 * width]: the sequences' rows back to back
  const int* first_row;   // [n + 1]: sequence s is rows [first_row[s], first_row[s + 1])
  int n, width, heads;
  float* out;             // [rows, width], or [n, width] when last_only
  bool last_only;         // only the output of each sequence's last row
};

constexpr int kQueryRows = 4;  // query rows whose scores are computed together (sharing each K^T load)

#if defined(__GNUC__) || defined(__clang__)
typedef int32_t Int8v __attribute__((vector_size(32)));
CCLIP_ALWAYS_INLINE Vec8 select8(const Int8v& mask, const Vec8& a, const Vec8& b) { return (Vec8)((mask & (Int8v)a) | (~mask & (Int8v)b)); }
CCLIP_ALWAYS_INLINE float max_lane(const Vec8& v) {
  float m = v[0];
  for (int l = 1; l < 8; ++l) m = v[l] > m ? v[l] : m;
  return m;
}
// exp(x) for x <= 0 (~2 ulp; 0 below -87.3, where exp is subnormal): 2^n * p(r), |r| <= ln2/2, p minimax degree 6.
CCLIP_ALWAYS_INLINE Vec8 exp_nonpositive8(const Vec8& x) {
  const Int8v tiny = x < splat8(-87.3f);
  const Vec8 magic = splat8(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const Vec8 fn = (select8(tiny, splat8(-87.0f), x) * splat8(1.44269504088896341f) + magic) - magic;
  const Vec8 r = (x - fn * splat8(0.693145751953125f)) - fn * splat8(1.42860682030941723e-6f);  // ln2 hi + lo
  Vec8 e = splat8(1.383990864e-03f);
  e = e * r + splat8(8.368880488e-03f);
  e = e * r + splat8(4.166779667e-02f);
  e = e * r + splat8(1.666649580e-01f);
  e = e * r + splat8(4.999999702e-01f);
  e = e * r + splat8(1.0f);
  e = e * r + splat8(1.0f);
  const Int8v n = __builtin_convertvector(fn, Int8v);
  return select8(tiny, splat8(0.0f), e * (Vec8)((n + 127) << 23));
}
#endif

// Softmax numerators of one query row i over keys 0..i, in place (the row's scores, blocks of 8); returns their sum.
CCLIP_ALWAYS_INLINE float exp_scores(float* s, int i) {
#if defined(__GNUC__) || defined(__clang__)
  const int blocks = i / 8 + 1;
  const Vec8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  const Int8v keep = lane <= splat8(static_cast<float>(i % 8));  // lanes of the last block at or before i
  const Vec8 low = splat8(-3.0e38f);
  Vec8 m = low;
  for (int b = 0; b + 1 < blocks; ++b) {
    const Vec8 v = load8(s + 8 * b);
    m = select8(v > m, v, m);
  }
  const Vec8 last = select8(keep, load8(s + 8 * (blocks - 1)), low);
  m = select8(last > m, last, m);
  const Vec8 max_score = splat8(max_lane(m));
  Vec8 total = splat8(0.0f);
  for (int b = 0; b < blocks; ++b) {
    Vec8 e = exp_nonpositive8(load8(s + 8 * b) - max_score);
    if (b + 1 == blocks) e = select8(keep, e, splat8(0.0f));
    store8(s + 8 * b, e);
    total += e;
  }
  return lane_sum(total);
#else
  float max_score = s[0];
  for (int j = 1; j <= i; ++j) max_score = std::max(max_score, s[j]);
  float total = 0.f;
  for (int j = 0; j <= i; ++j) {
    s[j] = std::exp(s[j] - max_score);
    total += s[j];
  }
  return total;
#endif
}

// HD8 = head_dim / 8 when head_dim is a multiple of 8 (0: any head_dim, scalar P.V).
template <int HD8>
CCLIP_ALWAYS_INLINE void attend_head(const AttentionArgs& a, int seq, int head, float* key_t /* [hd, len8] */,
                                     float* scores /* [kQueryRows, len8] */) {
  const int head_dim = a.width / a.heads, first = a.first_row[seq], len = a.first_row[seq + 1] - first;
  const int len8 = (len + 7) / 8 * 8;
  const int64_t row = 3 * static_cast<int64_t>(a.width);
  const float* base = a.qkv + static_cast<int64_t>(first) * row + static_cast<int64_t>(head) * head_dim;
  const Vec8 scale = splat8(1.0f / std::sqrt(static_cast<float>(head_dim)));
  for (int d = 0; d < head_dim; ++d) {  // K^T [hd, len8], zero-padded to a whole block
    float* dst = key_t + static_cast<int64_t>(d) * len8;
    for (int j = 0; j < len; ++j) dst[j] = base[j * row + a.width + d];
    for (int j = len; j < len8; ++j) dst[j] = 0.f;
  }
  for (int i0 = a.last_only ? len - 1 : 0; i0 < len; i0 += kQueryRows) {
    const int rows = std::min(kQueryRows, len - i0);
    // scores[r] = q(i0 + r) . K^T * scale over the key blocks the last row needs (rows past len repeat the last).
    const float* q[kQueryRows];
    for (int r = 0; r < kQueryRows; ++r) q[r] = base + (i0 + std::min(r, rows - 1)) * row;
    const int blocks = (i0 + rows - 1) / 8 + 1;
    for (int b = 0; b < blocks; ++b) {
      Vec8 acc[kQueryRows];
      for (int r = 0; r < kQueryRows; ++r) acc[r] = splat8(0.f);
      const float* kt = key_t + 8 * b;
      for (int d = 0; d < head_dim; ++d) {
        const Vec8 kd = load8(kt + static_cast<int64_t>(d) * len8);
        for (int r = 0; r < kQueryRows; ++r) acc[r] += kd * q[r][d];  // vector * scalar: one broadcast (splat8 here became insert chains)
      }
      for (int r = 0; r < kQueryRows; ++r) store8(scores + r * len8 + 8 * b, acc[r] * scale);
    }
    for (int r = 0; r < rows; ++r) {
      const int i = i0 + r;
      float* p = scores + r * len8;
      const float inv_total = 1.0f / exp_scores(p, i);
      const int64_t out_row = a.last_only ? seq : static_cast<int64_t>(first) + i;
      float* o = a.out + out_row * a.width + static_cast<int64_t>(head) * head_dim;
      if constexpr (HD8 > 0) {
        Vec8 acc[HD8];
        for (int v = 0; v < HD8; ++v) acc[v] = splat8(0.f);
        for (int j = 0; j <= i; ++j) {
          const float* value = base + j * row + 2 * a.width;
          for (int v = 0; v < HD8; ++v) acc[v] += load8(value + 8 * v) * p[j];
        }
        for (int v = 0; v < HD8; ++v) store8(o + 8 * v, acc[v] * inv_total);
      } else {
        for (int d = 0; d < head_dim; ++d) o[d] = 0.f;
        for (int j = 0; j <= i; ++j) {
          const float pj = p[j] * inv_total;
          const float* value = base + j * row + 2 * a.width;
          for (int d = 0; d < head_dim; ++d) o[d] += pj * value[d];
        }
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

void run_attention(const AttentionArgs& args, ThreadPool& pool) {
  const int n = args.n, width = args.width, heads = args.heads;
  int len = 0;  // the longest sequence (sizes the scratch)
  for (int s = 0; s < n; ++s) {
    if (args.first_row[s + 1] <= args.first_row[s]) throw std::invalid_argument("causal attention: an empty sequence");
    len = std::max(len, args.first_row[s + 1] - args.first_row[s]);
  }
  auto* tasks_fn = &attend_tasks_portable;
#if CCLIP_X86_CLONES
  if (cpu_has_avx2_fma()) tasks_fn = &attend_tasks_avx2;
#endif
  const int len8 = (len + 7) / 8 * 8, head_dim = width / heads;
  pool.parallel_for(static_cast<int64_t>(n) * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> key_t(static_cast<size_t>(head_dim) * len8), scores(static_cast<size_t>(kQueryRows) * len8);
    tasks_fn(args, begin, end, key_t.data(), scores.data());
  });
}

}  // namespace

void causal_attention(const float* qkv, int n, int len, int width, int heads, float* out, ThreadPool& pool) {
  std::vector<int> first_row(static_cast<size_t>(n) + 1);
  for (int s = 0; s <= n; ++s) first_row[s] = s * len;
  causal_attention_packed(qkv, n, first_row.data(), width, heads, out, pool);
}

void causal_attention_packed(const float* qkv, int n, const int* first_row, int width, int heads, float* out,
                             ThreadPool& pool) {
  run_attention(AttentionArgs{qkv, first_row, n, width, heads, out, false}, pool);
}

void causal_attention_last(const float* qkv, int n, const int* first_row, int width, int heads, float* out,
                           ThreadPool& pool) {
  run_attention(AttentionArgs{qkv, first_row, n, width, heads, out, true}, pool);
}

}  // namespace cclip
