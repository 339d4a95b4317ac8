#include "profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace cclip {

bool OpProfile::enabled() {
  static const bool on = [] {
    const char* v = std::getenv("CCLIP_PROFILE");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

void OpProfile::print(const char* title) const {
  std::vector<std::pair<std::string, double>> rows(totals_.begin(), totals_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  double total = 0;
  for (const auto& r : rows) total += r.second;
  std::fprintf(stderr, "[cclip profile] %s: %.1f ms\n", title, total * 1e3);
  for (const auto& [op, seconds] : rows) {
    std::fprintf(stderr, "[cclip profile]   %-28s %9.2f ms %5.1f%%\n", op.c_str(), seconds * 1e3,
                 total > 0 ? 100.0 * seconds / total : 0.0);
  }
}

}  // namespace cclip
