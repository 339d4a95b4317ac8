/**
 * Both wasm builds end to end: cclip.wasm (SIMD128) and cclip-relaxed.wasm (relaxed SIMD's fused multiply-add; run in
 * a child with --experimental-wasm-relaxed-simd where this Node does not have it on, as Node 22+ does) compute every
 * fixture model in fp32 and bf16 within the fixture tolerances (fp32 max relative difference 1e-4, bf16 cosine
 * 0.999), each row alone bit for bit as in its batch, and CCLIP_WASM_SIMD picks the build (auto: relaxed where the
 * engine runs it). parity.test.ts covers the build this process picks in depth.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'tape';
import { relaxedSimdNodeFlags, wasmBackend, wasmSimdChoice } from '../lib/backends/wasm.js';
import { relaxedSimdSupported } from '../lib/backends/wasm-core.js';
import { isClipError } from '../lib/errors.js';
import { FIXTURE_MODELS, projectRoot } from './helpers/fixtures.js';

const run = promisify(execFile);
const skip = !wasmBackend.available().ok;

type ChildResult = Record<string, { maxRel: number; minCos: number; rowsAlone: boolean }> & {
  builds?: string[];
  error?: { code: string; message: string };
};

async function child(simd: string, relaxedFlag: boolean): Promise<ChildResult> {
  const flags = relaxedFlag ? relaxedSimdNodeFlags() : [];
  const { stdout } = await run(process.execPath, [...flags, '--import', 'tsx', path.join(projectRoot, 'test', 'wasm-simd-child.ts')], {
    cwd: projectRoot,
    env: { ...process.env, CCLIP_WASM_SIMD: simd },
    timeout: 240_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildResult;
}

test('wasm builds: simd128 and relaxed, every fixture model, fp32 and bf16, rows alone == in the batch', { skip }, async (t) => {
  t.timeoutAfter(600_000);
  const cases: [string, boolean, string][] = [
    ['simd128', true, 'simd128'], // the SIMD128 build even where relaxed SIMD is on
    ['relaxed', true, 'relaxed'],
    ['', true, 'relaxed'], // auto, with relaxed SIMD on
  ];
  for (const [simd, relaxedFlag, want] of cases) {
    const label = `CCLIP_WASM_SIMD=${simd || '(unset)'}${relaxedFlag ? ', relaxed SIMD on' : ''}`;
    const result = await child(simd, relaxedFlag);
    if (result.error) {
      t.fail(`${label}: ${result.error.code} ${result.error.message}`);
      continue;
    }
    t.deepEqual(result.builds, [want], `${label}: every model ran ${want}`);
    for (const name of FIXTURE_MODELS) {
      const fp32 = result[`${name} fp32`], bf16 = result[`${name} bf16`];
      t.ok(fp32.maxRel <= 1e-4, `${label} ${name} fp32: max rel diff ${fp32.maxRel.toExponential(2)} <= 1e-4`);
      t.ok(bf16.minCos >= 0.999, `${label} ${name} bf16: min cosine ${bf16.minCos.toFixed(6)} >= 0.999`);
      t.ok(fp32.rowsAlone && bf16.rowsAlone, `${label} ${name}: every row alone == its row of the batch (fp32 and bf16)`);
    }
  }
});

test('wasm builds: relaxed asked of an engine without relaxed SIMD is E_BACKEND_UNAVAILABLE', { skip: skip || relaxedSimdSupported() }, async (t) => {
  const result = await child('relaxed', false);
  t.equal(result.error?.code, 'E_BACKEND_UNAVAILABLE', `E_BACKEND_UNAVAILABLE: ${result.error?.message}`);
  t.match(result.error?.message ?? '', /relaxed SIMD.*Node 22/, 'the message says which runtimes have it');
});

test('wasm builds: CCLIP_WASM_SIMD is validated; auto follows the engine', (t) => {
  const saved = process.env.CCLIP_WASM_SIMD;
  try {
    process.env.CCLIP_WASM_SIMD = 'sse';
    t.throws(() => wasmSimdChoice(), (err: unknown) => isClipError(err, 'E_INVALID_ARGUMENT') && /auto, relaxed or simd128/.test((err as Error).message), 'an unknown value: E_INVALID_ARGUMENT');
    for (const v of ['', 'auto']) {
      process.env.CCLIP_WASM_SIMD = v;
      t.equal(wasmSimdChoice(), relaxedSimdSupported() ? 'relaxed' : 'simd128', `${JSON.stringify(v)}: ${relaxedSimdSupported() ? 'relaxed (this engine has it)' : 'simd128 (this engine lacks relaxed SIMD)'}`);
    }
    process.env.CCLIP_WASM_SIMD = 'simd128';
    t.equal(wasmSimdChoice(), 'simd128', 'simd128');
  } finally {
    if (saved === undefined) delete process.env.CCLIP_WASM_SIMD;
    else process.env.CCLIP_WASM_SIMD = saved;
  }
  t.end();
});
