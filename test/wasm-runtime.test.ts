/** wasm backend behaviour: a free event loop during forwards, clean process exit, errors, queueing, progress. */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'tape';
import { largestTimerGap } from './helpers/timer-gaps.js';
import { isClipError } from '../lib/errors.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { bytesSource, loadWasmFromSources, wasmBackend, type WeightSource } from '../lib/backends/wasm.js';
import { fixtureModel, floats, readExpected } from './native-helpers.js';

const available = wasmBackend.available();
const skip = !available.ok;
const wasmModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'backends', 'wasm.ts');

test('wasm: available() explains itself, also when the artefacts are missing', (t) => {
  const status = wasmBackend.available();
  t.ok(status.ok || (typeof status.reason === 'string' && status.reason.length > 0), status.ok ? 'available' : `unavailable: ${status.reason}`);
  const empty = mkdtempSync(path.join(os.tmpdir(), 'cclip-wasm-empty-'));
  const saved = process.env.CCLIP_WASM_DIR;
  process.env.CCLIP_WASM_DIR = empty;
  try {
    const missing = wasmBackend.available();
    t.ok(!missing.ok && /cclip\.wasm.*build:wasm/.test(missing.reason), `without artefacts: ${missing.ok ? 'ok?' : missing.reason}`);
  } finally {
    if (saved === undefined) delete process.env.CCLIP_WASM_DIR;
    else process.env.CCLIP_WASM_DIR = saved;
    rmSync(empty, { recursive: true, force: true });
  }
  t.end();
});

test('wasm: the event loop keeps running during a forward', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-deep256');
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const wasm = await wasmBackend.load(model.arch, model.manifest, { precision: 'fp32', device: 'cpu', threads: 2 });
  try {
    const pixels = floats(expected.get('pixels'), 'pixels');
    const n = expected.get('pixels')!.shape[0];
    const { maxGap, ticks, elapsed } = await largestTimerGap(() => wasm.encodeImage(pixels, n), 5);
    t.ok(ticks >= 3, `${ticks} timer ticks during a ${elapsed.toFixed(0)} ms forward`);
    t.ok(maxGap < Math.max(100, elapsed / 2), `longest event-loop gap ${maxGap.toFixed(1)} ms`);
  } finally {
    wasm.dispose();
  }
});

