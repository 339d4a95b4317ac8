// A fixed pool of worker threads for data-parallel loops. The calling thread takes part in every loop,
// so a pool of `threads` uses exactly `threads` cores. One loop runs at a time per pool (concurrent callers
// are serialised); a parallel_for issued from inside one of this pool's loops runs inline on that thread.
// Idle workers spin briefly (so back-to-back small loops start fast), then sleep.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

namespace cclip {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads <= 0: all hardware threads
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;

  // Calls fn(begin, end) on disjoint chunks covering [0, n); chunks are at least `grain` long.
  // Blocks until all chunks are done. Exceptions from fn are rethrown here.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace cclip
