// ATen wrappers of the CUDA kernels: checks, output allocation, launch on the current stream.
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "dwconv_ln.h"
#include "fused_ops.h"

namespace cclip {

bool fused_kernels_built() { return true; }

at::Tensor dwconv7_layernorm(const at::Tensor& x, const ConvBlock& b, double eps) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 4 && x.is_contiguous(), "dwconv7_layernorm: x must be a contiguous [n, H, W, C] CUDA tensor");
  TORCH_CHECK(b.tap_w32.defined(), "dwconv7_layernorm: the fused weights were not loaded");
  const int64_t n = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
  if (c > kernels::dwconv7_layernorm_max_channels() || n > 65535 || h > 65535) {  // outside the kernel's limits: ATen ops
    at::Tensor y = at::conv2d(x.permute({0, 3, 1, 2}), b.dw_w, b.dw_b, 1, 3, 1, c);
    return at::layer_norm(y.permute({0, 2, 3, 1}).contiguous(), {c}, b.norm.w, b.norm.b, eps);
  }
  kernels::ActType type;
  if (x.scalar_type() == at::kFloat) {
    type = kernels::ActType::kF32;
  } else if (x.scalar_type() == at::kBFloat16) {
    type = kernels::ActType::kBF16;
  } else {
    TORCH_CHECK(false, "dwconv7_layernorm: x must be float32 or bfloat16, got ", x.scalar_type());
  }
  at::Tensor y = at::empty_like(x);  // [n, H, W, C]
  const int err = kernels::dwconv7_layernorm(type, x.data_ptr(), b.tap_w32.data_ptr<float>(), b.dw_b32.data_ptr<float>(), b.norm_w32.data_ptr<float>(),
                                             b.norm_b32.data_ptr<float>(), y.data_ptr(), static_cast<int>(n), static_cast<int>(h), static_cast<int>(w),
                                             static_cast<int>(c), static_cast<float>(eps), c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == 0, "dwconv7_layernorm kernel: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
  return y;
}

}  // namespace cclip
