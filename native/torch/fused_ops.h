// ATen-facing wrappers of the raw-pointer CUDA kernels in kernels/ (fused_ops_cuda.cc; stubs without CUDA).
#pragma once
#include <ATen/ATen.h>

#include "weights.h"

namespace cclip {

// Whether this build has the CUDA kernels.
bool fused_kernels_built();

// x: [n, H, W, C] contiguous CUDA tensor (float or bfloat16) -> LayerNorm_C(dwconv7x7(x) + conv bias), same shape/dtype.
at::Tensor dwconv7_layernorm(const at::Tensor& x, const ConvBlock& b, double eps);

}  // namespace cclip
