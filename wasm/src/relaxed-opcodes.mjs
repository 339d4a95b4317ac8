// Rewrites the relaxed-SIMD multiply-add of clang 14 (Debian's Emscripten 3.1.6) to its final encoding, in place.
// clang 14 knows relaxed SIMD only as the 2021 prototype: __builtin_wasm_fma_f32x4 emits f32x4.fma, opcode 0xfd 0xaf,
// which no runtime accepts any more. The standard's f32x4.relaxed_madd is 0xfd 0x105 (Chromium 114+, Node 22+,
// Node 20 with --experimental-wasm-relaxed-simd) and takes the same three operands (a, b, c) -> a * b + c, the order
// gemm.cc passes them in. Both LEB128 opcodes are two bytes, so only those bytes change.
// Every function body is decoded instruction by instruction (immediates skipped by the opcode tables below), so
// nothing but an opcode is ever rewritten (on the 3.1.6 build: as many as `wasm-dis` lists). Any other relaxed
// opcode, any SIMD opcode the standard leaves unassigned (clang 14's other prototype relaxed ops live there) and
// any opcode this decoder does not know fail the build.
// Usage: node relaxed-opcodes.mjs module.wasm   rewrites the file; prints how many relaxed_madd it then holds
//        node relaxed-opcodes.mjs --count-prototype file.wasm|file.o...   prints how many f32x4.fma they hold
// (object files too: their code section is a module's, with padded LEBs where relocations go).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const PROTO_FMA = 0xaf;
const RELAXED_MADD = 0x105;
// SIMD opcodes below 0x100 that the standard leaves unassigned (0xaf aside): clang 14's other prototype relaxed ops
// (swizzle, truncations, fms, laneselects, min / max, f64x2 fma / fms) are among them. None may appear.
const UNASSIGNED = new Set([0x9a, 0xa2, 0xa5, 0xa6, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee]);
const RELAXED_LAST = 0x113;

