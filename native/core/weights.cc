#include "weights.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "file_reader.h"
#include "gemm.h"
#include "gemm_pack.h"
#include "mapped_file.h"
#include "packed_cache.h"

namespace cclip {

namespace {

constexpr size_t kStagingBytes = 8u << 20;  // bounded read buffer: checkpoints never sit in memory whole

// No trained weight comes near this; squares of larger values overflow float32 (LayerNorm variance), so a
// tensor holding one is corrupt (or poisoned), as is one holding NaN or an infinity.
constexpr float kMaxWeightMagnitude = 1e18f;
constexpr size_t kCheckBlock = 8192;  // floats converted then checked at a time (32 KB: stays in L1/L2)
constexpr size_t kParallelFloats = 1u << 20;  // tensors at least this large are converted on the pool

size_t item_size(SourceDType dtype) { return source_item_size(dtype); }

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mantissa & 0x3ffu) << 13;
    }
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | mantissa << 13;
  } else {
    bits = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float load_element(const unsigned char* p, SourceDType dtype) {
  if (dtype == SourceDType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  if (dtype == SourceDType::F64) {
    double d;
    std::memcpy(&d, p, 8);
    return static_cast<float>(d);  // beyond float range becomes inf, refused by check_finite
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return dtype == SourceDType::BF16 ? bf16_to_float(h) : half_to_float(h);
}

void convert(const unsigned char* src, SourceDType dtype, size_t count, float* out) {
  if (dtype == SourceDType::F32) {
    std::memcpy(out, src, count * 4);
    return;
  }
  const size_t itemsize = item_size(dtype);
  for (size_t i = 0; i < count; ++i) out[i] = load_element(src + itemsize * i, dtype);
}

// Throws E_CHECKPOINT_CORRUPT naming the tensor when a value is NaN, infinite or beyond kMaxWeightMagnitude
// (NaN fails every comparison, so `!(|x| <= limit)` catches it too; the loop vectorises with plain SSE2).
void check_finite(const float* values, size_t count, const std::string& name, size_t first_index) {
  int bad = 0;
  for (size_t i = 0; i < count; ++i) bad |= !(std::fabs(values[i]) <= kMaxWeightMagnitude);
  if (!bad) return;
  size_t at = 0;
  while (at < count && std::fabs(values[at]) <= kMaxWeightMagnitude) ++at;
  const bool nan = std::isnan(values[at]);
  char value[32];
  std::snprintf(value, sizeof value, "%g", static_cast<double>(values[at]));
  throw Error("E_CHECKPOINT_CORRUPT", "tensor " + name + " holds " + (nan ? std::string("NaN") : "non-finite or overflowing") +
                                          " values (first at element " + std::to_string(first_index + at) + ": " + value +
                                          "); the checkpoint is corrupt");
}

int64_t element_count(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool is_contiguous(const TensorSource& src) {
  int64_t expected = 1;
  for (size_t i = src.shape.size(); i-- > 0;) {
    if (src.shape[i] != 1 && src.strides[i] != expected) return false;
    expected *= src.shape[i];
  }
  return true;
}

// Runs `parallel`; when it fails with E_CHECKPOINT_CORRUPT, runs `sequential`, which throws the error of the
// tensor's first bad element (what a one-thread load reports, whichever thread saw a bad value first).
template <class Parallel, class Sequential>
void first_bad_element_wins(const Parallel& parallel, const Sequential& sequential) {
  try {
    parallel();
  } catch (const Error& e) {
    if (std::strcmp(e.code(), "E_CHECKPOINT_CORRUPT") != 0) throw;
    sequential();
    throw;
  }
}

// Converts `count` contiguous elements at `src` (the tensor's elements from `first_index` on) into `out`,
// checking each block while it is in cache.
void convert_checked(const unsigned char* src, SourceDType dtype, size_t count, float* out, const std::string& name,
                     size_t first_index) {
  const size_t itemsize = item_size(dtype);
  for (size_t block = 0; block < count; block += kCheckBlock) {
    const size_t n = std::min(kCheckBlock, count - block);
    convert(src + block * itemsize, dtype, n, out + block);
    check_finite(out + block, n, name, first_index + block);
  }
}

}  // namespace

WeightLoader::WeightLoader(const std::vector<TensorSource>& sources,
                           const std::vector<std::pair<std::string, Shape>>& expected, ProgressFn progress,
                           ThreadPool* pool)
    : progress_(std::move(progress)), pool_(pool) {
  std::map<std::string, const TensorSource*> by_name;
  for (const TensorSource& s : sources) by_name[s.name] = &s;
  for (const auto& [name, shape] : expected) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw Error("E_TENSOR_MISSING", "checkpoint lacks tensor " + name);
    const TensorSource& src = *it->second;
    if (src.shape != shape) {
      throw Error("E_TENSOR_SHAPE", "tensor " + name + " has shape " + shape_to_string(src.shape) + ", expected " +
                               shape_to_string(shape));
    }
    if (src.strides.size() != src.shape.size()) throw Error("E_CHECKPOINT_CORRUPT", "tensor " + name + ": strides do not match its rank");
    const int64_t count = element_count(src.shape);
    if (count > 0) {
      uint64_t last = 0;
      for (size_t d = 0; d < src.shape.size(); ++d) {
        if (src.strides[d] < 0) throw Error("E_CHECKPOINT_CORRUPT", "tensor " + name + " has a negative stride");
        last += static_cast<uint64_t>(src.shape[d] - 1) * static_cast<uint64_t>(src.strides[d]);
      }
      if ((last + 1) * item_size(src.dtype) > src.byte_length) {
        throw Error("E_CHECKPOINT_CORRUPT", "tensor " + name + ": its shape and strides reach past its " +
                                 std::to_string(src.byte_length) + "-byte range");
      }
    }
    const FileReader& f = *file(src.file).reader;  // its size is the mapping's: checked here, at map time
    if (src.offset > f.size() || src.byte_length > f.size() - src.offset) {
      throw Error("E_CHECKPOINT_CORRUPT", "tensor " + name + " ends past the end of " + src.file + " (truncated?)");
    }
    sources_.emplace(name, src);
    total_bytes_ += src.byte_length;
  }
}

WeightLoader::~WeightLoader() = default;

const WeightLoader::OpenFile& WeightLoader::file(const std::string& path) {
  auto it = files_.find(path);
  if (it == files_.end()) {
    OpenFile f;
    f.reader = std::make_unique<FileReader>(path);
    f.mapping = MappedFile::map(*f.reader);
    it = files_.emplace(path, std::move(f)).first;
  }
  return it->second;
}

const MappedFile* WeightLoader::mapping_of(const TensorSource& src) const {
  auto it = files_.find(src.file);
  return it == files_.end() ? nullptr : it->second.mapping.get();
}

bool WeightLoader::mapped(const std::string& name) const { return mapping_of(source(name)) != nullptr; }

const TensorSource& WeightLoader::source(const std::string& name) const {
  auto it = sources_.find(name);
  if (it == sources_.end()) throw std::runtime_error("internal: tensor " + name + " was not declared expected");
  return it->second;
}

std::vector<float> WeightLoader::read(const std::string& name) {
  const TensorSource& src = source(name);
  std::vector<float> out(static_cast<size_t>(element_count(src.shape)));
  read_into(src, out.data());
  return out;
}

void WeightLoader::read_to(const std::string& name, float* out) { read_into(source(name), out); }

PackedWeight WeightLoader::read_packed(const std::string& name, int n, int k, Precision precision) {
  const TensorSource& src = source(name);
  if (element_count(src.shape) != static_cast<int64_t>(n) * k) {
    throw std::runtime_error("internal: tensor " + name + " has " + std::to_string(element_count(src.shape)) +
                             " elements, packed as [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  }
  return packed(name, n, k, precision, src.byte_length, [&] { return read_packed_from_checkpoint(src, n, k, precision); });
}

PackedWeight WeightLoader::packed(const std::string& key, int n, int k, Precision precision, uint64_t source_bytes,
                                  const std::function<PackedWeight()>& make) {
  PackedWeight w;
  if (cache_ && cache_->lookup(key, n, k, precision, &w)) {
    advance(source_bytes, true);
    return w;
  }
  if (!cache_) return make();
  {
    const ScopedPackedMemory into_file(cache_->file_memory());  // packed straight into the new cache file's pages
    w = make();
  }
  cache_->record(key, w);
  return w;
}

PackedWeight WeightLoader::read_packed_from_checkpoint(const TensorSource& src, int n, int k, Precision precision) {
  const MappedFile* mapping = mapping_of(src);
  if (!mapping || !is_contiguous(src) || n == 0 || k == 0) {  // pread (or strided) into the reused buffer, then pack
    const size_t count = static_cast<size_t>(n) * k;
    if (reused_.size() < count) reused_ = std::vector<float>(count);  // grows only
    read_into(src, reused_.data());
    return pack_weight_parallel(reused_.data(), n, k, precision, pool_);
  }
  // Panel by panel from the mapping: each panel's rows converted (F32 rows in place where aligned) and checked
  // while they are in cache, then packed.
  mapping->check_still_holds(src.offset + src.byte_length);
  const unsigned char* base = mapping->data() + src.offset;
  const size_t itemsize = item_size(src.dtype), row = static_cast<size_t>(k);
  const WeightRows rows = [&](int first, int count, float* scratch) -> const float* {
    const unsigned char* p = base + first * row * itemsize;
    const size_t elements = count * row;
    if (src.dtype == SourceDType::F32 && reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) {
      const float* values = reinterpret_cast<const float*>(p);
      check_finite(values, elements, src.name, first * row);
      return values;
    }
    convert_checked(p, src.dtype, elements, scratch, src.name, first * row);
    return scratch;
  };
  PackedWeight packed;
  first_bad_element_wins([&] { packed = pack_weight_rows(n, k, precision, rows, pool_); },
                         [&] {
                           std::vector<float> block(kCheckBlock);
                           for (size_t at = 0, total = row * n; at < total; at += kCheckBlock) {
                             const size_t count = std::min(kCheckBlock, total - at);
                             convert_checked(base + at * itemsize, src.dtype, count, block.data(), src.name, at);
                           }
                         });
  mapping->release(src.offset, src.byte_length);
  advance(src.byte_length, true);
  return packed;
}

void WeightLoader::read_into(const TensorSource& src, float* out) {
  const int64_t count = element_count(src.shape);
  if (count > 0) {
    const MappedFile* mapping = mapping_of(src);
    if (!is_contiguous(src)) {
      read_strided(src, out);
    } else if (mapping) {
      read_mapped(src, *mapping, out);
    } else {
      read_contiguous(src, out);
    }
  }
  advance(0, true);
}

void WeightLoader::read_mapped(const TensorSource& src, const MappedFile& mapping, float* out) {
  mapping.check_still_holds(src.offset + src.byte_length);
  const unsigned char* base = mapping.data() + src.offset;
  convert_on_pool(base, src, static_cast<size_t>(element_count(src.shape)), out, 0);
  mapping.release(src.offset, src.byte_length);
  advance(src.byte_length, false);
}

void WeightLoader::convert_on_pool(const unsigned char* from, const TensorSource& src, size_t count, float* out,
                                   size_t first_index) {
  if (!pool_ || pool_->size() < 2 || count < kParallelFloats) {
    convert_checked(from, src.dtype, count, out, src.name, first_index);
    return;
  }
  const size_t itemsize = item_size(src.dtype);
  const int64_t blocks = static_cast<int64_t>((count + kCheckBlock - 1) / kCheckBlock);
  first_bad_element_wins(
      [&] {
        pool_->parallel_for(blocks, 16, [&](int64_t b0, int64_t b1) {
          const size_t begin = b0 * kCheckBlock, end = std::min(count, static_cast<size_t>(b1) * kCheckBlock);
          convert_checked(from + begin * itemsize, src.dtype, end - begin, out + begin, src.name, first_index + begin);
        });
      },
      [&] { convert_checked(from, src.dtype, count, out, src.name, first_index); });
}

void WeightLoader::read_contiguous(const TensorSource& src, float* out) {
  const FileReader& f = *file(src.file).reader;
  if (staging_.empty()) staging_.resize(kStagingBytes);
  const size_t itemsize = item_size(src.dtype);
  const size_t total = out ? static_cast<size_t>(element_count(src.shape)) : 0;
  const size_t per_chunk = staging_.size() / itemsize;
  for (size_t done = 0; done < total;) {
    const size_t count = std::min(per_chunk, total - done);
    f.read_at(staging_.data(), count * itemsize, src.offset + done * itemsize);
    convert_on_pool(staging_.data(), src, count, out + done, done);  // earlier chunks passed: first bad is here
    done += count;
    advance(count * itemsize, false);
  }
  advance(src.byte_length - total * itemsize, false);
}

// Visits elements in order of increasing file position (dims sorted by stride), reading through a sliding
// window of the staging buffer; each element lands at its logical row-major index.
void WeightLoader::read_strided(const TensorSource& src, float* out) {
  const FileReader& f = *file(src.file).reader;
  if (staging_.empty()) staging_.resize(kStagingBytes);
  const size_t itemsize = item_size(src.dtype);
  const size_t rank = src.shape.size();
  std::vector<int64_t> logical_stride(rank);
  for (int64_t s = 1, d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
    logical_stride[d] = s;
    s *= src.shape[d];
  }
  std::vector<size_t> order(rank);  // outermost first in file order
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return src.strides[a] > src.strides[b]; });

  std::vector<int64_t> index(rank, 0);
  uint64_t window_begin = 0, window_end = 0;  // bytes relative to src.offset
  const int64_t count = element_count(src.shape);
  for (int64_t visited = 0; visited < count; ++visited) {
    uint64_t src_element = 0;
    int64_t dst = 0;
    for (size_t d = 0; d < rank; ++d) {
      src_element += static_cast<uint64_t>(index[d] * src.strides[d]);
      dst += index[d] * logical_stride[d];
    }
    const uint64_t byte = src_element * itemsize;
    if (byte < window_begin || byte + itemsize > window_end) {
      window_begin = byte;
      window_end = std::min<uint64_t>(src.byte_length, byte + staging_.size());
      f.read_at(staging_.data(), window_end - window_begin, src.offset + window_begin);
    }
    out[dst] = load_element(staging_.data() + (byte - window_begin), src.dtype);
    for (size_t o = rank; o-- > 0;) {  // next index, innermost file dim first
      const size_t d = order[o];
      if (++index[d] < src.shape[d]) break;
      index[d] = 0;
    }
  }
  check_finite(out, static_cast<size_t>(count), src.name, 0);
  advance(src.byte_length, false);
}

void WeightLoader::advance(uint64_t bytes, bool force_report) {
  loaded_bytes_ += bytes;
  if (!progress_) return;
  // Report about every 1% (and at each tensor's end) so the callback stays cheap.
  if (force_report ? loaded_bytes_ != last_reported_ : loaded_bytes_ - last_reported_ >= total_bytes_ / 100 + 1) {
    last_reported_ = loaded_bytes_;
    progress_(loaded_bytes_, total_bytes_);
  }
}

}  // namespace cclip
