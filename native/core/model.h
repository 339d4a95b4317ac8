// A loaded CLIP model: both towers, their thread pool, and a lock that runs one forward at a time.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "spec.h"
#include "convnext.h"
#include "text_transformer.h"
#include "threadpool.h"
#include "weights.h"

namespace cclip {

class ClipModel {
 public:
  // Validates the config and the tensor list, then reads and packs every weight. Throws std::runtime_error.
  static std::unique_ptr<ClipModel> load(const ClipConfig& config, const std::vector<TensorSource>& tensors,
                                         const LoadOptions& options, const ProgressFn& progress);

  // pixels: [n, 3, S, S] (pixel_count floats) -> [n, embed_dim].
  std::vector<float> encode_image(const float* pixels, int64_t pixel_count, int n, Captures* captures);
  // tokens: [n, context_length] (token_count ids) -> [n, embed_dim].
  std::vector<float> encode_text(const int32_t* tokens, int64_t token_count, int n, int context_length,
                                 Captures* captures);

  const ClipConfig& config() const { return config_; }
  Precision precision() const { return precision_; }
  size_t weight_bytes() const { return vision_.bytes() + text_.bytes(); }

 private:
  ClipModel(const ClipConfig& config, Precision precision, int threads);

  ClipConfig config_;
  Precision precision_;
  ThreadPool pool_;
  std::mutex forward_mutex_;  // one forward at a time: the pool runs one loop at a time anyway
  VisionTower vision_;
  TextTower text_;
};

}  // namespace cclip
