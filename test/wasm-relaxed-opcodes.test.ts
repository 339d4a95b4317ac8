/**
 * wasm/src/relaxed-opcodes.mjs, the build step that re-encodes clang 14's prototype f32x4.fma (0xfd 0xaf) as the
 * standard f32x4.relaxed_madd (0xfd 0x105): only opcodes change (the same bytes inside immediates stay), anything it
 * cannot vouch for fails, and the committed cclip-relaxed.wasm holds as many multiply-adds as BUILD_INFO.json says.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'tape';
import { readBuildInfo, wasmArtifacts } from '../lib/backends/wasm-artifacts.js';
import { relaxedSimdSupported } from '../lib/backends/wasm-core.js';
import { projectRoot } from './helpers/fixtures.js';

const tool = path.join(projectRoot, 'wasm', 'src', 'relaxed-opcodes.mjs');
const PROTO_FMA = [0xfd, 0xaf, 0x01];
const RELAXED_MADD = [0xfd, 0x85, 0x02];

/**
 * (module (memory 1) (func (param v128 v128 v128) (result v128) (i32.const 22525) drop (v128.const <bytes>) drop
 * (v128.load offset=22525 (i32.const 0)) drop [before] (op a b c))): 22525's LEB128, the constant's bytes and the
 * load's offset spell the prototype opcode too. `before`: stack-neutral instructions ahead of the last one.
 */
function moduleWith(op: number[], { pad = 0, before = [] as number[] } = {}): Uint8Array<ArrayBuffer> {
  const constBytes = [...PROTO_FMA, ...PROTO_FMA, ...PROTO_FMA, ...PROTO_FMA, ...PROTO_FMA, 0];
  const body = [0x00, 0x41, ...PROTO_FMA, 0x1a, 0xfd, 0x0c, ...constBytes, 0x1a, 0x41, 0, 0xfd, 0x00, 0x00, ...PROTO_FMA, 0x1a,
    ...before, 0x20, 0, 0x20, 1, 0x20, 2, ...op, 0x0b];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    1, 8, 1, 0x60, 3, 0x7b, 0x7b, 0x7b, 1, 0x7b,
    3, 2, 1, 0,
    5, 3, 1, 0, 1,
    10, body.length + 2 + pad, 1, body.length + pad, ...body, ...new Array(pad).fill(0x01),
  ]);
}
/** A prototype multiply-add whose result is dropped, to sit ahead of a failing instruction. */
const FMA_DROPPED = [0x20, 0, 0x20, 1, 0x20, 2, ...PROTO_FMA, 0x1a];

function rewrite(bytes: Uint8Array): { status: number | null; out: string; err: string; bytes: Uint8Array<ArrayBuffer> } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cclip-relaxed-'));
  try {
    const file = path.join(dir, 'm.wasm');
    writeFileSync(file, bytes);
    const r = spawnSync(process.execPath, [tool, file], { encoding: 'utf8' });
    return { status: r.status, out: r.stdout.trim(), err: r.stderr, bytes: new Uint8Array(readFileSync(file)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('relaxed-opcodes: rewrites the opcode, not the same bytes in immediates', (t) => {
  const before = moduleWith(PROTO_FMA);
  t.notOk(WebAssembly.validate(before), 'no engine takes the prototype opcode');
  const r = rewrite(before);
  t.equal(r.status, 0, `exit 0 ${r.err}`);
  t.equal(r.out, '1', 'one multiply-add');
  t.deepEqual([...r.bytes], [...moduleWith(RELAXED_MADD)], 'only the opcode changed (the i32.const, v128.const and memarg offset bytes did not)');
  if (relaxedSimdSupported()) t.ok(WebAssembly.validate(r.bytes), 'this engine validates the result');
  else t.pass('(this engine has no relaxed SIMD: validation left to wasm-simd.test.ts, which runs with it on)');
  const again = rewrite(r.bytes);
  t.equal(again.out, '1', 'an already standard module: counted');
  t.deepEqual([...again.bytes], [...r.bytes], 'and left as it is');
  t.end();
});

test('relaxed-opcodes: fails on what it cannot vouch for', (t) => {
  const fmaFirst = { before: FMA_DROPPED };
  const whole = moduleWith(PROTO_FMA);
  const cases: [string, Uint8Array, RegExp][] = [
    ['a prototype fms (0xb0, unassigned in the standard)', moduleWith([0xfd, 0xb0, 0x01], fmaFirst), /unknown 0xfd opcode 0xb0/],
    ['another relaxed opcode (laneselect, 0x109)', moduleWith([0xfd, 0x89, 0x02], fmaFirst), /relaxed opcode 0x109/],
    ['an unassigned atomic opcode (0xfe 0x05)', moduleWith([0xfe, 0x05, 0x02, 0x00], fmaFirst), /unknown 0xfe opcode 0x5/],
    ['a memarg with a memory index (multi-memory)', moduleWith([0xfd, 0x00, 0x40, 0x00, 0x00], fmaFirst), /memory index/],
    ['a body that does not end on its end opcode', moduleWith(PROTO_FMA, { pad: 2 }), /does not end|unknown opcode/],
    ['a section that runs past the end of the file', whole.slice(0, whole.length - 3), /runs past/],
    ['not a module', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), /not a wasm module/],
  ];
  for (const [what, bytes, message] of cases) {
    const r = rewrite(bytes);
    t.notEqual(r.status, 0, `${what}: exits non-zero`);
    t.match(r.err, message, `${what}: says why`);
    t.deepEqual([...r.bytes], [...bytes], `${what}: the file is left as it was (no multiply-add rewritten before the failure)`);
  }
  t.end();
});

test('relaxed-opcodes: the committed builds', (t) => {
  const artifacts = wasmArtifacts();
  if ('error' in artifacts) return t.fail(artifacts.error), t.end();
  const info = readBuildInfo(artifacts.dir);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cclip-relaxed-'));
  try {
    for (const [file, want] of [['cclip-relaxed.wasm', info.relaxedMadds], ['cclip.wasm', 0]] as const) {
      const copy = path.join(dir, file);
      copyFileSync(path.join(artifacts.dir, file), copy);
      const count = Number(execFileSync(process.execPath, [tool, copy], { encoding: 'utf8' }).trim());
      t.equal(count, want, `${file}: ${count} relaxed_madd (BUILD_INFO.json: ${info.relaxedMadds} in the relaxed build)`);
      t.ok(readFileSync(copy).equals(readFileSync(path.join(artifacts.dir, file))), `${file}: nothing left to rewrite`);
    }
    t.ok(info.relaxedMadds > 0, 'the relaxed build multiply-adds');
    // An independent count: the byte pattern of the standard opcode anywhere in the relaxed module.
    const bytes = readFileSync(path.join(artifacts.dir, 'cclip-relaxed.wasm'));
    let pattern = 0;
    for (let i = bytes.indexOf(0xfd); i >= 0; i = bytes.indexOf(0xfd, i + 1)) if (bytes[i + 1] === 0x85 && bytes[i + 2] === 0x02) pattern++;
    t.equal(pattern, info.relaxedMadds, `the bytes fd 85 02 occur ${pattern} times in cclip-relaxed.wasm`);
    t.match(info.relaxedCxxflags, /-mrelaxed-simd/, 'built with -mrelaxed-simd');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
