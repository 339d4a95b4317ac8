// The model contract every engine shares (native addon, wasm module, torch addon, GPU tools): the
// architecture of an OpenCLIP ConvNeXt CLIP model (lib/architecture.ts ClipArchitecture), the tensors it
// reads (lib/manifest.ts TensorEntry), their validation, and the one JSON load request that carries them.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gemm.h"  // Precision

namespace cclip {

namespace json {
class Value;
}

// A failure with one of lib/errors.ts ClipErrorCode (E_CONFIG, E_TENSOR_MISSING, E_TENSOR_SHAPE,
// E_CHECKPOINT_CORRUPT, E_INVALID_ARGUMENT); the N-API and wasm layers hand the code to JavaScript.
class Error : public std::runtime_error {
 public:
  Error(const char* code, const std::string& message) : std::runtime_error(message), code_(code) {}
  const char* code() const { return code_; }

 private:
  const char* code_;
};

struct VisionConfig {
  int depths[4] = {0, 0, 0, 0};
  int dims[4] = {0, 0, 0, 0};
  float norm_eps = 1e-6f;
  int image_size = 0;
  bool proj_mlp = false;  // false: linear projection; true: fc1 + GELU + fc2
  bool proj_bias = false;
};

struct TextConfig {
  int width = 0, heads = 0, layers = 0, context_length = 0, vocab_size = 0;
  float norm_eps = 1e-5f;  // every LayerNorm of the text transformer (open_clip text_cfg.norm_kwargs.eps)
};

struct ClipConfig {
  int embed_dim = 0;
  VisionConfig vision;
  TextConfig text;

  // Throws Error(E_CONFIG) when a field is out of range or inconsistent.
  void validate() const;
};

using Shape = std::vector<int64_t>;
std::string shape_to_string(const Shape& shape);

// Intermediate activations of the first row, by name (image0.stem, text0.block3, ...), in capture order.
using Captures = std::vector<std::pair<std::string, std::vector<float>>>;

// Every tensor the towers read, with its shape, in load order (expectedTensors() in TypeScript, without
// logit_scale which the towers do not use).
std::vector<std::pair<std::string, Shape>> expected_tensors(const ClipConfig& config);

enum class SourceDType { F32, F16, BF16, F64 };
SourceDType parse_source_dtype(const std::string& dtype);  // throws Error(E_TENSOR_SHAPE) for other dtypes
size_t source_item_size(SourceDType dtype);

// Where one tensor's bytes live (lib/manifest.ts TensorEntry).
struct TensorSource {
  std::string name;
  SourceDType dtype = SourceDType::F32;
  Shape shape;
  Shape strides;  // in elements
  std::string file;
  uint64_t offset = 0;       // byte offset of element [0, 0, ...]
  uint64_t byte_length = 0;  // bytes from offset to one past the last element
};

// An input the GPU tools encode (pixels F32, tokens I64), contiguous row-major.
struct InputTensor {
  std::string name, dtype, file;
  Shape shape;
  uint64_t offset = 0, byte_length = 0;
};

// How to load: the fields every engine reads, and the torch engine's own (ignored by the others).
struct LoadOptions {
  Precision precision = Precision::F32;
  int threads = 0;  // 0: all hardware threads
  bool cuda = false;        // device 'cuda' (torch only)
  bool graphs = true;       // CUDA graphs (torch only)
  bool fused = true;        // fused CUDA kernels (torch only)
  int device_index = 0;     // (torch only)
  std::string packed_cache;  // directory of packed-weights files (packed_cache.h); empty: none (native and wasm cores)
};

// The load request, as JSON (lib/backends/load-request.ts writes it):
//   {"architecture": ClipArchitecture, "tensors": TensorEntry[],
//    "options": {"precision": "fp32"|"bf16", "threads"?, "device"?: "cpu"|"cuda", "graphs"?, "fused"?, "deviceIndex"?,
//                "packedCache"?: directory},
//    "sources"?: [{"file", "size"}]   (wasm: the byte size of each weight source, by the name tensors use)
//    "inputs"?: TensorEntry[]}        (GPU tools: pixels and tokens to encode)
// Unknown keys are refused, so a field one side adds and the other lacks fails loudly.
struct LoadRequest {
  ClipConfig config;
  std::vector<TensorSource> tensors;
  LoadOptions options;
  std::vector<std::pair<std::string, uint64_t>> sources;  // (file, bytes) in request order
  std::vector<InputTensor> inputs;
};

// Parses and validates (config ranges, option ranges); throws Error with the code of what is wrong.
LoadRequest parse_load_request(const std::string& text);

}  // namespace cclip
