#include "model.h"

#include "packed_cache.h"

#include <stdexcept>
#include <string>

namespace cclip {

namespace {
constexpr int kMaxBatch = 1 << 16;
constexpr int64_t kMaxActivationFloats = int64_t{1} << 31;  // 8 GiB for the largest activation of one call
}

ClipModel::ClipModel(const ClipConfig& config, Precision precision, int threads)
    : config_(config), precision_(precision), pool_(threads) {}

std::unique_ptr<ClipModel> ClipModel::load(const ClipConfig& config, const std::vector<TensorSource>& tensors,
                                           const LoadOptions& options, const ProgressFn& progress) {
  config.validate();
  if (options.threads < 0 || options.threads > 1024) throw std::runtime_error("threads must be in [0, 1024]");
  std::unique_ptr<ClipModel> model(new ClipModel(config, options.precision, options.threads));
  // The cache's key takes the checkpoint's state before the loader opens it, and its commit checks that state again,
  // so a file replaced or rewritten during the load never gets a cache file under a key it does not match.
  const std::unique_ptr<PackedCache> cache = PackedCache::open(options.packed_cache, tensors, options.precision);
  WeightLoader loader(tensors, expected_tensors(config), progress, &model->pool_);  // converts and packs on the model's threads
  loader.use_cache(cache.get());
  model->vision_.load(config.vision, config.embed_dim, loader, options.precision);
  model->text_.load(config.text, config.embed_dim, loader, options.precision);
  if (cache) cache->commit();  // best effort: a directory that cannot be written only loses the cache
  return model;
}

std::vector<float> ClipModel::encode_image(const float* pixels, int64_t pixel_count, int n, Captures* captures) {
  if (n <= 0 || n > kMaxBatch) throw std::runtime_error("image batch size must be in [1, " + std::to_string(kMaxBatch) + "], got " + std::to_string(n));
  const int64_t size = config_.vision.image_size;
  if (pixel_count != n * 3 * size * size) {
    throw std::runtime_error("pixels hold " + std::to_string(pixel_count) + " floats; " + std::to_string(n) +
                             " images of 3x" + std::to_string(size) + "x" + std::to_string(size) + " need " +
                             std::to_string(n * 3 * size * size));
  }
  // Activation rows are ints in the GEMM API: refuse batches whose stem output would not fit (split them).
  const int64_t stem_rows = static_cast<int64_t>(n) * (size / 4) * (size / 4);
  if (stem_rows * config_.vision.dims[0] > kMaxActivationFloats) {
    throw std::runtime_error("image batch of " + std::to_string(n) + " is too large for one call at " + std::to_string(size) +
                             " px; split it into smaller batches");
  }
  std::vector<float> features(static_cast<size_t>(n) * config_.embed_dim);
  std::lock_guard<std::mutex> lock(forward_mutex_);
  vision_.encode(pixels, n, features.data(), captures, pool_);
  return features;
}

std::vector<float> ClipModel::encode_text(const int32_t* tokens, int64_t token_count, int n, int context_length,
                                          Captures* captures) {
  if (n <= 0 || n > kMaxBatch) throw std::runtime_error("text batch size must be in [1, " + std::to_string(kMaxBatch) + "], got " + std::to_string(n));
  if (context_length != config_.text.context_length) {
    throw std::runtime_error("context length " + std::to_string(context_length) + " differs from the model's " +
                             std::to_string(config_.text.context_length));
  }
  if (token_count != static_cast<int64_t>(n) * context_length) {
    throw std::runtime_error("tokens hold " + std::to_string(token_count) + " ids; " + std::to_string(n) + " rows of " +
                             std::to_string(context_length) + " need " + std::to_string(static_cast<int64_t>(n) * context_length));
  }
  if (token_count * 4 * config_.text.width > kMaxActivationFloats) {
    throw std::runtime_error("text batch of " + std::to_string(n) + " is too large for one call; split it into smaller batches");
  }
  std::vector<float> features(static_cast<size_t>(n) * config_.embed_dim);
  std::lock_guard<std::mutex> lock(forward_mutex_);
  text_.encode(tokens, n, features.data(), captures, pool_);
  return features;
}

}  // namespace cclip
