// x86-64 variants of the GEMM kernels (gemm_kernels.h), compiled with function-level target attributes so the
// rest of the build stays baseline x86-64; gemm.cc picks one at run time (cpu_features).
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

// AVX2 + FMA: 6 x 16 tile = 12 ymm accumulators + 2 B vectors + 1 broadcast.
#define CCLIP_K_NS avx2
#define CCLIP_K_NAME "avx2"
#define CCLIP_K_TARGET __attribute__((target("avx2,fma")))
#define CCLIP_K_VBYTES 32
#define CCLIP_K_MR 6
#define CCLIP_K_MC 132  // A block 132 x 256 = 132 KB of a 512 KB L2
#define CCLIP_K_KC 256  // W panel 256 x 16 = 16 KB: half of a 32 KB L1
#define CCLIP_K_NC 256  // C scratch 132 x 256 = 132 KB
#define CCLIP_K_RCP_ESTIMATE(d) ((vf)_mm256_rcp_ps(d))
#define CCLIP_K_FMS(a, b, c) ((vf)_mm256_fmsub_ps(a, b, c))
#include "gemm_kernels.h"

// AVX-512F: 12 x 32 tile = 24 zmm accumulators. The same source as above at twice the width; the test suite
// runs this exact instantiation logic at 64-byte width on AVX2 hardware (gemm_test.cc, "wide" variant).
#define CCLIP_K_NS avx512
#define CCLIP_K_NAME "avx512"
#define CCLIP_K_TARGET __attribute__((target("avx512f,avx2,fma")))
#define CCLIP_K_VBYTES 64
#define CCLIP_K_MR 12
#define CCLIP_K_MC 264  // A block pass 264 x 128 = 132 KB of a >= 1 MB L2 (M = 256 is one block)
#define CCLIP_K_KC 128  // W panel 128 x 32 = 16 KB: half of a 32 KB L1
#define CCLIP_K_NC 384
#define CCLIP_K_RCP_ESTIMATE(d) ((vf)_mm512_maskz_rcp14_ps(static_cast<__mmask16>(0xffff), d))
#define CCLIP_K_FMS(a, b, c) ((vf)_mm512_fmsub_ps(a, b, c))
#include "gemm_kernels.h"

namespace cclip {
namespace gemm_detail {
const KernelSet* kernels_avx2() { return avx2::kernel_set(); }
const KernelSet* kernels_avx512() { return avx512::kernel_set(); }
}  // namespace gemm_detail
}  // namespace cclip

#endif  // __x86_64__