function runChild(script: string): { status: number | null; stdout: string; stderr: string; ms: number } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cclip-wasm-child-'));
  try {
    const file = path.join(dir, 'child.mts');
    writeFileSync(file, script);
    const start = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8', timeout: 120_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - start };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const childLoad = (dispose: boolean) => `
import { wasmBackend } from ${JSON.stringify(wasmModule)};
import { fixtureModel } from ${JSON.stringify(path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'native-helpers.ts'))};
const model = await fixtureModel('xxlarge-tiny');
const m = await wasmBackend.load(model.arch, model.manifest, { precision: 'bf16', device: 'cpu', threads: 2 });
const out = await m.encodeText(new Int32Array(77).fill(1), 1);
console.log('features', out.features.length);
${dispose ? 'm.dispose();' : ''}
`;

test('wasm: the process exits on its own after dispose()', { skip }, (t) => {
  const r = runChild(childLoad(true));
  t.equal(r.status, 0, `exit code 0 after ${r.ms} ms ${r.stderr.slice(-500)}`);
  t.match(r.stdout, /features \d+/, 'the child computed features');
  t.end();
});

test('wasm: an idle model does not keep the process alive either', { skip }, (t) => {
  const r = runChild(childLoad(false));
  t.equal(r.status, 0, `exit code 0 after ${r.ms} ms ${r.stderr.slice(-500)}`);
  t.end();
});

test('wasm: concurrent calls queue; dispose lets them finish; later calls are E_DISPOSED', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const wasm = await wasmBackend.load(model.arch, model.manifest, { precision: 'fp32', device: 'cpu', threads: 2 });
  const pixels = floats(expected.get('pixels'), 'pixels');
  const n = expected.get('pixels')!.shape[0];
  const a = wasm.encodeImage(pixels, n);
  const b = wasm.encodeText(new Int32Array(77 * 2).fill(3), 2);
  const c = wasm.encodeImage(pixels.subarray(0, pixels.length / n), 1);
  wasm.dispose();
  const [ra, rb, rc] = await Promise.all([a, b, c]);
  t.equal(ra.features.length, n * model.arch.embedDim, 'first image call finished');
  t.equal(rb.features.length, 2 * model.arch.embedDim, 'text call finished');
  t.deepEqual(Array.from(rc.features), Array.from(ra.features.subarray(0, model.arch.embedDim)), 'batch of 1 = first row of the batch');
  try {
    await wasm.encodeText(new Int32Array(77), 1);
    t.fail('no error after dispose');
  } catch (err) {
    t.ok(isClipError(err, 'E_DISPOSED'), 'E_DISPOSED after dispose');
  }
});

test('wasm: argument errors', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const rejects = async (p: Promise<unknown>, code: string, what: string) => {
    try {
      await p;
      t.fail(`${what}: no error`);
    } catch (err) {
      t.ok(isClipError(err, code as never), `${what}: ${(err as Error).message}`);
    }
  };
  await rejects(wasmBackend.load(model.arch, model.manifest, { precision: 'fp32', device: 'cuda', threads: 1 }), 'E_BACKEND_UNAVAILABLE', 'cuda');
  await rejects(wasmBackend.load(model.arch, model.manifest, { precision: 'fp16' as never, device: 'cpu', threads: 1 }), 'E_INVALID_ARGUMENT', 'fp16');
  await rejects(wasmBackend.load(model.arch, model.manifest, { precision: 'fp32', device: 'cpu', threads: 1000 }), 'E_INVALID_ARGUMENT', 'threads');
  const wasm = await wasmBackend.load(model.arch, model.manifest, { precision: 'fp32', device: 'cpu', threads: 1 });
  try {
    await rejects(wasm.encodeImage(new Float32Array(5), 1), 'E_INVALID_ARGUMENT', 'pixel count');
    await rejects(wasm.encodeText(new Int32Array(77).fill(1e6), 1), 'E_INVALID_ARGUMENT', 'token id');
    await rejects(wasm.encodeText(new Int32Array(77), 0), 'E_INVALID_ARGUMENT', 'batch 0');
  } finally {
    wasm.dispose();
  }
});

test('wasm: a truncated checkpoint and a failing source are load errors, and progress reaches the total', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cclip-wasm-'));
  try {
    const file = path.join(dir, 'model.safetensors');
    copyFileSync(path.join(model.dir, 'open_clip_model.safetensors'), file);
    const manifest = await readSafetensorsManifest(file);
    let last = { loadedBytes: 0, totalBytes: -1 };
    const ok = await wasmBackend.load(model.arch, manifest, { precision: 'bf16', device: 'cpu', threads: 1, onProgress: (p) => (last = p) });
    ok.dispose();
    t.equal(last.loadedBytes, last.totalBytes, `progress ends at the total (${last.totalBytes} bytes)`);

    truncateSync(file, 100_000);
    try {
      await wasmBackend.load(model.arch, manifest, { precision: 'fp32', device: 'cpu', threads: 1 });
      t.fail('truncated file loaded');
    } catch (err) {
      t.ok(isClipError(err, 'E_CHECKPOINT_CORRUPT') && /truncated|past the end/.test((err as Error).message), `truncated: ${(err as Error).message}`);
    }

    const failing: WeightSource = { size: 1 << 30, read: async () => Promise.reject(new Error('disk on fire')) };
    try {
      await loadWasmFromSources(model.arch, model.manifest, new Map([[model.manifest.files[0], failing]]), { precision: 'fp32', device: 'cpu', threads: 1 });
      t.fail('failing source loaded');
    } catch (err) {
      t.ok(/disk on fire/.test((err as Error).message), `failing source: ${(err as Error).message}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('wasm: loads from bytes in memory (bytesSource)', { skip }, async (t) => {
  const model = await fixtureModel('large-d-tiny');
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const { readFileSync } = await import('node:fs');
  const file = model.manifest.files[0];
  const wasm = await loadWasmFromSources(model.arch, model.manifest, new Map([[file, bytesSource(readFileSync(file))]]), { precision: 'fp32', device: 'cpu', threads: 2 });
  try {
    const out = await wasm.encodeText(Int32Array.from(expected.get('tokens')!.data as BigInt64Array, Number), expected.get('tokens')!.shape[0]);
    const want = floats(expected.get('text_features'), 'text_features');
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out.features[i] - want[i]));
    t.ok(maxDiff < 1e-4, `text features from bytes: max |diff| ${maxDiff.toExponential(2)}`);
  } finally {
    wasm.dispose();
  }
});
