// Scratch buffers kept between calls: the GEMM's per-thread packing buffers, and the towers' activations.
// Allocating ~40 MB per XXLarge image forward afresh costs about 1% of it: glibc hands blocks that large back to
// the kernel on free, so every call faults them in again.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <mutex>
#include <vector>

namespace cclip {

// An uninitialised, 64-byte-aligned float buffer that grows and is kept; reserve() does not preserve the contents.
class FloatBuffer {
 public:
  FloatBuffer() = default;
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;
  ~FloatBuffer() { std::free(data_); }
  float* reserve(size_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      void* p = nullptr;
      if (posix_memalign(&p, 64, std::max<size_t>(floats * sizeof(float), 64)) != 0) throw std::bad_alloc();
      data_ = static_cast<float*>(p);
      capacity_ = floats;
    }
    return data_;
  }
  size_t bytes() const { return capacity_ * sizeof(float); }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

// Sets of N buffers, one per concurrent call: a Lease takes a free set (or a new one) and gives it back when it
// ends. At most kKeptSets sets of at most kKeptBytes each are kept, so a burst of large batches does not pin
// their activations; bigger sets are freed after use.
template <int N>
class ScratchPool {
 public:
  static constexpr size_t kKeptBytes = size_t{128} << 20;
  static constexpr size_t kKeptSets = 2;

  struct Set {
    FloatBuffer buffer[N];
    size_t bytes() const {
      size_t total = 0;
      for (const FloatBuffer& b : buffer) total += b.bytes();
      return total;
    }
  };

  class Lease {
   public:
    explicit Lease(ScratchPool& pool) : pool_(pool) {
      std::lock_guard<std::mutex> lock(pool_.mutex_);
      if (!pool_.free_.empty()) {
        set_ = std::move(pool_.free_.back());
        pool_.free_.pop_back();
      }
      if (!set_) set_.reset(new Set);
    }
    ~Lease() {
      if (set_->bytes() > kKeptBytes) return;
      std::lock_guard<std::mutex> lock(pool_.mutex_);
      if (pool_.free_.size() < kKeptSets) pool_.free_.push_back(std::move(set_));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    FloatBuffer& operator[](int i) { return set_->buffer[i]; }

   private:
    ScratchPool& pool_;
    std::unique_ptr<Set> set_;
  };

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Set>> free_;
};

}  // namespace cclip
