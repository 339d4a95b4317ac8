// Internals of gemm.cc shared with the instruction-set variants (gemm_kernels.h) and the tests.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu_features.h"
#include "gemm.h"

namespace cclip {
namespace gemm_detail {

// One instruction-set variant: an MR x NR register tile and its cache blocking.
struct KernelSet {
  const char* name;
  int mr, nr;      // register tile: rows of x x columns of W
  int mc, kc, nc;  // cache blocks (maxima): rows of x per A block, K per pass, columns per C block
  // Packs rows [0, rows) of x (row stride ldx), columns [k0, k0 + kc), into panels of MR rows:
  // dst[ceil(rows / MR)][kc][MR] (the padding rows of the last panel are never read back). The bf16_dot variants
  // pack their own layouts into at most round_up(rows, MR) * round_up(kc, k_align) float slots (gemm_amx.cc: K
  // steps of 32, its padding rows and columns zero).
  void (*pack_a)(const float* x, size_t ldx, int rows, int k0, int kc, float* dst);
  // C[rows, panels * NR] (=, or += when accumulate) A . B for one K pass. a: from pack_a; b: the first of
  // `panels` weight panels at this pass's k0 (float, or uint16_t when bf16), b_stride elements apart.
  void (*macro)(int rows, int panels, int kc, const float* a, const void* b, size_t b_stride, bool bf16, float* c,
                int ldc, bool accumulate);
  // y[r, j] = residual[r, j] + scale[j] * act(c[r, j] + bias[j]) for r < rows, j < cols; y and residual rows
  // are ldy apart (residual may alias y; bias/scale/residual may be null).
  void (*epilogue)(const float* c, int ldc, int rows, int cols, float* y, size_t ldy, const float* residual,
                   const float* bias, const float* scale, bool gelu);
  float (*gelu1)(float x);
  // Variants for bf16 weights only (bf16_dot): activations are packed as bf16 pairs too, W panels pair each
  // column's k and k + 1 ([ceil(K / 2)][NR][2]), so K passes start at multiples of k_align; fp32 weights go to
  // for_f32 instead.
  int k_align = 1;
  bool bf16_dot = false;
  const KernelSet* for_f32 = nullptr;
  // K per pass when the rows stream (linear_stream), if not kc. Only for a variant whose results do not depend on
  // the pass length (amx: its accumulators pass through memory unrounded between passes), so that a row's result
  // still does not depend on the batch; 0: kc.
  int kc_stream = 0;
};

// A variant for bf16 weights only (bf16_dot) built on an fp32 one: `f32`'s epilogue, GELU and nc, which also takes
// the fp32 weights (for_f32); its own tile, alignment, row and K blocks, packing of A and macro kernel.
inline KernelSet bf16_dot_variant(const KernelSet* f32, const char* name, int mr, int nr, int k_align, int mc, int kc,
                                  decltype(KernelSet::pack_a) pack_a, decltype(KernelSet::macro) macro,
                                  int kc_stream = 0) {
  KernelSet s = *f32;
  s.name = name;
  s.mr = mr;
  s.nr = nr;
  s.k_align = k_align;
  s.mc = mc;
  s.kc = kc;
  s.bf16_dot = true;
  s.for_f32 = f32;
  s.pack_a = pack_a;
  s.macro = macro;
  s.kc_stream = kc_stream;
  return s;
}

const KernelSet* kernels_generic();  // portable (GCC/Clang vector extensions, 16-byte vectors)
const KernelSet* kernels_avx2();     // x86-64 AVX2 + FMA, 6 x 16; null where not built
const KernelSet* kernels_avx512();   // x86-64 AVX-512F, 12 x 32; null where not built
const KernelSet* kernels_avx512bf16();  // x86-64 AVX512_BF16 (vdpbf16ps), 12 x 32, bf16 weights only; null where not built
const KernelSet* kernels_amx();         // x86-64 AMX-BF16 (tdpbf16ps), 32 x 32, bf16 weights only; null where not built
const KernelSet* kernels_neon();     // aarch64 NEON (vfmaq_f32, 32 registers), 12 x 8; null where not built
// The best variant this CPU runs for fp32 weights; CCLIP_GEMM_ISA=generic|avx2|avx512 in the environment narrows
// the choice (on aarch64: NEON unless CCLIP_GEMM_ISA=generic).
const KernelSet* best_kernels();
// The same for bf16 weights: amx where the CPU has AMX-BF16, else avx512bf16 where the CPU has it and its dot
// outpaces FMAs (cpu.bf16_dot_fast), when CCLIP_GEMM_ISA does not narrow the choice; CCLIP_GEMM_ISA=avx512bf16 takes
// the vdpbf16ps kernel wherever the CPU has it, CCLIP_GEMM_ISA=amx the AMX one (as unset).
const KernelSet* best_bf16_kernels();
// What the two above pick (the ceiling from cpu_features.h's isa_ceiling): the best variant built here that `cpu`
// runs under it.
const KernelSet* choose_kernels(int ceiling, const CpuFeatures& cpu, Precision precision);

PackedWeight pack_weight_with(const KernelSet* ks, const float* w, int n, int k, Precision precision);

}  // namespace gemm_detail
}  // namespace cclip
