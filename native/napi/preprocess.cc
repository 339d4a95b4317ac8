#include "preprocess.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "../core/preprocess.h"
#include "../core/resize.h"
#include "../core/threadpool.h"
#include "errors.h"

namespace cclip::napi {

namespace {

// One pool for all preprocessing (separate from the models' pools, so a running forward pass does not
// delay decoding the next batch). Concurrent workers take turns on it. Never destroyed: a worker thread may
// still be inside it while the process exits.
cclip::ThreadPool& preprocess_pool() {
  static cclip::ThreadPool* pool = new cclip::ThreadPool(0);
  return *pool;
}

[[noreturn]] void type_error(Napi::Env env, const std::string& what) { throw Napi::TypeError::New(env, what); }

int int_arg(const Napi::Value& v, const char* name, int lo, int hi) {
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d))) {
    type_error(v.Env(), std::string(name) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return static_cast<int>(d);
}

Napi::TypedArray u8_arg(const Napi::Value& v, const char* name, size_t expected) {
  if (!v.IsTypedArray()) type_error(v.Env(), std::string(name) + " must be a Uint8Array");
  auto arr = v.As<Napi::TypedArray>();
  if (arr.TypedArrayType() != napi_uint8_array && arr.TypedArrayType() != napi_uint8_clamped_array) {
    type_error(v.Env(), std::string(name) + " must be a Uint8Array");
  }
  if (arr.ElementLength() != expected) {
    type_error(v.Env(), std::string(name) + " has " + std::to_string(arr.ElementLength()) + " bytes, expected " + std::to_string(expected));
  }
  return arr;
}

const uint8_t* u8_data(const Napi::TypedArray& arr) {
  return static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
}

cclip::ResampleFilter filter_arg(const Napi::Value& v) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "bicubic") return cclip::ResampleFilter::kBicubic;
  if (s == "bilinear") return cclip::ResampleFilter::kBilinear;
  if (s == "nearest") return cclip::ResampleFilter::kNearest;
  type_error(v.Env(), "filter must be 'bicubic', 'bilinear' or 'nearest'");
}

void floats_arg(const Napi::Object& spec, const char* key, float* dst, size_t n, bool positive) {
  const Napi::Value v = spec.Get(key);
  if (!v.IsArray() || v.As<Napi::Array>().Length() != n) type_error(spec.Env(), std::string("spec.") + key + " must be an array of " + std::to_string(n) + " numbers");
  auto arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < n; ++i) {
    const Napi::Value x = arr.Get(i);
    const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || (positive && !(d > 0))) type_error(spec.Env(), std::string("spec.") + key + " has a bad value");
    dst[i] = static_cast<float>(d);
  }
}

// Promise-returning worker: `run` on a libuv thread, `result` on the JS thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env, "convnext_clip.preprocess"), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }
  void keep(const Napi::Value& v) { refs_.push_back(Napi::Persistent(v.As<Napi::Object>())); }

 protected:
  virtual void run() = 0;
  virtual Napi::Value result(Napi::Env env) { return env.Undefined(); }

  void Execute() override { capture_failure("preprocessing an image", failure_, [&] { run(); }); }
  void OnOK() override {
    if (!failure_.message.empty()) return deferred_.Reject(to_js_error(Env(), failure_).Value());
    deferred_.Resolve(result(Env()));
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> refs_;  // the input and output arrays stay alive until settled
  Failure failure_;
};

class PreprocessWorker : public PromiseWorker {
 public:
  PreprocessWorker(Napi::Env env, cclip::ImageU8 image, cclip::PreprocessSpec spec, float* out)
      : PromiseWorker(env), image_(image), spec_(spec), out_(out) {}

 protected:
  void run() override { cclip::preprocess_image(image_, spec_, out_, &preprocess_pool()); }

 private:
  cclip::ImageU8 image_;
  cclip::PreprocessSpec spec_;
  float* out_;
};

class ResizeWorker : public PromiseWorker {
 public:
  ResizeWorker(Napi::Env env, cclip::PixelView src, int out_w, int out_h, cclip::ResampleFilter filter)
      : PromiseWorker(env), src_(src), out_w_(out_w), out_h_(out_h), filter_(filter) {}

