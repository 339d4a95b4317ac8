#include "js_convert.h"

#include <cmath>
#include <string>

namespace cclip_node {

namespace {

Napi::Object object_field(const Napi::Object& obj, const char* key, const std::string& where) {
  Napi::Value v = obj.Get(key);
  if (!v.IsObject()) throw Napi::TypeError::New(obj.Env(), where + "." + key + " must be an object");
  return v.As<Napi::Object>();
}

double number_field(const Napi::Object& obj, const char* key, const std::string& where) {
  Napi::Value v = obj.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(obj.Env(), where + "." + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t integer_field(const Napi::Object& obj, const char* key, const std::string& where, double lo, double hi) {
  const double d = number_field(obj, key, where);
  if (!std::isfinite(d) || std::floor(d) != d || d < lo || d > hi) {
    throw Napi::TypeError::New(obj.Env(), where + "." + key + " must be an integer in [" + std::to_string(static_cast<int64_t>(lo)) +
                                              ", " + std::to_string(static_cast<int64_t>(hi)) + "]");
  }
  return static_cast<int64_t>(d);
}

std::string string_field(const Napi::Object& obj, const char* key, const std::string& where) {
  Napi::Value v = obj.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), where + "." + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> integer_list(const Napi::Object& obj, const char* key, const std::string& where, double lo, double hi) {
  Napi::Value v = obj.Get(key);
  if (!v.IsArray()) throw Napi::TypeError::New(obj.Env(), where + "." + key + " must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  if (arr.Length() > 16) throw Napi::TypeError::New(obj.Env(), where + "." + key + " has too many entries");
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Object holder = Napi::Object::New(obj.Env());
    holder.Set("v", arr.Get(i));
    out.push_back(integer_field(holder, "v", where + "." + key + "[" + std::to_string(i) + "]", lo, hi));
  }
  return out;
}

}  // namespace

cclip::ClipConfig config_from_js(const Napi::Value& value) {
  if (!value.IsObject()) throw Napi::TypeError::New(value.Env(), "architecture must be an object");
  const Napi::Object arch = value.As<Napi::Object>();
  cclip::ClipConfig config;
  config.embed_dim = static_cast<int>(integer_field(arch, "embedDim", "arch", 1, 1 << 16));
  const Napi::Object v = object_field(arch, "vision", "arch");
  const std::vector<int64_t> depths = integer_list(v, "depths", "arch.vision", 1, 1 << 10);
  const std::vector<int64_t> dims = integer_list(v, "dims", "arch.vision", 1, 1 << 16);
  if (depths.size() != 4 || dims.size() != 4) throw Napi::TypeError::New(value.Env(), "arch.vision depths and dims need 4 entries");
  for (int s = 0; s < 4; ++s) {
    config.vision.depths[s] = static_cast<int>(depths[s]);
    config.vision.dims[s] = static_cast<int>(dims[s]);
  }
  config.vision.norm_eps = static_cast<float>(number_field(v, "normEps", "arch.vision"));
  config.vision.image_size = static_cast<int>(integer_field(v, "imageSize", "arch.vision", 32, 1 << 14));
  const std::string proj = string_field(v, "proj", "arch.vision");
  if (proj != "linear" && proj != "mlp") throw Napi::TypeError::New(value.Env(), "arch.vision.proj must be 'linear' or 'mlp'");
  config.vision.proj_mlp = proj == "mlp";
  config.vision.proj_bias = v.Get("projBias").ToBoolean().Value();
  const Napi::Object t = object_field(arch, "text", "arch");
  config.text.width = static_cast<int>(integer_field(t, "width", "arch.text", 1, 1 << 16));
  config.text.heads = static_cast<int>(integer_field(t, "heads", "arch.text", 1, 1024));
  config.text.layers = static_cast<int>(integer_field(t, "layers", "arch.text", 1, 1024));
  config.text.context_length = static_cast<int>(integer_field(t, "contextLength", "arch.text", 1, 1 << 16));
  config.text.vocab_size = static_cast<int>(integer_field(t, "vocabSize", "arch.text", 1, 1 << 24));
  return config;
}

std::vector<cclip::TensorSource> tensors_from_js(const Napi::Value& value) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), "tensors must be an array of manifest entries");
  const Napi::Array arr = value.As<Napi::Array>();
  std::vector<cclip::TensorSource> out;
  out.reserve(arr.Length());
  constexpr double kMaxSafe = 9007199254740991.0;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string where = "tensors[" + std::to_string(i) + "]";
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) throw Napi::TypeError::New(value.Env(), where + " must be an object");
    const Napi::Object e = item.As<Napi::Object>();
    cclip::TensorSource src;
    src.name = string_field(e, "name", where);
    try {
      src.dtype = cclip::parse_source_dtype(string_field(e, "dtype", where));
    } catch (const std::runtime_error& err) {
      throw Napi::TypeError::New(value.Env(), "tensor " + src.name + ": " + err.what());
    }
    src.shape = integer_list(e, "shape", where, 0, 1LL << 40);
    src.strides = integer_list(e, "strides", where, 0, 1LL << 50);
    src.file = string_field(e, "file", where);
    src.offset = static_cast<uint64_t>(integer_field(e, "offset", where, 0, kMaxSafe));
    src.byte_length = static_cast<uint64_t>(integer_field(e, "byteLength", where, 0, kMaxSafe));
    out.push_back(std::move(src));
  }
  return out;
}

cclip::LoadOptions load_options_from_js(const Napi::Value& value) {
  cclip::LoadOptions options;
  if (value.IsUndefined() || value.IsNull()) return options;
  if (!value.IsObject()) throw Napi::TypeError::New(value.Env(), "options must be an object");
  const Napi::Object o = value.As<Napi::Object>();
  Napi::Value precision = o.Get("precision");
  if (!precision.IsUndefined()) {
    if (!precision.IsString()) throw Napi::TypeError::New(value.Env(), "options.precision must be 'fp32' or 'bf16'");
    const std::string p = precision.As<Napi::String>().Utf8Value();
    if (p == "fp32") {
      options.precision = cclip::Precision::F32;
    } else if (p == "bf16") {
      options.precision = cclip::Precision::BF16;
    } else {
      throw Napi::TypeError::New(value.Env(), "options.precision must be 'fp32' or 'bf16', got '" + p + "'");
    }
  }
  if (!o.Get("threads").IsUndefined()) options.threads = static_cast<int>(integer_field(o, "threads", "options", 0, 1024));
  return options;
}

}  // namespace cclip_node