class Reader {
  constructor(bytes, pos, end) {
    this.b = bytes;
    this.pos = pos;
    this.end = end;
  }
  byte() {
    if (this.pos >= this.end) throw new Error(`read past the end at ${this.pos}`);
    return this.b[this.pos++];
  }
  leb() {  // unsigned or signed: only its length matters here, except for small unsigned values
    let value = 0, shift = 0, byte;
    do {
      byte = this.byte();
      if (shift < 28) value |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    return value >>> 0;
  }
  skip(n) {
    if (this.pos + n > this.end) throw new Error(`read past the end at ${this.pos}`);
    this.pos += n;
  }
  memarg() {
    // Bit 6 of the alignment field announces a memory index (multi-memory), which this decoder does not read.
    if (this.leb() & 0x40) throw new Error(`a memarg with a memory index at ${this.pos}: not decoded here`);
    this.leb();
  }
  valueType() {  // one byte; GC reference types (0x63 / 0x64 + a heap type) are not decoded here
    const t = this.byte();
    if (t === 0x63 || t === 0x64) throw new Error(`a GC reference type at ${this.pos - 1}: not decoded here`);
  }
}

// Immediates of the one-byte opcodes; every opcode without an entry in 0x00-0xc4 has none, others are unknown.
function skipImmediates(r, op) {
  if (op >= 0x28 && op <= 0x3e) return r.memarg();  // loads and stores
  if (op >= 0x45 && op <= 0xc4) return;  // numeric
  switch (op) {
    case 0x00: case 0x01: case 0x05: case 0x0b: case 0x0f: case 0x19: case 0x1a: case 0x1b: case 0xd1:
      return;
    case 0x02: case 0x03: case 0x04: case 0x06: {  // block, loop, if, try: a block type (one byte or an s33)
      const t = r.b[r.pos];
      if (t === 0x63 || t === 0x64) throw new Error(`a GC reference block type at ${r.pos}: not decoded here`);
      return void r.leb();
    }
    case 0x07: case 0x08: case 0x09: case 0x18:  // catch, throw, rethrow, delegate
    case 0x0c: case 0x0d: case 0x10: case 0x12:  // br, br_if, call, return_call
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x24: case 0x25: case 0x26:  // locals, globals, tables
    case 0x3f: case 0x40:  // memory.size / grow: a memory index
    case 0x41: case 0x42:  // i32 / i64 const
    case 0xd0: case 0xd2:  // ref.null type, ref.func index
      return void r.leb();
    case 0x0e: {  // br_table
      const n = r.leb();
      for (let i = 0; i <= n; ++i) r.leb();
      return;
    }
    case 0x11: case 0x13:  // call_indirect: type, table
      r.leb();
      return void r.leb();
    case 0x1c: {  // typed select
      const n = r.leb();
      for (let i = 0; i < n; ++i) r.valueType();
      return;
    }
    case 0x43: return r.skip(4);
    case 0x44: return r.skip(8);
  }
  throw new Error(`unknown opcode 0x${op.toString(16)} at ${r.pos - 1}`);
}

function skipMiscImmediates(r, sub) {  // 0xfc prefix
  if (sub <= 7) return;  // saturating truncations
  const counts = { 8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1 };
  if (!(sub in counts)) throw new Error(`unknown 0xfc opcode 0x${sub.toString(16)} at ${r.pos}`);
  for (let i = 0; i < counts[sub]; ++i) r.leb();
}

function skipSimdImmediates(r, sub) {  // 0xfd prefix
  if (sub <= 11 || sub === 0x5c || sub === 0x5d) return r.memarg();  // loads, store, load_zero
  if (sub === 12 || sub === 13) return r.skip(16);  // v128.const, i8x16.shuffle
  if (sub >= 21 && sub <= 34) return r.skip(1);  // extract / replace lane
  if (sub >= 0x54 && sub <= 0x5b) {  // load / store lane
    r.memarg();
    return r.skip(1);
  }
  if (sub > 0xff || UNASSIGNED.has(sub)) throw new Error(`unknown 0xfd opcode 0x${sub.toString(16)} at ${r.pos}`);
}

function skipAtomicImmediates(r, sub) {  // 0xfe prefix
  if (sub === 3) return r.skip(1);  // atomic.fence
  if (sub > 0x4e || (sub >= 0x04 && sub <= 0x0f)) throw new Error(`unknown 0xfe opcode 0x${sub.toString(16)} at ${r.pos}`);
  r.memarg();
}

// Decodes one function body [pos, end): the offsets of its prototype f32x4.fma subopcodes (two bytes each) and how
// many standard relaxed_madd it already holds.
function scanBody(bytes, pos, end, found) {
  const r = new Reader(bytes, pos, end);
  const localGroups = r.leb();
  for (let i = 0; i < localGroups; ++i) {
    r.leb();
    r.valueType();
  }
  let last = -1;
  while (r.pos < end) {
    last = r.byte();
    if (last === 0xfc) skipMiscImmediates(r, r.leb());
    else if (last === 0xfe) skipAtomicImmediates(r, r.leb());
    else if (last === 0xfd) {
      const at = r.pos;
      const sub = r.leb();
      if (sub === PROTO_FMA) {
        if (r.pos - at !== 2) throw new Error(`f32x4.fma at ${at} is not a two-byte opcode`);
        found.prototype.push(at);
      } else if (sub === RELAXED_MADD) {
        ++found.standard;
      } else if (sub > 0xff && sub <= RELAXED_LAST) {
        throw new Error(`relaxed opcode 0x${sub.toString(16)} at ${at}: only the multiply-add is expected`);
      } else skipSimdImmediates(r, sub);
    } else skipImmediates(r, last);
  }
  if (r.pos !== end || last !== 0x0b) throw new Error(`function body at ${pos} does not end on its end opcode`);
}

/** Decodes the whole module (or object file): { prototype: offsets of f32x4.fma subopcodes, standard: count }. */
export function scanModule(bytes) {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d)
    throw new Error('not a wasm module');
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) throw new Error('not a version 1 wasm module');
  const found = { prototype: [], standard: 0 };
  const r = new Reader(bytes, 8, bytes.length);
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.leb();
    const sectionEnd = r.pos + size;
    if (sectionEnd > bytes.length) throw new Error(`section ${id} at ${r.pos} runs past the end of the file`);
    if (id === 10) {  // code
      const s = new Reader(bytes, r.pos, sectionEnd);
      const functions = s.leb();
      for (let i = 0; i < functions; ++i) {
        const bodySize = s.leb();
        if (s.pos + bodySize > sectionEnd) throw new Error(`function ${i} runs past the code section`);
        scanBody(bytes, s.pos, s.pos + bodySize, found);
        s.skip(bodySize);
      }
      if (s.pos !== sectionEnd) throw new Error('the code section has bytes after its last function');
    }
    r.skip(size);
  }
  return found;
}

/** Re-encodes every prototype f32x4.fma of `bytes` in place once the whole module decoded; returns the relaxed_madd count. */
export function rewriteRelaxedMadd(bytes) {
  const { prototype, standard } = scanModule(bytes);
  for (const at of prototype) {
    bytes[at] = (RELAXED_MADD & 0x7f) | 0x80;
    bytes[at + 1] = RELAXED_MADD >> 7;
  }
  return prototype.length + standard;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  if (args[0] === '--count-prototype') {
    console.log(args.slice(1).reduce((n, f) => n + scanModule(new Uint8Array(readFileSync(f))).prototype.length, 0));
  } else {
    if (args.length !== 1) throw new Error('usage: node relaxed-opcodes.mjs module.wasm | --count-prototype file...');
    const bytes = new Uint8Array(readFileSync(args[0]));
    const n = rewriteRelaxedMadd(bytes);
    writeFileSync(args[0], bytes);
    console.log(n);
  }
}
