// What an engine (the portable core, libtorch) implements so that native/napi can expose it to JavaScript.
// No N-API types here: an engine is plain C++ and may throw cclip::Error (with a code) or any std::exception.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "../core/spec.h"
#include "../core/weights.h"  // ProgressFn

namespace cclip::napi {

struct EncodeResult {
  std::vector<float> features;  // [n, embed_dim]
  Captures captures;            // first row's intermediates when asked for
};

// A loaded model. Calls on one engine never overlap (native/napi queues them), but they run on libuv worker
// threads, not the JS thread.
class Engine {
 public:
  virtual ~Engine() = default;
  // pixels: count floats = n x 3 x S x S; tokens: count ids = n x context_length.
  virtual EncodeResult encode_image(const float* pixels, int64_t count, int n, bool capture) = 0;
  virtual EncodeResult encode_text(const int32_t* tokens, int64_t count, int n, int context_length, bool capture) = 0;
  virtual double weight_bytes() const = 0;
  virtual Precision precision() const = 0;
  virtual const char* device() const { return "cpu"; }
  virtual int graphs_captured() const { return 0; }
};

// Builds an engine from a parsed load request on a worker thread, reporting progress as it reads.
using LoadFn = std::function<std::unique_ptr<Engine>(const LoadRequest& request, const ProgressFn& progress)>;

}  // namespace cclip::napi
