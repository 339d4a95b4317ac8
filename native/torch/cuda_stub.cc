// A build without CUDA: the CUDA pieces report that they are absent.
#include <stdexcept>

#include "cuda_exec.h"
#include "fused_ops.h"

namespace cclip {

static const char* kNoCuda = "this build of the torch addon has no CUDA support (rebuild against a CUDA libtorch; -DCCLIP_CUDA=ON)";

struct CudaExec::Impl {};
struct CudaExec::Scope::Impl {};

CudaExec::CudaExec(int, bool) { throw std::runtime_error(kNoCuda); }
CudaExec::~CudaExec() = default;
bool CudaExec::available(std::string* why) {
  if (why) *why = kNoCuda;
  return false;
}
CudaExec::Scope::Scope(CudaExec*) {}
CudaExec::Scope::~Scope() = default;
at::Tensor CudaExec::run(const std::string&, const std::vector<at::Tensor>&, const Forward&) { throw std::runtime_error(kNoCuda); }
at::Device CudaExec::device() const { return at::Device(at::kCPU); }
void CudaExec::synchronize() {}
int CudaExec::graphs_captured() const { return 0; }

bool fused_kernels_built() { return false; }
at::Tensor dwconv7_layernorm(const at::Tensor&, const ConvBlock&, double) { throw std::runtime_error(kNoCuda); }

}  // namespace cclip
