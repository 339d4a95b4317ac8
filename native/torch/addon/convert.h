// JS values -> the C++ structs of the torch backend (throws Napi::TypeError naming the bad field).
#pragma once
#include <napi.h>

#include <vector>

#include "arch.h"
#include "model.h"

namespace cclip::js {

// lib/architecture.ts ClipArchitecture
Arch arch_from(const Napi::Value& v);
// lib/manifest.ts TensorEntry[]
std::vector<TensorSpec> specs_from(const Napi::Value& v);
// {device: 'cpu' | 'cuda', precision: 'fp32' | 'bf16', threads, graphs?, fused?, deviceIndex?}
Options options_from(const Napi::Value& v);

int64_t integer(const Napi::Value& v, const char* what, int64_t min, int64_t max);

}  // namespace cclip::js
