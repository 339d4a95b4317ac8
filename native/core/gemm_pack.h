// Packing of W[N, K] into the kernels' panel layout (gemm.h, PackedWeight), from rows produced on demand (a
// checkpoint mapping converted and checked as it is packed) and in parallel over panels.
#pragma once
#include <functional>
#include <memory>

#include "gemm.h"
#include "threadpool.h"

namespace cclip {

// Rows [first, first + count) of W [N, K] in fp32, row-major: either a pointer to them where they already are,
// or `scratch` ([count, K], this thread's) filled and returned. May throw (the pack then throws it).
using WeightRows = std::function<const float*(int first, int count, float* scratch)>;

// Where this thread's packs put their bytes while a ScopedPackedMemory lives: a source of 64-byte-aligned memory of
// `bytes` that owns it (e.g. pages of a packed-cache file), or null to take the heap for this weight.
using PackedMemory = std::function<std::shared_ptr<void>(size_t bytes)>;
class ScopedPackedMemory {
 public:
  explicit ScopedPackedMemory(PackedMemory memory);
  ~ScopedPackedMemory();
  ScopedPackedMemory(const ScopedPackedMemory&) = delete;
  ScopedPackedMemory& operator=(const ScopedPackedMemory&) = delete;

 private:
  PackedMemory memory_;
  const PackedMemory* outer_;
};

// The packed W (bit-identical to pack_weight of the same values), panels spread over `pool` (null: this thread).
PackedWeight pack_weight_rows(int n, int k, Precision precision, const WeightRows& rows, ThreadPool* pool);
// The same from W in memory.
PackedWeight pack_weight_parallel(const float* w /* [N, K] */, int n, int k, Precision precision, ThreadPool* pool);

namespace gemm_detail {
struct KernelSet;
// The variant weights of `precision` are packed for (the best this CPU runs, as CCLIP_GEMM_ISA allows).
const KernelSet* kernels_for(Precision precision);
// W [n, k] as `ks` packs it, without the data: the variant that holds it (fp32 weights of a bf16-only variant go to
// its for_f32), panel width and byte size.
PackedWeight packed_layout(const KernelSet* ks, int n, int k, Precision precision);
// For one kernel variant (the tests pack for each).
PackedWeight pack_weight_rows_with(const KernelSet* ks, int n, int k, Precision precision, const WeightRows& rows,
                                   ThreadPool* pool);
PackedWeight pack_weight_parallel_with(const KernelSet* ks, const float* w, int n, int k, Precision precision,
                                       ThreadPool* pool);
}  // namespace gemm_detail

}  // namespace cclip
