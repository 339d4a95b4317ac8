// aarch64 variant of the GEMM kernels (gemm_kernels.h), picked at compile time: NEON is part of every aarch64
// CPU. Its 32 vector registers hold a 12 x 8 tile (24 accumulators + 2 B vectors + 1 broadcast), twice the rows
// of the portable 6 x 8 one sized for 16 registers; the products are explicit vfmaq_f32 and the bf16 weights are
// widened with NEON shifts and masks. gemm.cc prefers it unless CCLIP_GEMM_ISA=generic.
#include "gemm_internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#define CCLIP_K_NS neon
#define CCLIP_K_NAME "neon"
#define CCLIP_K_TARGET
#define CCLIP_K_VBYTES 16
#define CCLIP_K_MR 12
#define CCLIP_K_MC 144  // A block 144 x 256 = 144 KB: within the 512 KB - 2 MB L2 of Graviton / Cortex-A76 / M1
#define CCLIP_K_KC 256  // W panel 256 x 8 = 8 KB of a 64 KB L1
#define CCLIP_K_NC 256
#define CCLIP_K_FMA(a, b, c) ((vf)vfmaq_f32((float32x4_t)(c), (float32x4_t)(a), (float32x4_t)(b)))
// a * b - c, exact: -(c - a * b) with one rounding.
#define CCLIP_K_FMS(a, b, c) ((vf)vnegq_f32(vfmsq_f32((float32x4_t)(c), (float32x4_t)(a), (float32x4_t)(b))))
#define CCLIP_K_BF16_LO(w) ((vf)vreinterpretq_f32_u32(vshlq_n_u32((uint32x4_t)(w), 16)))
#define CCLIP_K_BF16_HI(w) ((vf)vreinterpretq_f32_u32(vandq_u32((uint32x4_t)(w), vdupq_n_u32(0xffff0000u))))
#include "gemm_kernels.h"

namespace cclip {
namespace gemm_detail {
const KernelSet* kernels_neon() { return neon::kernel_set(); }
}  // namespace gemm_detail
}  // namespace cclip

#endif  // __aarch64__
