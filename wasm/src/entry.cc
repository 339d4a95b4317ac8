// C ABI of the wasm build (driven by lib/backends/wasm-core.ts). Every call that computes is a job: it is
// queued to one runner pthread (so the JS thread never blocks), and its end is posted back to JS as
// Module.cclipHost.done(job, result). Models, pools and results live in the wasm heap; JS frees results.
#include <emscripten.h>
#include <emscripten/threading.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "../../native/core/model.h"
#include "../../native/core/preprocess.h"
#include "host.h"

namespace cclip_wasm {

namespace {

struct Result {
  std::string error;  // empty: success
  std::string code;   // cclip::Error's code (lib/errors.ts), when the error has one
  cclip::ClipModel* model = nullptr;
  std::vector<float> features;
  cclip::Captures captures;
};

// One FIFO of jobs on one pthread: loads and forwards run in order, one at a time.
class Runner {
 public:
  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(job));
      if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::thread thread_;  // never joined: the workers are terminated from JS
};

Runner& runner() {
  static Runner* r = new Runner();
  return *r;
}

struct Source {
  int id;
  uint64_t bytes;
};
std::mutex g_sources_mu;
std::map<std::string, Source> g_sources;  // weight source name -> id and size, for the load in progress

void finish(int job, Result* result) {
  MAIN_THREAD_ASYNC_EM_ASM({ Module["cclipHost"].done($0, $1 >>> 0); }, job, result);
}

// Runs `body` on the runner thread, turning exceptions into the result's error.
void submit(int job, std::function<void(Result&)> body) {
  runner().post([job, body = std::move(body)] {
    auto* result = new Result();
    try {
      body(*result);
    } catch (const cclip::Error& err) {
      result->error = err.what();
      result->code = err.code();
    } catch (const std::bad_alloc&) {
      result->error = "out of memory (the wasm heap is limited to 4 GB; bf16 weights need half of fp32's)";
    } catch (const std::exception& err) {
      result->error = err.what();
      if (result->error.empty()) result->error = "unknown error";
    }
    finish(job, result);
  });
}

}  // namespace

int source_id(const std::string& name, uint64_t* bytes) {
  std::lock_guard<std::mutex> lock(g_sources_mu);
  auto it = g_sources.find(name);
  if (it == g_sources.end()) throw std::runtime_error("unknown weight source " + name);
  *bytes = it->second.bytes;
  return it->second.id;
}

void read_source(int id, void* dst, size_t bytes, uint64_t offset) {
  alignas(4) std::atomic<int32_t> state{0};  // 0 pending, 1 done, 2 failed (message in `error`)
  char* error = nullptr;
  MAIN_THREAD_ASYNC_EM_ASM({ Module["cclipHost"].read($0, $1 >>> 0, $2, $3, $4 >>> 0, $5 >>> 0); }, id, dst,
                           static_cast<double>(bytes), static_cast<double>(offset), &state, &error);
  int32_t s;
  while ((s = state.load(std::memory_order_acquire)) == 0) {
    emscripten_futex_wait(reinterpret_cast<volatile void*>(&state), 0, INFINITY);
  }
  if (s != 1) {
    std::string message = error ? error : "read failed";
    std::free(error);
    throw std::runtime_error(message);
  }
}

}  // namespace cclip_wasm

using cclip_wasm::Result;

