# The files the wasm build depends on (native/core/file_reader.cc is replaced by wasm/src/file_reader_wasm.cc), one per line, sorted (LC_ALL=C); sourced by build.sh. The same list and
# hash are computed by lib/backends/wasm-artifacts.ts to tell whether wasm/prebuilt is up to date.
cclip_wasm_sources() {
  (cd "$1" && ls native/core/*.cc native/core/*.h wasm/src/* wasm/build.sh wasm/sources.sh | grep -v '^native/core/file_reader.cc$' | LC_ALL=C sort)
}
# sha256 over "path\0sha256(content)\n" of each source, in order.
cclip_wasm_sources_hash() {
  local f
  for f in $(cclip_wasm_sources "$1"); do printf '%s\0%s\n' "$f" "$(sha256sum < "$1/$f" | cut -c1-64)"; done | sha256sum | cut -c1-64
}
