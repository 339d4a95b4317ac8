// A loaded CLIP model on one device: weights, optional CUDA execution, and the two encoders.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "arch.h"
#include "cuda_exec.h"
#include "forward.h"
#include "weights.h"

namespace cclip {

struct Options {
  bool cuda = false;    // device 'cuda' (else 'cpu')
  bool bf16 = false;    // precision 'bf16': bf16 weights; bf16 compute on CUDA, fp32 compute on the CPU
  int threads = 0;      // CPU threads for ATen and BLAS; 0 = all cores
  bool graphs = true;   // CUDA graphs per batch-size bucket (CUDA only)
  bool fused = true;    // fused CUDA kernels (CUDA only)
  int device_index = 0;
};

struct Output {
  at::Tensor features;  // [n, D] float32 CPU
  Captures intermediates;
};

class Model {
 public:
  static std::shared_ptr<Model> load(const Arch& arch, const std::vector<TensorSpec>& specs, const Options& options, const ProgressFn& progress);
  ~Model();

  // pixels: [n, 3, S, S] float32, normalized. Thread-safe (calls on one model run one at a time).
  Output encode_image(const float* pixels, int64_t n, bool capture);
  // tokens: [n, context_length] ids in [0, vocab_size).
  Output encode_text(const int32_t* tokens, int64_t n, int64_t context_length, bool capture);

  int64_t weight_bytes() const { return weights_.bytes; }
  const Options& options() const { return options_; }
  const Arch& arch() const { return arch_; }
  int graphs_captured() const { return exec_ ? exec_->graphs_captured() : 0; }

 private:
  Model(const Arch& arch, const Options& options);
  void set_threads() const;

  Arch arch_;
  Options options_;
  at::Device device_;
  at::ScalarType dtype_;    // weights
  at::ScalarType compute_;  // activations: bf16 on CUDA; fp32 on the CPU (bf16 weights are cast per use there)
  std::unique_ptr<CudaExec> exec_;
  Weights weights_;
  std::mutex mutex_;
};

// Sets ATen's (this thread's) and OpenBLAS's thread counts; 0 = all cores.
void set_cpu_threads(int threads);

}  // namespace cclip
