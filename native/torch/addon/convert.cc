#include "convert.h"

#include <cmath>
#include <string>

namespace cclip::js {
namespace {

[[noreturn]] void fail(const Napi::Env& env, const std::string& message) { throw Napi::TypeError::New(env, message); }

Napi::Object object(const Napi::Value& v, const char* what) {
  if (!v.IsObject() || v.IsArray()) fail(v.Env(), std::string(what) + " must be an object");
  return v.As<Napi::Object>();
}

std::string string(const Napi::Value& v, const char* what) {
  if (!v.IsString()) fail(v.Env(), std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> int_list(const Napi::Value& v, const char* what, size_t max_len) {
  if (!v.IsArray()) fail(v.Env(), std::string(what) + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > max_len) fail(v.Env(), std::string(what) + " has more than " + std::to_string(max_len) + " entries");
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(integer(a.Get(i), what, 0, int64_t(1) << 53));
  return out;
}

std::array<int64_t, 4> four(const Napi::Value& v, const char* what) {
  std::vector<int64_t> l = int_list(v, what, 4);
  if (l.size() != 4) fail(v.Env(), std::string(what) + " must have 4 entries");
  return {l[0], l[1], l[2], l[3]};
}

bool flag(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) fail(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

}  // namespace

int64_t integer(const Napi::Value& v, const char* what, int64_t min, int64_t max) {
  if (!v.IsNumber()) fail(v.Env(), std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(std::floor(d) == d && d >= static_cast<double>(min) && d <= static_cast<double>(max))) {
    fail(v.Env(), std::string(what) + " must be an integer in " + std::to_string(min) + ".." + std::to_string(max));
  }
  return static_cast<int64_t>(d);
}

Arch arch_from(const Napi::Value& v) {
  Napi::Object o = object(v, "arch");
  Napi::Object vis = object(o.Get("vision"), "arch.vision");
  Napi::Object txt = object(o.Get("text"), "arch.text");
  const int64_t big = int64_t(1) << 24;
  Arch a;
  a.embed_dim = integer(o.Get("embedDim"), "arch.embedDim", 1, big);
  a.depths = four(vis.Get("depths"), "arch.vision.depths");
  a.dims = four(vis.Get("dims"), "arch.vision.dims");
  Napi::Value eps = vis.Get("normEps");
  if (!eps.IsNumber()) fail(v.Env(), "arch.vision.normEps must be a number");
  a.norm_eps = eps.As<Napi::Number>().DoubleValue();
  a.image_size = integer(vis.Get("imageSize"), "arch.vision.imageSize", 1, big);
  const std::string proj = string(vis.Get("proj"), "arch.vision.proj");
  if (proj != "linear" && proj != "mlp") fail(v.Env(), "arch.vision.proj must be 'linear' or 'mlp'");
  a.proj_mlp = proj == "mlp";
  a.proj_bias = flag(vis, "projBias", false);
  a.width = integer(txt.Get("width"), "arch.text.width", 1, big);
  a.heads = integer(txt.Get("heads"), "arch.text.heads", 1, big);
  a.layers = integer(txt.Get("layers"), "arch.text.layers", 1, big);
  a.context_length = integer(txt.Get("contextLength"), "arch.text.contextLength", 1, big);
  a.vocab_size = integer(txt.Get("vocabSize"), "arch.text.vocabSize", 1, big);
  try {
    validate_arch(a);
  } catch (const std::exception& e) {
    fail(v.Env(), std::string("arch: ") + e.what());
  }
  return a;
}

std::vector<TensorSpec> specs_from(const Napi::Value& v) {
  if (!v.IsArray()) fail(v.Env(), "tensors must be an array of manifest entries");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<TensorSpec> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Object e = object(a.Get(i), "tensors[i]");
    TensorSpec s;
    s.name = string(e.Get("name"), "tensor name");
    s.dtype = string(e.Get("dtype"), "tensor dtype");
    s.file = string(e.Get("file"), "tensor file");
    s.shape = int_list(e.Get("shape"), "tensor shape", 8);
    s.strides = int_list(e.Get("strides"), "tensor strides", 8);
    s.offset = integer(e.Get("offset"), "tensor offset", 0, int64_t(1) << 53);
    s.byte_length = integer(e.Get("byteLength"), "tensor byteLength", 0, int64_t(1) << 53);
    out.push_back(std::move(s));
  }
  return out;
}

Options options_from(const Napi::Value& v) {
  Napi::Object o = object(v, "options");
  Options opt;
  const std::string device = string(o.Get("device"), "options.device");
  if (device != "cpu" && device != "cuda") fail(v.Env(), "options.device must be 'cpu' or 'cuda'");
  const std::string precision = string(o.Get("precision"), "options.precision");
  if (precision != "fp32" && precision != "bf16") fail(v.Env(), "options.precision must be 'fp32' or 'bf16'");
  opt.cuda = device == "cuda";
  opt.bf16 = precision == "bf16";
  Napi::Value threads = o.Get("threads");
  opt.threads = threads.IsUndefined() ? 0 : static_cast<int>(integer(threads, "options.threads", 0, 1024));
  opt.graphs = flag(o, "graphs", true);
  opt.fused = flag(o, "fused", true);
  Napi::Value index = o.Get("deviceIndex");
  opt.device_index = index.IsUndefined() ? 0 : static_cast<int>(integer(index, "options.deviceIndex", 0, 64));
  return opt;
}

}  // namespace cclip::js
