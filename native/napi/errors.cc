#include "errors.h"

#include <new>

#include "../core/spec.h"

namespace cclip::napi {

Failure current_failure(const char* what) {
  try {
    throw;
  } catch (const cclip::Error& err) {
    return {err.what(), err.code()};
  } catch (const std::bad_alloc&) {
    return {std::string("out of memory while ") + what, ""};
  } catch (const std::exception& err) {
    const std::string message = err.what();
    return {message.empty() ? std::string("unknown native error while ") + what : message, ""};
  } catch (...) {
    return {std::string("unknown native error while ") + what, ""};
  }
}

Napi::Error to_js_error(Napi::Env env, const Failure& failure) {
  Napi::Error error = Napi::Error::New(env, failure.message);
  if (!failure.code.empty()) error.Set("code", Napi::String::New(env, failure.code));
  return error;
}

Napi::Value rejected_promise(Napi::Env env, const Failure& failure) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(to_js_error(env, failure).Value());
  return deferred.Promise();
}

}  // namespace cclip::napi
