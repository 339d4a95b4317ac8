// A loaded CLIP model on one device: weights, optional CUDA execution, and the two encoders.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_exec.h"
#include "forward.h"
#include "weights.h"

namespace cclip {

// The core's LoadOptions: device 'cuda' or the CPU; precision bf16 means bf16 weights, with bf16 compute on
// CUDA and fp32 compute on the CPU; threads for ATen and BLAS (0 = all cores); graphs per batch-size bucket
// and fused kernels on CUDA only.
using Options = LoadOptions;

struct Output {
  at::Tensor features;  // [n, D] float32 CPU
  TensorCaptures intermediates;
};

class Model {
 public:
  static std::shared_ptr<Model> load(const ClipConfig& config, const std::vector<TensorSource>& sources, const Options& options, const ProgressFn& progress);
  ~Model();

  // pixels: [n, 3, S, S] float32, normalized. Thread-safe (calls on one model run one at a time).
  Output encode_image(const float* pixels, int64_t n, bool capture);
  // tokens: [n, context_length] ids in [0, vocab_size).
  Output encode_text(const int32_t* tokens, int64_t n, int64_t context_length, bool capture);

  int64_t weight_bytes() const { return weights_.bytes; }
  const Options& options() const { return options_; }
  const ClipConfig& config() const { return config_; }
  bool bf16() const { return options_.precision == Precision::BF16; }
  int graphs_captured() const { return exec_ ? exec_->graphs_captured() : 0; }

 private:
  Model(const ClipConfig& config, const Options& options);
  void set_threads() const;

  ClipConfig config_;
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
