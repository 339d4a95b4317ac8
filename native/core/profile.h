// Opt-in per-op wall-clock totals (CCLIP_PROFILE=1 in the environment): each forward prints a table of
// where its time went to stderr. Disabled, a ScopedOpTimer costs one branch.
#pragma once
#include <chrono>
#include <map>
#include <string>

namespace cclip {

class OpProfile {
 public:
  static bool enabled();
  void add(const char* op, double seconds) { totals_[op] += seconds; }
  void print(const char* title) const;  // to stderr, largest first

 private:
  std::map<std::string, double> totals_;
};

class ScopedOpTimer {
 public:
  ScopedOpTimer(OpProfile* profile, const char* op) : profile_(profile), op_(op) {
    if (profile_) start_ = std::chrono::steady_clock::now();
  }
  ~ScopedOpTimer() {
    if (profile_) profile_->add(op_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

 private:
  OpProfile* profile_;
  const char* op_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace cclip
