#include "spec.h"

#include <cmath>

#include "json.h"

namespace cclip {

namespace {

void check_range(int64_t value, int64_t lo, int64_t hi, const char* what) {
  if (value < lo || value > hi) {
    throw Error("E_CONFIG", std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                std::to_string(value));
  }
}

[[noreturn]] void bad_request(const std::string& why) { throw Error("E_INVALID_ARGUMENT", "load request: " + why); }

// Typed member access with the path in every message ("architecture.vision.dims[2] must be ...").
class Reader {
 public:
  Reader(const json::Value& v, std::string path) : v_(v), path_(std::move(path)) {
    if (!v.is_object()) bad_request(path_ + " must be an object");
  }

  // Refuses members not in `known` (a field added on one side only).
  void only(std::initializer_list<const char*> known) const {
    for (const auto& [key, value] : v_.members()) {
      bool ok = false;
      for (const char* k : known) ok = ok || key == k;
      if (!ok) bad_request(path_ + " has an unknown field \"" + key + "\"");
    }
  }

  const json::Value* optional(const char* key) const { return v_.find(key); }

  const json::Value& required(const char* key) const {
    const json::Value* m = v_.find(key);
    if (!m) bad_request(path_ + "." + key + " is missing");
    return *m;
  }

  Reader object(const char* key) const { return Reader(required(key), path_ + "." + key); }

  double number(const char* key) const { return number_of(required(key), path_ + "." + key); }
  int64_t integer(const char* key, int64_t lo, int64_t hi) const { return integer_of(required(key), path_ + "." + key, lo, hi); }
  bool boolean(const char* key, bool fallback) const {
    const json::Value* m = v_.find(key);
    if (!m) return fallback;
    if (!m->is_bool()) bad_request(path_ + "." + key + " must be a boolean");
    return m->as_bool();
  }
  std::string string(const char* key) const {
    const json::Value& m = required(key);
    if (!m.is_string()) bad_request(path_ + "." + key + " must be a string");
    return m.as_string();
  }
  Shape integers(const char* key, size_t max_count, int64_t lo, int64_t hi) const {
    const json::Value& m = required(key);
    const std::string where = path_ + "." + key;
    if (!m.is_array()) bad_request(where + " must be an array");
    if (m.items().size() > max_count) bad_request(where + " has more than " + std::to_string(max_count) + " entries");
    Shape out;
    for (size_t i = 0; i < m.items().size(); ++i) out.push_back(integer_of(m.items()[i], where + "[" + std::to_string(i) + "]", lo, hi));
    return out;
  }

  static double number_of(const json::Value& v, const std::string& where) {
    if (!v.is_number()) bad_request(where + " must be a number");
    return v.as_number();
  }
  static int64_t integer_of(const json::Value& v, const std::string& where, int64_t lo, int64_t hi) {
    const double d = number_of(v, where);
    if (std::floor(d) != d || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
      bad_request(where + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(d));
    }
    return static_cast<int64_t>(d);
  }