extern "C" {

// 1 in cclip-relaxed.wasm (built with -mrelaxed-simd: the GEMMs multiply-add with f32x4.relaxed_madd), 0 in cclip.wasm.
EMSCRIPTEN_KEEPALIVE int cclip_relaxed_simd() {
#if defined(__wasm_relaxed_simd__)
  return 1;
#else
  return 0;
#endif
}

// Loads a model from `request`, the JSON load request (native/core/spec.h; its "sources" name the weight
// sources in the order of their ids). Result: the model handle, or an error.
EMSCRIPTEN_KEEPALIVE void cclip_load(int job, const char* request) {
  std::string text(request);
  cclip_wasm::submit(job, [job, text = std::move(text)](Result& r) {
    const cclip::LoadRequest request = cclip::parse_load_request(text);
    {
      std::lock_guard<std::mutex> lock(cclip_wasm::g_sources_mu);
      cclip_wasm::g_sources.clear();
      int id = 0;
      for (const auto& [file, size] : request.sources) cclip_wasm::g_sources[file] = cclip_wasm::Source{id++, size};
    }
    auto progress = [job](uint64_t loaded, uint64_t total) {
      MAIN_THREAD_ASYNC_EM_ASM({ Module["cclipHost"].progress($0, $1, $2); }, job, static_cast<double>(loaded),
                               static_cast<double>(total));
    };
    r.model = cclip::ClipModel::load(request.config, request.tensors, request.options, progress).release();
  });
}

// pixels/tokens stay owned by the caller until the job ends. Result: features (+ captures).
EMSCRIPTEN_KEEPALIVE void cclip_encode_image(int job, cclip::ClipModel* model, const float* pixels, double count, int n,
                                             int capture) {
  cclip_wasm::submit(job, [=](Result& r) {
    r.features = model->encode_image(pixels, static_cast<int64_t>(count), n, capture ? &r.captures : nullptr);
  });
}

EMSCRIPTEN_KEEPALIVE void cclip_encode_text(int job, cclip::ClipModel* model, const int32_t* tokens, double count, int n,
                                            int context_length, int capture) {
  cclip_wasm::submit(job, [=](Result& r) {
    r.features = model->encode_text(tokens, static_cast<int64_t>(count), n, context_length,
                                    capture ? &r.captures : nullptr);
  });
}

EMSCRIPTEN_KEEPALIVE void cclip_free_model(int job, cclip::ClipModel* model) {
  cclip_wasm::submit(job, [=](Result&) { delete model; });
}

// open_clip's eval transform of 8-bit pixels [height, width, channels] (packed rows) into features [3, S, S].
// mode: 0 L, 1 RGB, 2 RGBA, 3 CMYK; resize_mode: 0 shortest, 1 longest, 2 squash; filter: 0 nearest,
// 1 bilinear, 2 bicubic; params: fill[4], mean[3], std[3] as floats.
EMSCRIPTEN_KEEPALIVE void cclip_preprocess(int job, const uint8_t* data, int width, int height, int channels, int mode,
                                           int size, int resize_mode, int filter, const float* params) {
  cclip::PreprocessSpec spec;
  spec.size = size;
  spec.resize_mode = static_cast<cclip::ResizeMode>(resize_mode);
  spec.filter = static_cast<cclip::ResampleFilter>(filter);
  for (int i = 0; i < 4; ++i) spec.fill[i] = static_cast<uint8_t>(params[i]);
  for (int i = 0; i < 3; ++i) spec.mean[i] = params[4 + i], spec.std[i] = params[7 + i];
  cclip::ImageU8 image;
  image.pixels = cclip::PixelView{data, width, height, channels, static_cast<int64_t>(width) * channels};
  image.mode = static_cast<cclip::PixelMode>(mode);
  cclip_wasm::submit(job, [=](Result& r) {
    r.features.resize(static_cast<size_t>(3) * size * size);
    cclip::preprocess_image(image, spec, r.features.data(), nullptr);
  });
}

EMSCRIPTEN_KEEPALIVE const char* cclip_result_error(Result* r) { return r->error.empty() ? nullptr : r->error.c_str(); }
EMSCRIPTEN_KEEPALIVE const char* cclip_result_error_code(Result* r) { return r->code.empty() ? nullptr : r->code.c_str(); }
EMSCRIPTEN_KEEPALIVE cclip::ClipModel* cclip_result_model(Result* r) { return r->model; }
EMSCRIPTEN_KEEPALIVE const float* cclip_result_features(Result* r) { return r->features.data(); }
EMSCRIPTEN_KEEPALIVE double cclip_result_features_size(Result* r) { return static_cast<double>(r->features.size()); }
EMSCRIPTEN_KEEPALIVE int cclip_result_capture_count(Result* r) { return static_cast<int>(r->captures.size()); }
EMSCRIPTEN_KEEPALIVE const char* cclip_result_capture_name(Result* r, int i) { return r->captures[i].first.c_str(); }
EMSCRIPTEN_KEEPALIVE const float* cclip_result_capture_data(Result* r, int i) { return r->captures[i].second.data(); }
EMSCRIPTEN_KEEPALIVE double cclip_result_capture_size(Result* r, int i) {
  return static_cast<double>(r->captures[i].second.size());
}
EMSCRIPTEN_KEEPALIVE void cclip_result_free(Result* r) { delete r; }

EMSCRIPTEN_KEEPALIVE double cclip_weight_bytes(cclip::ClipModel* model) { return static_cast<double>(model->weight_bytes()); }

// Peak heap use: the high-water mark of sbrk (the heap only grows).
EMSCRIPTEN_KEEPALIVE double cclip_heap_bytes() { return static_cast<double>(reinterpret_cast<uintptr_t>(sbrk(0))); }

}  // extern "C"