 protected:
  void run() override {
    out_.resize(static_cast<size_t>(out_w_) * out_h_ * src_.channels);
    cclip::resize_u8(src_, out_w_, out_h_, filter_, cclip::Window{0, 0, out_w_, out_h_}, out_.data(), &preprocess_pool());
  }
  Napi::Value result(Napi::Env env) override {
    auto arr = Napi::Uint8Array::New(env, out_.size());
    std::copy(out_.begin(), out_.end(), arr.Data());
    return arr;
  }

 private:
  cclip::PixelView src_;
  int out_w_, out_h_;
  cclip::ResampleFilter filter_;
  std::vector<uint8_t> out_;
};

constexpr int kMaxSide = 1 << 30;

Napi::Value preprocess_image(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int width = int_arg(info[1], "width", 1, kMaxSide);
  const int height = int_arg(info[2], "height", 1, kMaxSide);
  const std::string mode = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "";
  cclip::ImageU8 image;
  int channels = 0;
  if (mode == "L") image.mode = cclip::PixelMode::kL, channels = 1;
  else if (mode == "RGB") image.mode = cclip::PixelMode::kRGB, channels = 3;
  else if (mode == "RGBA") image.mode = cclip::PixelMode::kRGBA, channels = 4;
  else if (mode == "CMYK") image.mode = cclip::PixelMode::kCMYK, channels = 4;
  else type_error(env, "mode must be 'L', 'RGB', 'RGBA' or 'CMYK'");
  const Napi::TypedArray pixels = u8_arg(info[0], "pixels", static_cast<size_t>(width) * height * channels);
  image.pixels = cclip::PixelView{u8_data(pixels), width, height, channels, static_cast<int64_t>(width) * channels};

  if (!info[4].IsObject()) type_error(env, "spec must be an object");
  const Napi::Object s = info[4].As<Napi::Object>();
  cclip::PreprocessSpec spec;
  spec.size = int_arg(s.Get("size"), "spec.size", 1, 16384);
  const std::string resize_mode = s.Get("resizeMode").IsString() ? s.Get("resizeMode").As<Napi::String>().Utf8Value() : "";
  if (resize_mode == "shortest") spec.resize_mode = cclip::ResizeMode::kShortest;
  else if (resize_mode == "longest") spec.resize_mode = cclip::ResizeMode::kLongest;
  else if (resize_mode == "squash") spec.resize_mode = cclip::ResizeMode::kSquash;
  else type_error(env, "spec.resizeMode must be 'shortest', 'longest' or 'squash'");
  spec.filter = filter_arg(s.Get("filter"));
  float fill[4];
  floats_arg(s, "fill", fill, channels, false);
  for (int i = 0; i < channels; ++i) spec.fill[i] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, fill[i])));
  floats_arg(s, "mean", spec.mean, 3, false);
  floats_arg(s, "std", spec.std, 3, true);

  if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) type_error(env, "out must be a Float32Array");
  auto out = info[5].As<Napi::Float32Array>();
  if (out.ElementLength() != static_cast<size_t>(3) * spec.size * spec.size) type_error(env, "out must hold 3 x size x size floats");

  auto* worker = new PreprocessWorker(env, image, spec, out.Data());
  worker->keep(pixels);
  worker->keep(out);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value resize_image(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int width = int_arg(info[1], "width", 1, kMaxSide);
  const int height = int_arg(info[2], "height", 1, kMaxSide);
  const int channels = int_arg(info[3], "channels", 1, 4);
  const int out_w = int_arg(info[4], "outWidth", 1, 65536);
  const int out_h = int_arg(info[5], "outHeight", 1, 65536);
  const cclip::ResampleFilter filter = filter_arg(info[6]);
  const Napi::TypedArray pixels = u8_arg(info[0], "pixels", static_cast<size_t>(width) * height * channels);
  auto* worker = new ResizeWorker(env, cclip::PixelView{u8_data(pixels), width, height, channels, static_cast<int64_t>(width) * channels}, out_w, out_h, filter);
  worker->keep(pixels);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace

void register_preprocess(Napi::Env env, Napi::Object exports) {
  exports.Set("preprocessImage", Napi::Function::New(env, preprocess_image, "preprocessImage"));
  exports.Set("resizeImage", Napi::Function::New(env, resize_image, "resizeImage"));
}

}  // namespace cclip::napi
