// The C++ tests' one check helper: counts results and prints each failure; summary() prints the
// "N passed, N failed" line that test/helpers/cpp-test.ts reads and returns the exit status.
#pragma once
#include <cstdio>
#include <string>

namespace cclip_test {

inline int g_passed = 0, g_failed = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

inline int summary() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

}  // namespace cclip_test