 private:
  const json::Value& v_;
  std::string path_;
};

constexpr int64_t kMaxSafeInteger = (int64_t{1} << 53) - 1;

ClipConfig config_from(const Reader& arch) {
  arch.only({"embedDim", "vision", "text"});
  ClipConfig c;
  c.embed_dim = static_cast<int>(arch.integer("embedDim", 1, 1 << 16));
  const Reader v = arch.object("vision");
  v.only({"timmModelName", "depths", "dims", "normEps", "imageSize", "proj", "projBias"});
  const Shape depths = v.integers("depths", 4, 1, 1 << 10), dims = v.integers("dims", 4, 1, 1 << 16);
  if (depths.size() != 4 || dims.size() != 4) bad_request("architecture.vision depths and dims need 4 entries");
  for (int s = 0; s < 4; ++s) {
    c.vision.depths[s] = static_cast<int>(depths[s]);
    c.vision.dims[s] = static_cast<int>(dims[s]);
  }
  c.vision.norm_eps = static_cast<float>(v.number("normEps"));
  c.vision.image_size = static_cast<int>(v.integer("imageSize", 1, 1 << 14));
  const std::string proj = v.string("proj");
  if (proj != "linear" && proj != "mlp") bad_request("architecture.vision.proj must be 'linear' or 'mlp', got '" + proj + "'");
  c.vision.proj_mlp = proj == "mlp";
  c.vision.proj_bias = v.boolean("projBias", false);
  const Reader t = arch.object("text");
  t.only({"width", "heads", "layers", "contextLength", "vocabSize", "normEps"});
  c.text.width = static_cast<int>(t.integer("width", 1, 1 << 16));
  c.text.heads = static_cast<int>(t.integer("heads", 1, 1024));
  c.text.layers = static_cast<int>(t.integer("layers", 1, 1024));
  c.text.context_length = static_cast<int>(t.integer("contextLength", 1, 1 << 16));
  c.text.vocab_size = static_cast<int>(t.integer("vocabSize", 1, 1 << 24));
  c.text.norm_eps = static_cast<float>(t.number("normEps"));
  c.validate();
  return c;
}

// The fields a weight (TensorSource) and an input (InputTensor) share: where the bytes are and their shape.
template <typename T>
T located(const Reader& e) {
  T t;
  t.name = e.string("name");
  t.shape = e.integers("shape", 8, 0, int64_t{1} << 40);
  t.file = e.string("file");
  t.offset = static_cast<uint64_t>(e.integer("offset", 0, kMaxSafeInteger));
  t.byte_length = static_cast<uint64_t>(e.integer("byteLength", 0, kMaxSafeInteger));
  return t;
}

TensorSource tensor_from(const Reader& e) {
  e.only({"name", "dtype", "shape", "strides", "file", "offset", "byteLength"});
  TensorSource t = located<TensorSource>(e);
  t.dtype = parse_source_dtype(e.string("dtype"));
  t.strides = e.integers("strides", 8, 0, int64_t{1} << 50);
  if (t.strides.size() != t.shape.size()) bad_request("tensor " + t.name + ": strides do not match its rank");
  return t;
}

InputTensor input_from(const Reader& e) {
  e.only({"name", "dtype", "shape", "file", "offset", "byteLength"});
  InputTensor t = located<InputTensor>(e);
  t.dtype = e.string("dtype");
  return t;
}

LoadOptions options_from(const Reader& o) {
  o.only({"precision", "threads", "device", "graphs", "fused", "deviceIndex", "packedCache"});
  LoadOptions opt;
  const std::string precision = o.string("precision");
  if (precision != "fp32" && precision != "bf16") bad_request("options.precision must be 'fp32' or 'bf16', got '" + precision + "'");
  opt.precision = precision == "bf16" ? Precision::BF16 : Precision::F32;
  if (o.optional("threads")) opt.threads = static_cast<int>(o.integer("threads", 0, 1024));
  if (o.optional("device")) {
    const std::string device = o.string("device");
    if (device != "cpu" && device != "cuda") bad_request("options.device must be 'cpu' or 'cuda', got '" + device + "'");
    opt.cuda = device == "cuda";
  }
  opt.graphs = o.boolean("graphs", true);
  opt.fused = o.boolean("fused", true);
  if (o.optional("deviceIndex")) opt.device_index = static_cast<int>(o.integer("deviceIndex", 0, 64));
  if (o.optional("packedCache")) {
    opt.packed_cache = o.string("packedCache");
    if (opt.packed_cache.empty() || opt.packed_cache[0] != '/' || opt.packed_cache.size() > 4096)
      bad_request("options.packedCache must be an absolute directory path");
  }
  return opt;
}

template <typename T, typename F>
std::vector<T> list_of(const json::Value& v, const std::string& where, F&& each) {
  if (!v.is_array()) bad_request(where + " must be an array");
  std::vector<T> out;
  out.reserve(v.items().size());
  for (size_t i = 0; i < v.items().size(); ++i) out.push_back(each(Reader(v.items()[i], where + "[" + std::to_string(i) + "]")));
  return out;
}

}  // namespace

void ClipConfig::validate() const {
  check_range(embed_dim, 1, 1 << 16, "embedDim");
  for (int s = 0; s < 4; ++s) {
    check_range(vision.depths[s], 1, 1 << 10, "vision depth");
    check_range(vision.dims[s], 1, 1 << 16, "vision dim");
  }
  if (!(vision.norm_eps > 0.f && vision.norm_eps < 1.f)) throw Error("E_CONFIG", "vision normEps must be in (0, 1)");
  check_range(vision.image_size, 32, 1 << 14, "imageSize");
  if (vision.image_size % 32 != 0) throw Error("E_CONFIG", "imageSize must be a multiple of 32");
  check_range(text.width, 1, 1 << 16, "text width");
  check_range(text.heads, 1, 1024, "text heads");
  if (text.width % text.heads != 0) throw Error("E_CONFIG", "text width must be a multiple of text heads");
  check_range(text.layers, 1, 1024, "text layers");
  check_range(text.context_length, 1, 1 << 16, "text contextLength");
  check_range(text.vocab_size, 1, 1 << 24, "text vocabSize");
  if (!(text.norm_eps > 0.f && text.norm_eps < 1.f)) throw Error("E_CONFIG", "text normEps must be in (0, 1)");
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SourceDType parse_source_dtype(const std::string& dtype) {
  if (dtype == "F32") return SourceDType::F32;
  if (dtype == "F16") return SourceDType::F16;
  if (dtype == "BF16") return SourceDType::BF16;
  if (dtype == "F64") return SourceDType::F64;
  throw Error("E_TENSOR_SHAPE", "unsupported tensor dtype " + dtype + " (expected F32, F16, BF16 or F64)");
}

size_t source_item_size(SourceDType dtype) {
  switch (dtype) {
    case SourceDType::F64: return 8;
    case SourceDType::F32: return 4;
    default: return 2;
  }
}

LoadRequest parse_load_request(const std::string& text) {
  json::Value root;
  try {
    root = json::parse(text);
  } catch (const std::runtime_error& err) {
    bad_request(err.what());
  }
  const Reader r(root, "request");
  r.only({"architecture", "tensors", "options", "sources", "inputs"});
  LoadRequest req;
  req.config = config_from(r.object("architecture"));
  req.tensors = list_of<TensorSource>(r.required("tensors"), "tensors", tensor_from);
  req.options = options_from(r.object("options"));
  if (const json::Value* sources = r.optional("sources")) {
    for (const Reader& s : list_of<Reader>(*sources, "sources", [](const Reader& e) { return e; })) {
      s.only({"file", "size"});
      const std::string file = s.string("file");
      bool repeated = false;
      for (const auto& seen : req.sources) repeated = repeated || seen.first == file;
      if (file.empty() || repeated) bad_request("sources: empty or repeated file name \"" + file + "\"");
      req.sources.emplace_back(file, static_cast<uint64_t>(s.integer("size", 0, kMaxSafeInteger)));
    }
  }
  if (const json::Value* inputs = r.optional("inputs")) req.inputs = list_of<InputTensor>(*inputs, "inputs", input_from);
  return req;
}

std::vector<std::pair<std::string, Shape>> expected_tensors(const ClipConfig& config) {
  std::vector<std::pair<std::string, Shape>> out;
  auto add = [&](std::string name, Shape shape) { out.emplace_back(std::move(name), std::move(shape)); };
  const VisionConfig& v = config.vision;
  const std::string trunk = "visual.trunk";
  const int64_t c0 = v.dims[0];
  add(trunk + ".stem.0.weight", {c0, 3, 4, 4});
  add(trunk + ".stem.0.bias", {c0});
  add(trunk + ".stem.1.weight", {c0});
  add(trunk + ".stem.1.bias", {c0});
  for (int s = 0; s < 4; ++s) {
    const int64_t dim = v.dims[s];
    const std::string stage = trunk + ".stages." + std::to_string(s);
    if (s > 0) {
      const int64_t prev = v.dims[s - 1];
      add(stage + ".downsample.0.weight", {prev});
      add(stage + ".downsample.0.bias", {prev});
      add(stage + ".downsample.1.weight", {dim, prev, 2, 2});
      add(stage + ".downsample.1.bias", {dim});
    }
    for (int b = 0; b < v.depths[s]; ++b) {
      const std::string block = stage + ".blocks." + std::to_string(b);
      add(block + ".conv_dw.weight", {dim, 1, 7, 7});
      add(block + ".conv_dw.bias", {dim});
      add(block + ".norm.weight", {dim});
      add(block + ".norm.bias", {dim});
      add(block + ".mlp.fc1.weight", {4 * dim, dim});
      add(block + ".mlp.fc1.bias", {4 * dim});
      add(block + ".mlp.fc2.weight", {dim, 4 * dim});
      add(block + ".mlp.fc2.bias", {dim});
      add(block + ".gamma", {dim});
    }
  }
  const int64_t features = v.dims[3], embed = config.embed_dim;
  add(trunk + ".head.norm.weight", {features});
  add(trunk + ".head.norm.bias", {features});
  if (!v.proj_mlp) {
    add("visual.head.proj.weight", {embed, features});
    if (v.proj_bias) add("visual.head.proj.bias", {embed});
  } else {
    add("visual.head.mlp.fc1.weight", {2 * embed, features});
    add("visual.head.mlp.fc1.bias", {2 * embed});
    add("visual.head.mlp.fc2.weight", {embed, 2 * embed});
    if (v.proj_bias) add("visual.head.mlp.fc2.bias", {embed});
  }
  const TextConfig& t = config.text;
  const int64_t width = t.width;
  add("token_embedding.weight", {t.vocab_size, width});
  add("positional_embedding", {t.context_length, width});
  for (int l = 0; l < t.layers; ++l) {
    const std::string block = "transformer.resblocks." + std::to_string(l);
    add(block + ".ln_1.weight", {width});
    add(block + ".ln_1.bias", {width});
    add(block + ".attn.in_proj_weight", {3 * width, width});
    add(block + ".attn.in_proj_bias", {3 * width});
    add(block + ".attn.out_proj.weight", {width, width});
    add(block + ".attn.out_proj.bias", {width});
    add(block + ".ln_2.weight", {width});
    add(block + ".ln_2.bias", {width});
    add(block + ".mlp.c_fc.weight", {4 * width, width});
    add(block + ".mlp.c_fc.bias", {4 * width});
    add(block + ".mlp.c_proj.weight", {width, 4 * width});
    add(block + ".mlp.c_proj.bias", {width});
  }
  add("ln_final.weight", {width});
  add("ln_final.bias", {width});
  add("text_projection", {width, embed});
  return out;
}

}  // namespace cclip
