// depthwise_conv7_layer_norm (ops.h) with the instruction set chosen by the caller, so that tests cover every
// variant the CPU runs (depthwise_conv7_layer_norm itself picks the widest).
#pragma once
#include "threadpool.h"

namespace cclip {

enum class DepthwiseIsa { kPortable, kAvx2, kAvx512 };

// Whether `isa`'s variant is compiled in and this CPU runs it (kPortable: always).
bool depthwise_isa_runs_here(DepthwiseIsa isa);

// As depthwise_conv7_layer_norm, with `isa`'s variant (which must run here).
void depthwise_conv7_layer_norm_isa(DepthwiseIsa isa, const float* x, int n, int h, int w, int c, const float* weight,
                                    const float* conv_bias, const float* norm_gamma, const float* norm_beta, float eps,
                                    float* y, ThreadPool& pool);

}  // namespace cclip
