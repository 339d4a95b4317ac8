#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace cclip {

namespace gemm_detail {
int isa_ceiling(const char* env) {
  return !env || !*env                          ? 3
         : std::strcmp(env, "generic") == 0    ? 0
         : std::strcmp(env, "avx2") == 0       ? 1
         : std::strcmp(env, "avx512") == 0     ? 2
         : std::strcmp(env, "avx512bf16") == 0 ? 4
         : std::strcmp(env, "amx") == 0        ? 5
                                               : 3;
}
}  // namespace gemm_detail

static CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS enabled the register state (XCR0).
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512f = f.avx2_fma && __builtin_cpu_supports("avx512f");
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
  f.avx512bf16 = f.avx512f && __builtin_cpu_supports("avx512bf16");
  f.bf16_dot_fast = f.avx512bf16 && __builtin_cpu_is("amd");
#endif
#if defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
  // The tile data state (XFEATURE_XTILEDATA, 18) is off until the process asks for it (Linux >= 5.16); a tile
  // instruction without it raises SIGILL.
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  f.amx_bf16 = f.avx512bf16 && __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("amx-tile") &&
               gemm_detail::ceiling_allows_amx(gemm_detail::isa_ceiling(std::getenv("CCLIP_GEMM_ISA"))) &&
               syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#endif
#endif
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace cclip
