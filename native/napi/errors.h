// Failures on worker threads -> JavaScript errors with a `code`: captured as plain data in Execute (no N-API
// calls off the JS thread), turned into an Error on the JS thread.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

namespace cclip::napi {

struct Failure {
  std::string message;
  std::string code;  // a ClipErrorCode (lib/errors.ts), or empty: the JS side reports E_NATIVE
};

// The failure of the exception in flight (call inside a catch block): cclip::Error keeps its code,
// std::bad_alloc becomes "out of memory while <what>".
Failure current_failure(const char* what);

Napi::Error to_js_error(Napi::Env env, const Failure& failure);
Napi::Value rejected_promise(Napi::Env env, const Failure& failure);

// Runs `body`, storing a failure in `out` instead of throwing.
template <typename F>
void capture_failure(const char* what, Failure& out, F&& body) {
  try {
    body();
  } catch (...) {
    out = current_failure(what);
  }
}

}  // namespace cclip::napi
