#include "model.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "fused_ops.h"

namespace cclip {
namespace {

// Batch-size buckets with a CUDA graph each; larger batches run eagerly.
constexpr int64_t kMaxImageBucket = 64;
constexpr int64_t kMaxTextBucket = 256;

int64_t bucket(int64_t n) {
  int64_t b = 1;
  while (b < n) b *= 2;
  return b;
}

bool env_off(const char* name) {
  const char* v = std::getenv(name);
  return v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0);
}

// Rows padded with zeros to `rows`: [n, ...] -> [rows, ...].
at::Tensor pad_rows(const at::Tensor& t, int64_t rows) {
  if (t.size(0) == rows) return t;
  std::vector<int64_t> shape = t.sizes().vec();
  shape[0] = rows - t.size(0);
  return at::cat({t, at::zeros(shape, t.options())}, 0);
}

}  // namespace

using SetThreads = void (*)(int);

// openblas_set_num_threads from the BLAS libtorch loaded (the addon's libraries are not in the global scope).
static SetThreads find_openblas_set_threads() {
  if (void* f = dlsym(RTLD_DEFAULT, "openblas_set_num_threads")) return reinterpret_cast<SetThreads>(f);
  for (const char* lib : {"libblas.so.3", "libopenblas.so.0", "libopenblasp.so.0"}) {
    if (void* h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD)) {
      void* f = dlsym(h, "openblas_set_num_threads");
      dlclose(h);
      if (f) return reinterpret_cast<SetThreads>(f);
    }
  }
  return nullptr;
}

void set_cpu_threads(int threads) {
  const int n = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  if (at::get_num_threads() != n) at::set_num_threads(n);
  // ATen's CPU GEMM calls BLAS, whose pool is its own: size OpenBLAS's when it is the one loaded.
  static SetThreads openblas = find_openblas_set_threads();
  static int openblas_threads = -1;
  if (openblas && openblas_threads != n) {
    openblas(n);
    openblas_threads = n;
  }
}

Model::Model(const ClipConfig& config, const Options& options)
    : config_(config),
      options_(options),
      device_(at::kCPU),
      dtype_(options.precision == Precision::BF16 ? at::kBFloat16 : at::kFloat),
      compute_(options.cuda ? dtype_ : at::kFloat) {}

Model::~Model() {
  if (exec_) {
    CudaExec::Scope scope(exec_.get());
    weights_ = Weights();
  }
}

std::shared_ptr<Model> Model::load(const ClipConfig& config, const std::vector<TensorSource>& sources, const Options& options, const ProgressFn& progress) {
  config.validate();
  std::shared_ptr<Model> m(new Model(config, options));
  if (options.cuda) {
    std::string why;
    if (!CudaExec::available(&why)) throw std::runtime_error("device 'cuda' is not available: " + why);
    m->options_.graphs = options.graphs && !env_off("CCLIP_CUDA_GRAPHS");
    m->options_.fused = options.fused && fused_kernels_built() && !env_off("CCLIP_FUSED_KERNELS");
    if (options.precision != Precision::BF16) {
      // fp32 means fp32: no TF32 in cuBLAS or cuDNN (process-wide, as torch.backends.*.allow_tf32 are).
      at::globalContext().setAllowTF32CuBLAS(false);
      at::globalContext().setAllowTF32CuDNN(false);
    }
    m->exec_ = std::make_unique<CudaExec>(options.device_index, m->options_.graphs);
    m->device_ = m->exec_->device();
  } else {
    m->options_.graphs = false;
    m->options_.fused = false;
    m->set_threads();
  }
  CudaExec::Scope scope(m->exec_.get());
  m->weights_ = load_weights(config, sources, m->device_, m->dtype_, m->options_.fused, progress);
  if (m->exec_) m->exec_->synchronize();
  return m;
}

void Model::set_threads() const { set_cpu_threads(options_.cuda ? 1 : options_.threads); }

Output Model::encode_image(const float* pixels, int64_t n, bool capture) {
  const int64_t S = config_.vision.image_size;
  if (!pixels || n < 1) throw std::invalid_argument("encodeImage: need at least one image");
  std::lock_guard<std::mutex> lock(mutex_);
  set_threads();
  CudaExec::Scope scope(exec_.get());
  at::NoGradGuard no_grad;
  at::Tensor host = at::from_blob(const_cast<float*>(pixels), {n, 3, S, S}, at::kFloat);  // [n, 3, S, S]
  Output out;
  TensorCaptures* cap = capture ? &out.intermediates : nullptr;
  auto forward = [&](const std::vector<at::Tensor>& in) { return vision_forward(config_, weights_.vision, in[0], compute_, options_.fused, cap); };
  if (exec_ && !capture && n <= kMaxImageBucket) {
    const int64_t nb = bucket(n);
    out.features = exec_->run("image:" + std::to_string(nb), {pad_rows(host, nb)}, forward).slice(0, 0, n);
  } else if (exec_) {
    out.features = exec_->run("", {host}, forward);  // eager
  } else {
    out.features = forward({host}).to(at::kFloat).contiguous();
  }
  return out;
}

Output Model::encode_text(const int32_t* tokens, int64_t n, int64_t ctx, bool capture) {
  if (!tokens || n < 1) throw std::invalid_argument("encodeText: need at least one row of tokens");
  if (ctx != config_.text.context_length) {
    throw std::invalid_argument("encodeText: rows of " + std::to_string(ctx) + " tokens, the model's context length is " + std::to_string(config_.text.context_length));
  }
  // Each row's end token is its first maximum id (open_clip's argmax); the batch stops after the last one
  // (exact, since attention is causal).
  std::vector<int64_t> end(n);
  int64_t L = 1;
  for (int64_t i = 0; i < n; i++) {
    const int32_t* row = tokens + i * ctx;
    int64_t best = 0;
    for (int64_t j = 0; j < ctx; j++) {
      if (row[j] < 0 || row[j] >= config_.text.vocab_size) {
        throw std::invalid_argument("encodeText: token id " + std::to_string(row[j]) + " at row " + std::to_string(i) + " is outside the vocabulary");
      }
      if (row[j] > row[best]) best = j;
    }
    end[i] = best;
    L = std::max(L, best + 1);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  set_threads();
  CudaExec::Scope scope(exec_.get());
  at::NoGradGuard no_grad;
  const bool graph = exec_ && !capture && n <= kMaxTextBucket;
  const int64_t nb = graph ? bucket(n) : n;
  if (graph) L = std::min(ctx, (L + 7) / 8 * 8);  // graph buckets of 8 positions; later positions never reach earlier ones
  at::Tensor ids = at::zeros({nb, L}, at::kLong);  // [nb, L]
  at::Tensor ends = at::zeros({nb}, at::kLong);    // [nb] flat row index of each end token
  auto ids_a = ids.accessor<int64_t, 2>();
  auto ends_a = ends.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; i++) {
    for (int64_t j = 0; j < L; j++) ids_a[i][j] = tokens[i * ctx + j];
    ends_a[i] = i * L + end[i];
  }
  Output out;
  TensorCaptures* cap = capture ? &out.intermediates : nullptr;
  auto forward = [&](const std::vector<at::Tensor>& in) { return text_forward(config_, weights_.text, in[0], in[1], compute_, cap); };
  if (graph) {
    out.features = exec_->run("text:" + std::to_string(nb) + "x" + std::to_string(L), {ids, ends}, forward).slice(0, 0, n);
  } else if (exec_) {
    out.features = exec_->run("", {ids, ends}, forward);
  } else {
    out.features = forward({ids, ends}).to(at::kFloat).contiguous();
  }
  return out;
}

}  // namespace cclip
