#include "resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <vector>

#include "threadpool.h"

// The weights must round exactly as Pillow's do: no fused multiply-add in the double arithmetic below.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace cclip {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images
constexpr int kHalf = 1 << (kPrecisionBits - 1);

double bicubic_weight(double x) {  // a = -0.5
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double bilinear_weight(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

inline uint8_t clip8(int v) {
  v >>= kPrecisionBits;  // arithmetic shift, as in Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Fixed-point weights for outputs [first, first + n) of a resize in_size -> out_size along one axis:
// output i reads inputs [start[i], start[i] + count[i]) with weights k[offset[i] ...].
struct Coeffs {
  std::vector<int> start, count;
  std::vector<size_t> offset;
  std::vector<int32_t> k;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc (box = (0, in_size)), for a range of outputs only.
Coeffs precompute(int in_size, int out_size, int first, int n, ResampleFilter filter) {
  double (*weight)(double) = filter == ResampleFilter::kBicubic ? bicubic_weight : bilinear_weight;
  const double base_support = filter == ResampleFilter::kBicubic ? 2.0 : 1.0;
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);  // Pillow's box is float
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = base_support * filterscale;
  const double ss = 1.0 / filterscale;

  Coeffs c;
  c.start.resize(n);
  c.count.resize(n);
  c.offset.resize(n);
  std::vector<double> w;
  for (int i = 0; i < n; ++i) {
    const int xx = first + i;
    const double center = in0 + (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    w.assign(std::max(xmax, 0), 0.0);
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = weight((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    c.start[i] = xmin;
    c.count[i] = std::max(xmax, 0);
    c.offset[i] = c.k.size();
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k.push_back(static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits)));
    }
  }
  return c;
}

// Runs fn(begin, end) over [0, n) rows, on the pool when the work (multiply-adds) is worth it.
void for_rows(ThreadPool* pool, int64_t n, double work, const std::function<void(int64_t, int64_t)>& fn) {
  constexpr double kParallelWork = 2e6;
  if (pool == nullptr || n < 2 || work < kParallelWork) {
    fn(0, n);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(n * kParallelWork / work / 4));
  pool->parallel_for(n, grain, fn);
}

// Horizontal pass: rows [row0, row0 + rows) of src -> dst [rows, n_out, C]. Blocks of kBlock rows are
// transposed to [column][row][channel] first, so each weight multiplies kBlock * C contiguous samples (a loop
// the compiler vectorizes) instead of C scattered ones. Same sums, same order: exact either way.
constexpr int kBlock = 8;

// The same pass one row at a time (for rows too wide to transpose in blocks).
template <int C>
void horizontal_rows(const PixelView& src, int row0, int rows, const Coeffs& h, uint8_t* dst, ThreadPool* pool) {
  const int n_out = static_cast<int>(h.start.size());
  const double work = static_cast<double>(rows) * static_cast<double>(h.k.size()) * C;
  for_rows(pool, rows, work, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* in = src.data + (row0 + r) * src.stride;
      uint8_t* out = dst + r * n_out * C;
      for (int xx = 0; xx < n_out; ++xx) {
        const int32_t* k = h.k.data() + h.offset[xx];
        const uint8_t* p = in + static_cast<int64_t>(h.start[xx]) * C;
        int32_t ss[C];
        for (int ch = 0; ch < C; ++ch) ss[ch] = kHalf;
        for (int x = 0; x < h.count[xx]; ++x) {
          for (int ch = 0; ch < C; ++ch) ss[ch] += p[x * C + ch] * k[x];
        }
        for (int ch = 0; ch < C; ++ch) out[xx * C + ch] = clip8(ss[ch]);
      }
    }
  });
}

template <int C>
void horizontal(const PixelView& src, int row0, int rows, const Coeffs& h, uint8_t* dst, ThreadPool* pool) {
  constexpr int L = kBlock * C;
  const int n_out = static_cast<int>(h.start.size());
  int lo = src.width, hi = 0;  // the source columns any output reads
  for (int i = 0; i < n_out; ++i) {
    lo = std::min(lo, h.start[i]);
    hi = std::max(hi, h.start[i] + h.count[i]);
  }
  if (hi <= lo) lo = hi = 0;
  if (static_cast<int64_t>(hi - lo) * L > (int64_t{1} << 22)) return horizontal_rows<C>(src, row0, rows, h, dst, pool);
  const int blocks = (rows + kBlock - 1) / kBlock;
  const double work = static_cast<double>(rows) * static_cast<double>(h.k.size()) * C;
  for_rows(pool, blocks, work, [&](int64_t b0, int64_t b1) {
    std::vector<uint8_t> cols(static_cast<size_t>(hi - lo) * L);
    for (int64_t b = b0; b < b1; ++b) {
      const int r0 = static_cast<int>(b) * kBlock;
      const int n = std::min(kBlock, rows - r0);
      const uint8_t* in[kBlock];  // a short last block repeats its last row (those sums are not stored)
      for (int r = 0; r < kBlock; ++r) in[r] = src.data + (row0 + r0 + std::min(r, n - 1)) * src.stride + static_cast<int64_t>(lo) * C;
      uint8_t* to = cols.data();
      for (int x = 0; x < hi - lo; ++x) {
        for (int r = 0; r < kBlock; ++r) {
          for (int ch = 0; ch < C; ++ch) *to++ = in[r][x * C + ch];
        }
      }
      for (int xx = 0; xx < n_out; ++xx) {
        const int32_t* k = h.k.data() + h.offset[xx];
        const uint8_t* col = cols.data() + static_cast<size_t>(h.start[xx] - lo) * L;
        int32_t acc[L];
        for (int j = 0; j < L; ++j) acc[j] = kHalf;
        for (int x = 0; x < h.count[xx]; ++x, col += L) {
          const int32_t kx = k[x];
          for (int j = 0; j < L; ++j) acc[j] += col[j] * kx;
        }
        for (int r = 0; r < n; ++r) {
          uint8_t* out = dst + (static_cast<int64_t>(r0 + r) * n_out + xx) * C;
          for (int ch = 0; ch < C; ++ch) out[ch] = clip8(acc[r * C + ch]);
        }
      }
    }
  });
}

// Vertical pass: src rows (index 0 = source row `row0`) -> dst [n_out, src.width, channels].
void vertical(const PixelView& src, int row0, const Coeffs& v, uint8_t* dst, ThreadPool* pool) {
  const int n_out = static_cast<int>(v.start.size());
  const int64_t row_len = static_cast<int64_t>(src.width) * src.channels;
  const double work = static_cast<double>(v.k.size()) * static_cast<double>(row_len);
  for_rows(pool, n_out, work, [&](int64_t y0, int64_t y1) {
    std::vector<int> acc(row_len);
    for (int64_t yy = y0; yy < y1; ++yy) {
      std::fill(acc.begin(), acc.end(), kHalf);
      const int32_t* k = v.k.data() + v.offset[yy];
      for (int y = 0; y < v.count[yy]; ++y) {
        const uint8_t* in = src.data + static_cast<int64_t>(v.start[yy] - row0 + y) * src.stride;
        const int32_t ky = k[y];
        for (int64_t j = 0; j < row_len; ++j) acc[j] += in[j] * ky;
      }
      uint8_t* out = dst + yy * row_len;
      for (int64_t j = 0; j < row_len; ++j) out[j] = clip8(acc[j]);
    }
  });
}

// Pillow's NEAREST resize (ImagingScaleAffine): source index of each output in [first, first + n), or -1.
std::vector<int> nearest_index(int in_size, int out_size, int first, int n) {
  const double a = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  double xo = 0.0 + a * 0.5;  // accumulated exactly as Pillow does
  std::vector<int> idx(n);
  for (int x = 0; x < first + n; ++x) {
    if (x >= first) {
      const int xin = xo < 0.0 ? -1 : static_cast<int>(xo);
      idx[x - first] = xin < in_size ? xin : -1;
    }
    xo += a;
  }
  return idx;
}

void nearest(const PixelView& src, int out_w, int out_h, const Window& win, uint8_t* dst) {
  const int c = src.channels;
  const std::vector<int> xs = nearest_index(src.width, out_w, win.x, win.width);
  const std::vector<int> ys = nearest_index(src.height, out_h, win.y, win.height);
  for (int y = 0; y < win.height; ++y) {
    uint8_t* out = dst + static_cast<int64_t>(y) * win.width * c;
    if (ys[y] < 0) {
      std::memset(out, 0, static_cast<size_t>(win.width) * c);  // Pillow fills outside pixels with 0
      continue;
    }
    const uint8_t* in = src.data + ys[y] * src.stride;
    for (int x = 0; x < win.width; ++x) {
      if (xs[x] < 0) std::memset(out + x * c, 0, c);
      else std::memcpy(out + x * c, in + static_cast<int64_t>(xs[x]) * c, c);
    }
  }
}

}  // namespace

