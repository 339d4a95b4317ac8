// Runtime CPU feature detection (x86-64 only; every query is false elsewhere). Cached after the first call.
#pragma once

namespace cclip {

struct CpuFeatures {
  bool avx2_fma = false;    // AVX2 + FMA3 (and the OS saves ymm state)
  bool avx512f = false;     // AVX-512 F (and the OS saves zmm state)
  bool avx512bf16 = false;  // AVX-512 BF16 (vdpbf16ps)
};

const CpuFeatures& cpu_features();

}  // namespace cclip
