// Runtime CPU feature detection (x86-64 only; every query is false elsewhere). Cached after the first call.
#pragma once

namespace cclip {

struct CpuFeatures {
  bool avx2_fma = false;    // AVX2 + FMA3 (and the OS saves ymm state)
  bool avx512f = false;     // AVX-512 F (and the OS saves zmm state)
  bool avx512bf16 = false;  // AVX-512 BF16 (vdpbf16ps)
  // vdpbf16ps does more multiply-adds per cycle than fp32 FMAs: AMD (Zen 4/5, twice). Not Intel: on Emerald Rapids
  // it runs at half the zmm FMA rate (bench/limits.cc: 81 against 164 GFLOP/s on one core).
  bool bf16_dot_fast = false;
  // AMX-BF16 tiles (tdpbf16ps), and Linux granted this process their state (arch_prctl ARCH_REQ_XCOMP_PERM, asked
  // only where CCLIP_GEMM_ISA leaves the AMX kernel in the choice).
  bool amx_bf16 = false;
};

const CpuFeatures& cpu_features();

namespace gemm_detail {
// CCLIP_GEMM_ISA's value as a ceiling on the GEMM variants (0 generic, 1 avx2 / NEON, 2 avx512, 3 none (unset or
// unknown), 4 avx512bf16 even where its dot is slow or AMX is there, 5 amx).
int isa_ceiling(const char* env);
// Whether a ceiling leaves the AMX kernel in the choice: none, or amx.
inline bool ceiling_allows_amx(int ceiling) { return ceiling == 3 || ceiling == 5; }
}  // namespace gemm_detail

}  // namespace cclip
