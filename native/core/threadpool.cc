#include "threadpool.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace cclip {

struct ThreadPool::State {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable wake, done;
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0, chunk = 1, next = 0;
  int active = 0;
  uint64_t generation = 0;
  bool stop = false;
  std::exception_ptr error;
  std::mutex loop_mu;  // one parallel_for at a time

  // Takes chunks until none are left. Called with `mu` unlocked.
  void drain() {
    for (;;) {
      int64_t begin;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (next >= n) return;
        begin = next;
        next += chunk;
      }
      try {
        (*fn)(begin, std::min(n, begin + chunk));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu);
        wake.wait(lock, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
        ++active;
      }
      drain();
      {
        std::lock_guard<std::mutex> lock(mu);
        if (--active == 0) done.notify_all();
      }
    }
  }
};

ThreadPool::ThreadPool(int threads) : state_(new State) {
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 1; i < threads; ++i) state_->workers.emplace_back([s = state_.get()] { s->worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->wake.notify_all();
  for (auto& t : state_->workers) t.join();
}

int ThreadPool::size() const { return static_cast<int>(state_->workers.size()) + 1; }

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t threads = size();
  if (threads == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> loop(state_->loop_mu);
  State& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.fn = &fn;
    s.n = n;
    // About four chunks per thread balances uneven work without much locking.
    s.chunk = std::max(grain, (n + threads * 4 - 1) / (threads * 4));
    s.next = 0;
    s.error = nullptr;
    ++s.generation;
    ++s.active;  // the caller
  }
  s.wake.notify_all();
  s.drain();
  std::unique_lock<std::mutex> lock(s.mu);
  --s.active;
  s.done.wait(lock, [&] { return s.active == 0; });
  s.fn = nullptr;
  if (s.error) std::rethrow_exception(s.error);
}

}  // namespace cclip
