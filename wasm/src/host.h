// The wasm entry layer's link to JavaScript: every core call runs on one runner pthread; these post requests
// and completions to the main (JS) thread, where Module.cclipHost (lib/backends/wasm-core.ts) serves them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace cclip_wasm {

// The id and byte size of the weight source named `name` (registered by the load call before any read).
int source_id(const std::string& name, uint64_t* bytes);
// Has the JS host copy `bytes` of source `id` at `offset` into dst (heap memory); blocks this (non-main)
// thread until the copy is done. Throws std::runtime_error with the host's message on failure.
void read_source(int id, void* dst, size_t bytes, uint64_t offset);

}  // namespace cclip_wasm
