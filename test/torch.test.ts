/** libtorch backend: .bin loading, batch independence, CUDA graphs, and bad inputs -> errors, never crashes (parity: test/parity.test.ts). */
import { copyFileSync, mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'tape';
import { torchBackend } from '../lib/backends/torch.js';
import type { BackendModel, Precision } from '../lib/backends/types.js';
import { readManifest } from '../lib/checkpoint/index.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { ClipError } from '../lib/errors.js';
import { FIXTURE_MODELS, projectRoot } from './helpers/fixtures.js';
import { type FixtureModel, fixtureModel, floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from './native-helpers.js';

const FP32_TOLERANCE = 1e-4;
const BF16_MIN_COSINE = 0.999;
const status = torchBackend.available();
const skip = status.ok ? false : `torch backend unavailable: ${status.reason}`;
if (skip) test(`torch backend tests SKIPPED (${skip})`, { skip: true }, () => {});

function load(model: FixtureModel, precision: Precision, manifest = model.manifest): Promise<BackendModel> {
  return torchBackend.load(model.arch, manifest, { precision, device: 'cpu', threads: 2 });
}

async function rejects(t: test.Test, promise: Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await promise;
    t.fail(`${what}: did not throw`);
  } catch (err) {
    t.ok(err instanceof ClipError && err.code === code, `${what}: ${code} (${(err as Error).message.slice(0, 160)})`);
  }
}

// Parity with the reference on every fixture model and precision (CPU and CUDA): test/parity.test.ts.

test('torch: the .bin (torch.save zip) checkpoint gives the safetensors outputs; rows are batch-independent', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const bin = await readManifest(path.join(model.dir, 'open_clip_pytorch_model.bin'));
  const progress: number[][] = [];
  const torch = await torchBackend.load(model.arch, bin, { precision: 'fp32', device: 'cpu', threads: 1, onProgress: (p) => progress.push([p.loadedBytes, p.totalBytes]) });
  try {
    t.ok(progress.length > 0 && progress.at(-1)![0] === progress.at(-1)![1], `progress reaches the total (${progress.length} reports)`);
    const S = model.arch.vision.imageSize;
    const pixels = floats(expected.get('pixels'), 'pixels');
    const one = await torch.encodeImage(pixels.subarray(3 * S * S, 2 * 3 * S * S), 1);
    const D = model.arch.embedDim;
    const want = floats(expected.get('image_features'), 'image_features').subarray(D, 2 * D);
    t.ok(maxRelativeDiff(one.features, want) <= FP32_TOLERANCE, 'image row 1 alone matches');
    const ctx = model.arch.text.contextLength;
    const tokens = tokensOf(expected.get('tokens'));
    const [a, b] = await Promise.all([torch.encodeText(tokens.subarray(0, ctx), 1), torch.encodeText(tokens, tokens.length / ctx)]);
    t.ok(maxRelativeDiff(a.features, b.features.subarray(0, D)) <= FP32_TOLERANCE, 'text row 0 alone matches its batch row (concurrent calls)');
  } finally {
    torch.dispose();
  }
});

test('torch: bad inputs are typed errors', { skip }, async (t) => {
  const model = await fixtureModel('large-d-tiny');
  const torch = await load(model, 'fp32');
  const S = model.arch.vision.imageSize;
  const ctx = model.arch.text.contextLength;
  await rejects(t, torch.encodeImage(new Float32Array(5), 1), 'E_INVALID_ARGUMENT', 'short pixels');
  await rejects(t, torch.encodeImage(new Float32Array(3 * S * S), 0), 'E_INVALID_ARGUMENT', 'n = 0');
  await rejects(t, torch.encodeImage(new Float64Array(3 * S * S) as unknown as Float32Array, 1), 'E_INVALID_ARGUMENT', 'Float64Array pixels');
  await rejects(t, torch.encodeText(new Int32Array(ctx).fill(model.arch.text.vocabSize), 1), 'E_INVALID_ARGUMENT', 'token id past the vocabulary');
  await rejects(t, torch.encodeText(new Int32Array(ctx).fill(-1), 1), 'E_INVALID_ARGUMENT', 'negative token id');
  await rejects(t, torch.encodeText(new Int32Array(ctx + 1), 1), 'E_INVALID_ARGUMENT', 'ragged tokens');
  const zeros = await torch.encodeText(new Int32Array(ctx), 1);
  t.equal(zeros.features.length, model.arch.embedDim, 'an all-zero row still encodes (end token at 0)');
  const nan = await torch.encodeImage(new Float32Array(3 * S * S).fill(Number.NaN), 1);
  t.equal(nan.features.length, model.arch.embedDim, 'NaN pixels give NaN features, not a crash');
  torch.dispose();
  torch.dispose();
  await rejects(t, torch.encodeImage(new Float32Array(3 * S * S), 1), 'E_DISPOSED', 'after dispose');
});

