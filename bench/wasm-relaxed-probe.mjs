/**
 * Which relaxed-SIMD encodings this JavaScript engine accepts: one tiny module per opcode, each a function
 * (v128, v128, v128) -> v128 that applies the opcode to its three parameters.
 *
 *   node bench/wasm-relaxed-probe.mjs                                  # Node 20: neither (the feature is off)
 *   node --experimental-wasm-relaxed-simd bench/wasm-relaxed-probe.mjs # Node 20 (V8 11.3): the final opcode only
 *
 * clang 14 (Debian's Emscripten 3.1.6) emits only the prototype f32x4.fma (0xfd 0xaf 0x01) for
 * __builtin_wasm_fma_f32x4; the final f32x4.relaxed_madd is 0xfd 0x85 0x02 (0x105), what V8 11.3 and Chromium
 * implement. A result of `true` for the final opcode and `false` for the prototype one means that a clang 14
 * build would have to be rewritten before any engine here would load it, which wasm/build.sh does with
 * wasm/src/relaxed-opcodes.mjs (see wasm/README.md, relaxed SIMD).
 */
function moduleWith(opcode) {
  const body = [0x00, 0x20, 0, 0x20, 1, 0x20, 2, ...opcode, 0x0b]; // no locals; local.get 0..2; op; end
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, // magic, version
    1, 8, 1, 0x60, 3, 0x7b, 0x7b, 0x7b, 1, 0x7b, // type section: (v128 v128 v128) -> v128
    3, 2, 1, 0, // function section
    10, body.length + 2, 1, body.length, ...body, // code section
  ]);
}

const probes = [
  ['f32x4.relaxed_madd (final, 0xfd 0x105)', [0xfd, 0x85, 0x02]],
  ['f32x4.fma (prototype, 0xfd 0xaf, what clang 14 emits)', [0xfd, 0xaf, 0x01]],
];
for (const [name, opcode] of probes) {
  let why = '';
  try {
    new WebAssembly.Module(moduleWith(opcode));
  } catch (err) {
    why = ` (${err.message})`;
  }
  console.log(`${name}: ${WebAssembly.validate(moduleWith(opcode))}${why}`);
}
