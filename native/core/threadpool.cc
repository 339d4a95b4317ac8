#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace cclip {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// How long an idle worker spins for the next loop before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(300);
// How long the caller spins for workers still running its loop before it sleeps.
constexpr auto kCallerSpin = std::chrono::microseconds(50);

// `job` word: [generation:32 | open:1 | joined:31]. A worker may join a loop only while it is open and of the
// generation it saw; the caller closes it once every chunk is claimed, then waits for joined == 0, so no worker
// ever touches a finished loop's fields.
constexpr uint64_t kOpen = uint64_t(1) << 31;
constexpr uint64_t kJoinedMask = kOpen - 1;

thread_local const void* t_inside_pool = nullptr;  // the pool whose loop this thread is running, if any

}  // namespace

struct ThreadPool::State {
  std::vector<std::thread> workers;
  std::atomic<uint64_t> job{0};
  std::atomic<bool> stop{false};

  // The current loop (written by the caller before it opens the generation).
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0, chunk = 1;
  alignas(64) std::atomic<int64_t> next{0};
  alignas(64) std::atomic<bool> failed{false};
  std::exception_ptr error;  // written once, by whoever set `failed`

  std::mutex sleep_mu;  // sleeping workers; also serialises callers via loop_mu below
  std::condition_variable sleep_cv;
  std::atomic<int> sleepers{0};
  std::mutex loop_mu;  // one parallel_for at a time
  // The caller, once it has spun a while for joined workers, sleeps here; the last worker out wakes it.
  std::mutex done_mu;
  std::condition_variable done_cv;
  std::atomic<bool> caller_waiting{false};

  void drain() {
    const void* outer = t_inside_pool;
    t_inside_pool = this;
    for (;;) {
      const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= n) break;
      try {
        (*fn)(begin, std::min(n, begin + chunk));
      } catch (...) {
        if (!failed.exchange(true)) error = std::current_exception();
        next.store(n, std::memory_order_relaxed);
      }
    }
    t_inside_pool = outer;
  }

  // Blocks until the generation differs from `seen` (or stop); returns the job word then.
  uint64_t wait_for_new(uint32_t seen) {
    auto changed = [&](uint64_t j) { return static_cast<uint32_t>(j >> 32) != seen; };
    uint64_t j = job.load(std::memory_order_acquire);
    if (changed(j) || stop.load(std::memory_order_relaxed)) return j;
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (int spins = 1;; ++spins) {
      cpu_relax();
      j = job.load(std::memory_order_acquire);
      if (changed(j) || stop.load(std::memory_order_relaxed)) return j;
      if ((spins & 255) == 0) {
        if (std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::yield();  // let a runnable thread on this core (e.g. a preempted worker) go first
      }
    }
    std::unique_lock<std::mutex> lock(sleep_mu);
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    for (;;) {
      j = job.load(std::memory_order_seq_cst);
      if (changed(j) || stop.load(std::memory_order_seq_cst)) break;
      sleep_cv.wait(lock);
    }
    sleepers.fetch_sub(1, std::memory_order_relaxed);
    return j;
  }

  void worker_loop() {
    uint32_t seen = 0;
    for (;;) {
      uint64_t j = wait_for_new(seen);
      if (stop.load(std::memory_order_acquire)) return;
      seen = static_cast<uint32_t>(j >> 32);
      // Join if still open and of the same generation.
      bool joined = false;
      while ((j & kOpen) && static_cast<uint32_t>(j >> 32) == seen) {
        if (job.compare_exchange_weak(j, j + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          joined = true;
          break;
        }
      }
      if (!joined) continue;
      drain();
      const uint64_t left = job.fetch_sub(1, std::memory_order_seq_cst) - 1;
      if ((left & kJoinedMask) == 0 && caller_waiting.load(std::memory_order_seq_cst)) {
        { std::lock_guard<std::mutex> lock(done_mu); }
        done_cv.notify_one();
      }
    }
  }

  void wake_sleepers() {
    if (sleepers.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mu); }
      sleep_cv.notify_all();
    }
  }
};

ThreadPool::ThreadPool(int threads) : state_(new State) {
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  state_->workers.reserve(threads - 1);
  for (int i = 1; i < threads; ++i) state_->workers.emplace_back([s = state_.get()] { s->worker_loop(); });
}

ThreadPool::~ThreadPool() {
  State& s = *state_;
  std::lock_guard<std::mutex> loop(s.loop_mu);  // let a running loop finish
  {
    std::lock_guard<std::mutex> lock(s.sleep_mu);
    s.stop.store(true, std::memory_order_seq_cst);
  }
  s.sleep_cv.notify_all();
  for (auto& t : s.workers) t.join();
}

int ThreadPool::size() const { return static_cast<int>(state_->workers.size()) + 1; }

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t threads = size();
  State& s = *state_;
  if (threads == 1 || n <= grain || t_inside_pool == &s) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> loop(s.loop_mu);
  s.fn = &fn;
  s.n = n;
  // About four chunks per thread balances uneven work; never more chunks than needed.
  s.chunk = std::max(grain, (n + threads * 4 - 1) / (threads * 4));
  s.next.store(0, std::memory_order_relaxed);
  s.failed.store(false, std::memory_order_relaxed);
  s.error = nullptr;
  const uint64_t gen = (s.job.load(std::memory_order_relaxed) >> 32) + 1;
  s.job.store((gen << 32) | kOpen, std::memory_order_seq_cst);  // publishes the fields above
  s.wake_sleepers();
  s.drain();
  // Every chunk is claimed: close the loop, then wait for the workers that joined it.
  uint64_t j = s.job.fetch_and(~kOpen, std::memory_order_acq_rel) & ~kOpen;
  if (j & kJoinedMask) {
    const auto deadline = std::chrono::steady_clock::now() + kCallerSpin;
    for (int spins = 1; (j & kJoinedMask) != 0; ++spins) {
      cpu_relax();
      j = s.job.load(std::memory_order_acquire);
      if ((spins & 63) == 0 && std::chrono::steady_clock::now() > deadline) break;
    }
    if (j & kJoinedMask) {  // a worker is slow (maybe preempted on this core): sleep instead of competing
      s.caller_waiting.store(true, std::memory_order_seq_cst);
      std::unique_lock<std::mutex> lock(s.done_mu);
      while (s.job.load(std::memory_order_seq_cst) & kJoinedMask) s.done_cv.wait(lock);
      s.caller_waiting.store(false, std::memory_order_relaxed);
    }
  }
  s.fn = nullptr;
  if (s.failed.load(std::memory_order_acquire)) std::rethrow_exception(s.error);
}

}  // namespace cclip
