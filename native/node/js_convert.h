// JavaScript values -> core structs (architecture, tensor manifest entries, load options), with TypeErrors
// that name the offending field.
#pragma once
#include <napi.h>

#include <vector>

#include "../core/config.h"
#include "../core/model.h"
#include "../core/weights.h"

namespace cclip_node {

cclip::ClipConfig config_from_js(const Napi::Value& value);               // a ClipArchitecture object
std::vector<cclip::TensorSource> tensors_from_js(const Napi::Value& value);  // TensorEntry[]
cclip::LoadOptions load_options_from_js(const Napi::Value& value);          // {precision, threads}

}  // namespace cclip_node
