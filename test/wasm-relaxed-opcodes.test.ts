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

/** (func (param v128 v128 v128) (result v128) (i32.const 22525) drop (v128.const <bytes>) drop (op a b c)); 22525's
 * LEB128 and the constant's bytes spell the prototype opcode too. */
function moduleWith(op: number[], bodyPad = 0): Uint8Array<ArrayBuffer> {
  const constBytes = [...PROTO_FMA, ...PROTO_FMA, ...PROTO_FMA, ...PROTO_FMA, ...PROTO_FMA, 0];
  const body = [0x00, 0x41, ...PROTO_FMA, 0x1a, 0xfd, 0x0c, ...constBytes, 0x1a, 0x20, 0, 0x20, 1, 0x20, 2, ...op, 0x0b];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    1, 8, 1, 0x60, 3, 0x7b, 0x7b, 0x7b, 1, 0x7b,
    3, 2, 1, 0,
    10, body.length + 2 + bodyPad, 1, body.length + bodyPad, ...body, ...new Array(bodyPad).fill(0x01),
  ]);
}

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
  t.deepEqual([...r.bytes], [...moduleWith(RELAXED_MADD)], 'only the opcode changed (the i32.const and v128.const bytes did not)');
  if (relaxedSimdSupported()) t.ok(WebAssembly.validate(r.bytes), 'this engine validates the result');
  else t.pass('(this engine has no relaxed SIMD: validation left to wasm-simd.test.ts, which runs with it on)');
  const again = rewrite(r.bytes);
  t.equal(again.out, '1', 'an already standard module: counted');
  t.deepEqual([...again.bytes], [...r.bytes], 'and left as it is');
  t.end();
});

test('relaxed-opcodes: fails on what it cannot vouch for', (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['a prototype fms (0xb0, unassigned in the standard)', moduleWith([0xfd, 0xb0, 0x01]), /unknown 0xfd opcode 0xb0/],
    ['another relaxed opcode (laneselect, 0x109)', moduleWith([0xfd, 0x89, 0x02]), /relaxed opcode 0x109/],
    ['a body that does not end on its end opcode', moduleWith(PROTO_FMA, 2), /does not end|unknown opcode/],
    ['not a module', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), /not a wasm module/],
  ];
  for (const [what, bytes, message] of cases) {
    const r = rewrite(bytes);
    t.notEqual(r.status, 0, `${what}: exits non-zero`);
    t.match(r.err, message, `${what}: says why`);
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
    t.match(info.relaxedCxxflags, /-mrelaxed-simd/, 'built with -mrelaxed-simd');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
