// CUDA execution of one model: a stream of its own, and CUDA graphs captured per input-shape bucket into one
// memory pool shared by the model's graphs (safe: they replay one at a time, under the model's mutex, and
// each replay's output is copied out before the next).
#include "cuda_exec.h"

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/version.h>

#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace cclip {
namespace {

// Warm-up and capture of every model in the process, one at a time: a capture must not see another
// thread's allocations or syncs on the device.
std::mutex& capture_mutex() {
  static std::mutex m;
  return m;
}

struct GraphEntry {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  std::vector<at::Tensor> inputs;  // static device inputs
  at::Tensor output;               // static device output
  bool eager = false;              // capture failed: run this key eagerly
};

}  // namespace

struct CudaExec::Impl {
  int device_index = 0;
  cudaStream_t raw = nullptr;
  std::optional<c10::cuda::CUDAStream> stream;
  bool graphs = true;
  decltype(at::cuda::graph_pool_handle()) pool;
  std::map<std::string, GraphEntry> entries;
  int captured = 0;

  std::vector<at::Tensor> to_device(const std::vector<at::Tensor>& host) const {
    std::vector<at::Tensor> out;
    for (const auto& h : host) out.push_back(h.to(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index))));
    return out;
  }

  void capture(GraphEntry& e, const std::vector<at::Tensor>& host, const Forward& forward) {
    std::lock_guard<std::mutex> lock(capture_mutex());
    e.inputs = to_device(host);
    // Warm-up on this stream: cuBLAS handles and workspaces, kernel selection, allocator blocks.
    for (int i = 0; i < 2; i++) forward(e.inputs);
    stream->synchronize();
    e.graph = std::make_unique<at::cuda::CUDAGraph>();
    try {
#if TORCH_VERSION_MAJOR >= 2
      e.graph->capture_begin(pool, cudaStreamCaptureModeThreadLocal);
#else
      e.graph->capture_begin(pool);
#endif
      try {
        e.output = forward(e.inputs);
      } catch (...) {
        try {
          e.graph->capture_end();
        } catch (...) {
        }
        throw;
      }
      e.graph->capture_end();
      captured++;
    } catch (const std::exception&) {
      // Something in the forward pass cannot be captured here: keep this shape eager.
      e.graph.reset();
      e.output = at::Tensor();
      e.inputs.clear();
      e.eager = true;
      cudaGetLastError();  // clear a sticky capture error, if any
    }
  }
};

CudaExec::CudaExec(int device_index, bool graphs) : impl_(std::make_unique<Impl>()) {
  std::string why;
  if (!available(&why)) throw std::runtime_error(why);
  if (device_index < 0 || device_index >= static_cast<int>(c10::cuda::device_count())) {
    throw std::runtime_error("CUDA device " + std::to_string(device_index) + " does not exist");
  }
  impl_->device_index = device_index;
  impl_->graphs = graphs;
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_index));
  cudaError_t err = cudaStreamCreateWithFlags(&impl_->raw, cudaStreamNonBlocking);
  if (err != cudaSuccess) throw std::runtime_error(std::string("cudaStreamCreate: ") + cudaGetErrorString(err));
  impl_->stream = c10::cuda::getStreamFromExternal(impl_->raw, static_cast<c10::DeviceIndex>(device_index));
  impl_->pool = at::cuda::graph_pool_handle();
}

CudaExec::~CudaExec() {
  if (!impl_ || !impl_->raw) return;
  c10::cuda::CUDAStreamGuard guard(*impl_->stream);
  impl_->stream->synchronize();
  impl_->entries.clear();  // graphs and their pool go first
  c10::cuda::CUDACachingAllocator::emptyCache();
  cudaStreamDestroy(impl_->raw);
}

bool CudaExec::available(std::string* why) {
  if (c10::cuda::device_count() > 0) return true;
  if (why) *why = "no CUDA device is visible (torch found none)";
  return false;
}

struct CudaExec::Scope::Impl {
  std::optional<c10::cuda::CUDAStreamGuard> guard;
};

CudaExec::Scope::Scope(CudaExec* exec) : impl_(std::make_unique<Impl>()) {
  if (exec) impl_->guard.emplace(*exec->impl_->stream);
}
CudaExec::Scope::~Scope() = default;

at::Tensor CudaExec::run(const std::string& key, const std::vector<at::Tensor>& host_inputs, const Forward& forward) {
  Impl& m = *impl_;
  if (!m.graphs || key.empty()) return forward(m.to_device(host_inputs)).to(at::kFloat).cpu();
  GraphEntry& e = m.entries[key];
  if (!e.graph && !e.eager) m.capture(e, host_inputs, forward);
  if (e.eager) return forward(m.to_device(host_inputs)).to(at::kFloat).cpu();
  for (size_t i = 0; i < host_inputs.size(); i++) e.inputs[i].copy_(host_inputs[i]);
  e.graph->replay();
  return e.output.to(at::kFloat).cpu();
}

at::Device CudaExec::device() const { return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(impl_->device_index)); }

void CudaExec::synchronize() { impl_->stream->synchronize(); }

int CudaExec::graphs_captured() const { return impl_->captured; }

}  // namespace cclip
