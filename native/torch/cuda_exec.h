// Per-model CUDA execution: its own stream, CUDA graphs captured per input-shape bucket. Opaque here so that
// files including this header need no CUDA headers (cuda_exec.cc with CUDA, cuda_stub.cc without).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cclip {

class CudaExec {
 public:
  // Creates a non-blocking stream on `device_index`; `graphs` enables CUDA graph capture in run().
  CudaExec(int device_index, bool graphs);
  ~CudaExec();
  CudaExec(const CudaExec&) = delete;
  CudaExec& operator=(const CudaExec&) = delete;

  // Whether this build has CUDA and a device is present; `why` says why not.
  static bool available(std::string* why);

  // Makes the model's device and stream current on this thread until destroyed (no-op for a null exec).
  class Scope {
   public:
    explicit Scope(CudaExec* exec);
    ~Scope();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };

  using Forward = std::function<at::Tensor(const std::vector<at::Tensor>& device_inputs)>;

  // forward(device copies of host_inputs) as a float32 CPU tensor. With graphs on, the first call for a `key`
  // (one per static input shape) warms up, captures a graph into a pool shared by the model's graphs, and
  // later calls copy the inputs into the graph's static inputs and replay it. A failed capture falls back
  // to eager runs for that key; an empty key always runs eagerly. Must run inside a Scope of this exec.
  at::Tensor run(const std::string& key, const std::vector<at::Tensor>& host_inputs, const Forward& forward);

  at::Device device() const;
  void synchronize();
  int graphs_captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cclip