void resize_u8(const PixelView& src, int out_w, int out_h, ResampleFilter filter, const Window& win, uint8_t* dst,
               ThreadPool* pool) {
  const int c = src.channels;
  if (c < 1 || c > 4 || src.width < 1 || src.height < 1 || out_w < 1 || out_h < 1) {
    throw std::invalid_argument("resize_u8: bad image or output size");
  }
  if (win.width < 1 || win.height < 1 || win.x < 0 || win.y < 0 || win.x + win.width > out_w || win.y + win.height > out_h) {
    throw std::invalid_argument("resize_u8: window outside the output");
  }
  if (out_w == src.width && out_h == src.height) filter = ResampleFilter::kNearest;  // a copy either way
  if (filter == ResampleFilter::kNearest) {
    nearest(src, out_w, out_h, win, dst);
    return;
  }
  const bool need_h = out_w != src.width, need_v = out_h != src.height;

  // The vertical weights of the window's rows decide which source rows the horizontal pass must produce.
  Coeffs v;
  int row_first = win.y, row_last = win.y + win.height;
  if (need_v) {
    v = precompute(src.height, out_h, win.y, win.height, filter);
    row_first = src.height;
    row_last = 0;
    for (size_t i = 0; i < v.start.size(); ++i) {
      row_first = std::min(row_first, v.start[i]);
      row_last = std::max(row_last, v.start[i] + v.count[i]);
    }
  }
  const int rows = row_last - row_first;

  std::vector<uint8_t> temp;
  PixelView mid;  // [rows, win.width, c]: the horizontally resized (or unresized) source rows
  if (need_h) {
    const Coeffs h = precompute(src.width, out_w, win.x, win.width, filter);
    uint8_t* out = need_v ? (temp.resize(static_cast<size_t>(rows) * win.width * c), temp.data()) : dst;
    switch (c) {
      case 1: horizontal<1>(src, row_first, rows, h, out, pool); break;
      case 2: horizontal<2>(src, row_first, rows, h, out, pool); break;
      case 3: horizontal<3>(src, row_first, rows, h, out, pool); break;
      default: horizontal<4>(src, row_first, rows, h, out, pool); break;
    }
    if (!need_v) return;
    mid = PixelView{temp.data(), win.width, rows, c, static_cast<int64_t>(win.width) * c};
  } else {
    mid = PixelView{src.data + row_first * src.stride + static_cast<int64_t>(win.x) * c, win.width, rows, c, src.stride};
  }
  vertical(mid, row_first, v, dst, pool);
}

}  // namespace cclip