test('torch: broken checkpoints and devices are typed errors', { skip }, async (t) => {
  const model = await fixtureModel('large-d-tiny');
  const missing = { ...model.manifest, tensors: new Map(model.manifest.tensors) };
  missing.tensors.delete('visual.trunk.stem.0.bias');
  await rejects(t, load(model, 'fp32', missing), 'E_TENSOR_MISSING', 'missing tensor');
  const tmp = mkdtempSync(path.join(tmpdir(), 'cclip-torch-'));
  try {
    const file = path.join(tmp, 'open_clip_model.safetensors');
    copyFileSync(path.join(model.dir, 'open_clip_model.safetensors'), file);
    const manifest = await readSafetensorsManifest(file);
    truncateSync(file, 4096); // the header stays readable; every tensor past it is gone
    await rejects(t, load(model, 'fp32', manifest), 'E_CHECKPOINT_CORRUPT', 'truncated after the manifest was read');
    rmSync(file);
    await rejects(t, load(model, 'fp32', manifest), 'E_NATIVE', 'file removed after the manifest was read');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const cuda = torchBackend.available('cuda');
  if (!cuda.ok) {
    t.ok(cuda.reason.length > 0, `available('cuda') says why not: ${cuda.reason}`);
    await rejects(t, torchBackend.load(model.arch, model.manifest, { precision: 'bf16', device: 'cuda', threads: 0 }), 'E_BACKEND_UNAVAILABLE', "device 'cuda' without CUDA");
  }
  await rejects(t, torchBackend.load(model.arch, model.manifest, { precision: 'fp16' as Precision, device: 'cpu', threads: 0 }), 'E_INVALID_ARGUMENT', 'unknown precision');
});

test('torch addon: wrong arguments reject with a typed code, never throw or abort', { skip }, async (t) => {
  const { createRequire } = await import('node:module');
  const file = [path.join('build', 'Release'), path.join('build-torch', 'Release')].map((d) => path.join(projectRoot, d, 'convnext_clip_torch.node'));
  const { existsSync } = await import('node:fs');
  const addon = createRequire(import.meta.url)(file.find((f) => existsSync(f))!) as {
    loadModel: (...args: unknown[]) => Promise<{ encodeImage: (...a: unknown[]) => Promise<unknown>; encodeText: (...a: unknown[]) => Promise<unknown>; dispose(): void }>;
  };
  const model = await fixtureModel('large-d-tiny');
  const expectReject = async (f: () => unknown, code: string, what: string) => {
    let result: unknown;
    try {
      result = f();
    } catch (err) {
      t.fail(`${what}: threw synchronously (${(err as Error).message})`);
      return;
    }
    try {
      await result;
      t.fail(`${what}: did not reject`);
    } catch (err) {
      t.equal((err as { code?: string }).code, code, `${what}: ${code} (${(err as Error).message.slice(0, 120)})`);
    }
  };
  const tensors = [...model.manifest.tensors.values()];
  const request = (arch: unknown, entries: unknown, options: unknown) => JSON.stringify({ architecture: arch, tensors: entries, options });
  const cpu = { device: 'cpu', precision: 'fp32' };
  await expectReject(() => addon.loadModel(), 'E_INVALID_ARGUMENT', 'no arguments');
  await expectReject(() => addon.loadModel(model.arch, tensors, cpu), 'E_INVALID_ARGUMENT', 'an object, not the JSON request');
  await expectReject(() => addon.loadModel('{"architecture":'), 'E_INVALID_ARGUMENT', 'truncated JSON');
  await expectReject(() => addon.loadModel(request({}, [], cpu)), 'E_INVALID_ARGUMENT', 'empty arch');
  await expectReject(() => addon.loadModel(request(model.arch, 'x', cpu)), 'E_INVALID_ARGUMENT', 'tensors not an array');
  await expectReject(() => addon.loadModel(request(model.arch, [], { device: 'tpu', precision: 'fp32' })), 'E_INVALID_ARGUMENT', 'unknown device');
  await expectReject(() => addon.loadModel(request(model.arch, [], cpu)), 'E_TENSOR_MISSING', 'no tensors');
  const bad = tensors.map((e) => (e.name === 'ln_final.bias' ? { ...e, dtype: 'I64' } : e));
  await expectReject(() => addon.loadModel(request(model.arch, bad, cpu)), 'E_TENSOR_SHAPE', 'an I64 weight');
  const huge = tensors.map((e) => (e.name === 'ln_final.bias' ? { ...e, offset: 2 ** 52 } : e));
  await expectReject(() => addon.loadModel(request(model.arch, huge, cpu)), 'E_CHECKPOINT_CORRUPT', 'an offset past the end of the file');
  const handle = await addon.loadModel(request(model.arch, tensors, { ...cpu, threads: 1 }));
  await expectReject(() => handle.encodeImage([1, 2, 3], 1), 'E_INVALID_ARGUMENT', 'pixels not a Float32Array');
  await expectReject(() => handle.encodeImage(new Float32Array(7), 1), 'E_INVALID_ARGUMENT', 'pixels of the wrong length');
  await expectReject(() => handle.encodeText(new Int32Array(77), 1, 76), 'E_INVALID_ARGUMENT', 'wrong context length');
  await expectReject(() => handle.encodeText(new Int32Array(77).fill(1 << 30), 1, 77), 'E_INVALID_ARGUMENT', 'token id past the vocabulary');
  handle.dispose();
  await expectReject(() => handle.encodeText(new Int32Array(77), 1, 77), 'E_DISPOSED', 'after dispose');
});

// On a machine whose addon was built against a CUDA libtorch and sees a GPU.
const cuda = status.ok ? torchBackend.available('cuda') : status;
const skipCuda = cuda.ok ? false : `no CUDA for the torch backend (${cuda.reason})`;
for (const name of FIXTURE_MODELS) {
  test(`torch cuda graphs: capture and replay reproduce the reference: ${name}`, { skip: skipCuda }, async (t) => {
    const model = await fixtureModel(name);
    const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
    const pixels = floats(expected.get('pixels'), 'pixels');
    const tokens = tokensOf(expected.get('tokens'));
    const nImages = expected.get('pixels')!.shape[0];
    const nTexts = expected.get('tokens')!.shape[0];
    const dim = model.arch.embedDim;
    for (const precision of ['fp32', 'bf16'] as const) {
      const torch = await torchBackend.load(model.arch, model.manifest, { precision, device: 'cuda', threads: 1 });
      try {
        // eager with captures, then twice through the CUDA graphs (capture, replay)
        const runs = [
          await torch.encodeImage(pixels, nImages, { capture: true }),
          await torch.encodeImage(pixels, nImages),
          await torch.encodeImage(pixels, nImages),
        ];
        const texts = [await torch.encodeText(tokens, nTexts, { capture: true }), await torch.encodeText(tokens, nTexts), await torch.encodeText(tokens, nTexts)];
        runs.forEach((r, i) => {
          const want = floats(expected.get('image_features'), 'image_features');
          if (precision === 'fp32') t.ok(maxRelativeDiff(r.features, want) <= FP32_TOLERANCE, `${precision} image_features run ${i}`);
          else t.ok(minRowCosine(r.features, want, dim) >= BF16_MIN_COSINE, `${precision} image_features run ${i}: cos ${minRowCosine(r.features, want, dim).toFixed(6)}`);
        });
        texts.forEach((r, i) => {
          const want = floats(expected.get('text_features'), 'text_features');
          if (precision === 'fp32') t.ok(maxRelativeDiff(r.features, want) <= FP32_TOLERANCE, `${precision} text_features run ${i}`);
          else t.ok(minRowCosine(r.features, want, dim) >= BF16_MIN_COSINE, `${precision} text_features run ${i}: cos ${minRowCosine(r.features, want, dim).toFixed(6)}`);
        });
        if (precision === 'fp32') {
          for (const [key, got] of Object.entries({ ...runs[0].intermediates, ...texts[0].intermediates })) {
            const want = expected.get(key);
            if (!want) continue;
            const rel = maxRelativeDiff(got, floats(want, key).subarray(0, got.length));
            t.ok(rel <= FP32_TOLERANCE, `cuda fp32 ${key}: max rel diff ${rel.toExponential(2)}`);
          }
        }
      } finally {
        torch.dispose();
      }
    }
  });
}
