/**
 * Issue 18 classes 9 and 10 at the API edge, attacked as a hostile caller would: wrong argument kinds, coerced
 * token ids, NaN pixels, a NaN/Inf/huge logit_scale, F64 weights, classifiers whose rows do not match their
 * labels. Every one is a typed ClipError in the "Expected X for Y but received Z" form, never a bare TypeError.
 */
import path from 'node:path';
import test from 'tape';
import * as api from '../lib/index.js';
import { selectTensors } from '../lib/backends/addon-model.js';
import { nativeBackend } from '../lib/backends/native.js';
import { Clip } from '../lib/clip.js';
import { Embeddings } from '../lib/embeddings.js';
import { type ClipErrorCode, isClipError } from '../lib/errors.js';
import { preprocessImages } from '../lib/image/index.js';
import { describeModel } from '../lib/model-dir.js';
import { fixture } from './helpers/fixtures.js';
import { copyModelWith, f32Bytes, f32ToF64 } from './helpers/model-copy.js';

const MODEL = fixture('models', 'xxlarge-tiny');
const BACKEND = nativeBackend.available().ok ? 'native' : 'wasm';
const FORM = /Expected .+ for .+ but received .+/;

async function codeOf(work: () => unknown): Promise<string> {
  try {
    await work();
    return 'resolved';
  } catch (err) {
    if (isClipError(err)) return err.code === 'E_INVALID_ARGUMENT' && !FORM.test(err.message) ? `E_INVALID_ARGUMENT in another form: ${err.message}` : err.code;
    return `untyped ${(err as Error)?.name}: ${(err as Error)?.message}`;
  }
}

function expectAll(t: test.Test, cases: [string, () => unknown][], code: ClipErrorCode): Promise<void> {
  return cases.reduce(async (prev, [what, work]) => {
    await prev;
    t.equal(await codeOf(work), code, what);
  }, Promise.resolve());
}

test('Clip.load: wrong argument kinds are E_INVALID_ARGUMENT before anything is read', async (t) => {
  t.timeoutAfter(60_000);
  const any = (v: unknown) => v as never;
  await expectAll(t, [
    ['Clip.load(null)', () => Clip.load(any(null))],
    ['Clip.load(undefined)', () => Clip.load(any(undefined))],
    ['Clip.load(42)', () => Clip.load(any(42))],
    ["Clip.load('')", () => Clip.load('')],
    ['Clip.load([dir])', () => Clip.load(any([MODEL]))],
    ['source {dir: 5}', () => Clip.load(any({ dir: 5 }))],
    ["options 'fast'", () => Clip.load(MODEL, any('fast'))],
    ['options null', () => Clip.load(MODEL, any(null))],
    ["threads '2'", () => Clip.load(MODEL, { threads: any('2') })],
    ['threads 1.5', () => Clip.load(MODEL, { threads: 1.5 })],
    ['threads -1', () => Clip.load(MODEL, { threads: -1 })],
    ["backend 'gpu'", () => Clip.load(MODEL, { backend: any('gpu') })],
    ['device 1', () => Clip.load(MODEL, { device: any(1) })],
    ["precision 'fp16'", () => Clip.load(MODEL, { precision: any('fp16') })],
    ['onProgress 5', () => Clip.load(MODEL, { onProgress: any(5) })],
    ["hub 'x'", () => Clip.load(MODEL, { hub: any('x') })],
  ], 'E_INVALID_ARGUMENT');
});

test('logit_scale NaN, Inf or huge is refused at load (never NaN% scores)', async (t) => {
  t.timeoutAfter(60_000);
  for (const value of [Number.NaN, Number.POSITIVE_INFINITY, -Infinity, 1e30, 50]) {
    const dir = copyModelWith(MODEL, (name) => (name === 'logit_scale' ? { dtype: 'F32', bytes: f32Bytes([value]) } : undefined));
    t.equal(await codeOf(() => Clip.load(dir, { backend: BACKEND, threads: 1 })), 'E_CHECKPOINT_CORRUPT', `logit_scale ${value}`);
  }
  const fine = copyModelWith(MODEL, (name) => (name === 'logit_scale' ? { dtype: 'F32', bytes: f32Bytes([Math.log(100)]) } : undefined));
  const clip = await Clip.load(fine, { backend: BACKEND, threads: 1 });
  t.ok(Math.abs(clip.logitScale - 100) < 1e-3, `ln(100) loads: temperature ${clip.logitScale.toFixed(3)}`);
  clip.dispose();
});

test('F64 weights: refused everywhere with E_TENSOR_SHAPE (one policy)', async (t) => {
  t.timeoutAfter(60_000);
  const dir = copyModelWith(MODEL, (name, dtype, bytes) => (name === 'text_projection' && dtype === 'F32' ? { dtype: 'F64', bytes: f32ToF64(bytes) } : undefined));
  t.equal(await codeOf(() => Clip.load(dir, { backend: BACKEND, threads: 1 })), 'E_TENSOR_SHAPE', 'Clip.load');
  const { arch, manifest } = await describeModel(MODEL);
  const f64 = new Map(manifest.tensors);
  const entry = f64.get('text_projection')!;
  f64.set('text_projection', { ...entry, dtype: 'F64', byteLength: entry.byteLength * 2 });
  for (const backend of ['native', 'wasm', 'torch'] as const) {
    const dtypes = new Set(['F32', 'F16', 'BF16', 'F64'] as const);
    t.equal(await codeOf(() => selectTensors(arch, { ...manifest, tensors: f64 }, dtypes, backend)), 'E_TENSOR_SHAPE', `${backend}: the tensor selection refuses F64 even where the engine could read it`);
  }
});

test('embedTexts, embedImages, zeroShot, classify: wrong kinds, coerced ids, NaN pixels, short classifiers', async (t) => {
  t.timeoutAfter(120_000);
  const clip = await Clip.load(MODEL, { backend: BACKEND, threads: 1 });
  const any = (v: unknown) => v as never;
  const row = (id: unknown) => any([[49406, id, 49407]]);
  const S = clip.arch.vision.imageSize;
  const photo = fixture('images', 'chelsea.png');
  try {
    await expectAll(t, [
      ['token id 1.5', () => clip.embedTexts(row(1.5))],
      ['token id NaN', () => clip.embedTexts(row(Number.NaN))],
      ["token id '320'", () => clip.embedTexts(row('320'))],
      ['token id null', () => clip.embedTexts(row(null))],
      ['token id -1', () => clip.embedTexts(row(-1))],
      ['token id 49408 (past the vocabulary)', () => clip.embedTexts(row(49408))],
      ['a row that is not an array', () => clip.embedTexts(any([[49406, 49407], 'x']))],
      ['78 ids in a row', () => clip.embedTexts([new Array(78).fill(1)])],
      ['texts null', () => clip.embedTexts(any(null))],
      ["texts ['a', 3]", () => clip.embedTexts(any(['a', 3]))],
      ['texts {}', () => clip.embedTexts(any({}))],
      ['texts []', () => clip.embedTexts([])],
      ['Int32Array of 5 ids', () => clip.embedTexts(new Int32Array(5))],
      ['options null', () => clip.embedTexts('a cat', any(null))],
      ["batchSize '8'", () => clip.embedTexts('a cat', { batchSize: any('8') })],
      ["normalize 'no'", () => clip.embedTexts('a cat', { normalize: any('no') })],
      ['images null', () => clip.embedImages(any(null))],
      ['images []', () => clip.embedImages([])],
      ['images 42', () => clip.embedImages(any(42))],
      ['NaN pixels', () => clip.embedImages({ data: new Float32Array(3 * S * S).fill(Number.NaN) })],
      ['one Infinity pixel', () => clip.embedImages({ data: new Float32Array(3 * S * S).fill(0).fill(Infinity, 7, 8) })],
      ['7 pixel values', () => clip.embedImages({ data: new Float32Array(7) })],
      ['n = 2 for one image of pixels', () => clip.embedImages({ data: new Float32Array(3 * S * S), n: 2 })],
      ['image options null', () => clip.embedImages(photo, any(null))],
      ["maxPixels '10'", () => clip.embedImages(photo, { maxPixels: any('10') })],
      ["autoOrient 'yes'", () => clip.embedImages(photo, { autoOrient: any('yes') })],
      ["zeroShot('cat')", () => clip.zeroShot(any('cat'))],
      ['zeroShot([1])', () => clip.zeroShot(any([1]))],
      ['zeroShot templates []', () => clip.zeroShot(['cat'], [])],
      ['classify(img, null)', () => clip.classify(photo, any(null))],
      ["classify(img, {labels: ['x']})", () => clip.classify(photo, any({ labels: ['x'] }))],
      ['preprocessImages options null', () => preprocessImages([photo], clip.preprocess, any(null))],
      ['preprocessImages config null', () => preprocessImages([photo], any(null))],
    ], 'E_INVALID_ARGUMENT');

    const zs = await clip.zeroShot(['a', 'b', 'c']);
    const D = clip.embedDim;
    const withRows = (rows: number, dim = D, fill?: number) => {
      const data = new Float32Array(rows * dim);
      data.set(zs.weights.data.subarray(0, Math.min(rows, 3) * Math.min(dim, D)));
      if (fill !== undefined) data.fill(fill, 0, 1);
      return { labels: zs.labels, weights: new Embeddings(data, rows, dim) };
    };
    await expectAll(t, [
      ['2 rows for 3 labels', () => clip.classify(photo, withRows(2))],
      ['4 rows for 3 labels', () => clip.classify(photo, withRows(4))],
      ['rows of the wrong width', () => clip.classify(photo, withRows(3, D + 1))],
      ['a NaN weight', () => clip.classify(photo, withRows(3, D, Number.NaN))],
      ['weights not Embeddings', () => clip.classify(photo, any({ labels: zs.labels, weights: zs.weights.data }))],
    ], 'E_INVALID_ARGUMENT');

    const ranked = await clip.classify(photo, zs);
    t.ok(ranked[0].length === 3 && ranked[0].every((r) => Number.isFinite(r.score)), 'a good classifier: every label scored');
    const ok = await clip.embedTexts([[49406, 320, 49407]]);
    t.equal(ok.rows, 1, 'integer ids in range are accepted');
  } finally {
    clip.dispose();
  }
});

test('the message form names the argument and what was received', async (t) => {
  t.timeoutAfter(30_000);
  try {
    await Clip.load(null as never);
    t.fail('resolved');
  } catch (err) {
    t.ok(isClipError(err, 'E_INVALID_ARGUMENT'), 'typed');
    t.match((err as Error).message, /^Expected a model directory, a Hugging Face name or .* for source but received null$/, (err as Error).message);
  }
  try {
    await Clip.load(path.join(MODEL), { threads: '2' as never });
    t.fail('resolved');
  } catch (err) {
    t.equal((err as Error).message, 'Expected an integer between 0 and 1024 for options.threads but received "2" of type string');
  }
  for (const bad of [42, '', 'a\0b']) {
    try {
      await Clip.load(path.join(MODEL), { packedCache: bad as never });
      t.fail('resolved');
    } catch (err) {
      t.ok(isClipError(err, 'E_INVALID_ARGUMENT') && /^Expected a directory path for options\.packedCache/.test((err as Error).message), (err as Error).message);
    }
  }
});

test('every exported entry point refuses null and wrong kinds with a typed error, never a bare TypeError', async (t) => {
  t.timeoutAfter(60_000);
  const any = (v: unknown) => v as never;
  for (const bad of [null, undefined, 42, '', {}] as const) {
    const cases: [string, () => unknown][] = [
      ['describeModel', () => api.describeModel(any(bad))],
      ['resolveModelFiles', () => api.resolveModelFiles(any(bad))],
      ['readModelConfig', () => api.readModelConfig(any(bad))],
      ['readManifest', () => api.readManifest(any(bad))],
      ['readTensor', () => api.readTensor(any(bad))],
      ['expectedTensors', () => api.expectedTensors(any(bad))],
      ['parameterCount', () => api.parameterCount(any(bad))],
      ['convertModel', () => api.convertModel(any(bad))],
      ['resolveModel', () => api.resolveModel(any(bad))],
      ['embedDir', () => api.embedDir(any(bad), any({ folder: '.', out: 'x.npy' }))],
      ['createServer', () => api.createServer(any(bad))],
      ['new Embeddings', () => new api.Embeddings(any(bad), 1, 1)],
      ['registerBackend', () => api.registerBackend(any(bad))],
      ['decodeImage', () => api.decodeImage(any(bad), 'input #0')],
      ['preprocessImages', () => api.preprocessImages(any(bad), any(bad))],
    ];
    for (const [name, work] of cases) {
      const code = await codeOf(work);
      // {} is a valid (empty) source for a few of these: it then fails as a missing file, typed too.
      t.ok(/^E_[A-Z_]+$/.test(code) && !code.startsWith('E_INVALID_ARGUMENT in another form'), `${name}(${JSON.stringify(bad) ?? 'undefined'}): ${code}`);
    }
  }
});

test("each engine's preprocessImage keeps the memory checks: wrong buffers or a NaN spec never reach C++", async (t) => {
  t.timeoutAfter(60_000);
  const { arch, manifest } = await describeModel(MODEL);
  const model = await api.getBackend(BACKEND)!.load(arch, manifest, { precision: 'fp32', device: 'cpu', threads: 1 });
  const spec = { size: 8, resizeMode: 'shortest' as const, filter: 'bicubic' as const, fill: [0, 0, 0], mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };
  const px = new Uint8Array(4 * 4 * 3);
  const out = new Float32Array(3 * 8 * 8);
  const any = (v: unknown) => v as never;
  try {
    await expectAll(t, [
      ['pixels shorter than the geometry', () => model.preprocessImage(new Uint8Array(10), 4, 4, 'RGB', spec, out)],
      ['out too small', () => model.preprocessImage(px, 4, 4, 'RGB', spec, new Float32Array(5))],
      ['an unknown mode', () => model.preprocessImage(px, 4, 4, any('YCbCr'), spec, out)],
      ['fill for another mode', () => model.preprocessImage(px, 4, 4, 'RGB', { ...spec, fill: [0] }, out)],
      ['a NaN fill', () => model.preprocessImage(px, 4, 4, 'RGB', { ...spec, fill: [Number.NaN, 0, 0] }, out)],
      ['std 0', () => model.preprocessImage(px, 4, 4, 'RGB', { ...spec, std: [0, 1, 1] }, out)],
      ['width 0', () => model.preprocessImage(px, 0, 4, 'RGB', spec, out)],
    ], 'E_INVALID_ARGUMENT');
    await model.preprocessImage(px, 4, 4, 'RGB', spec, out);
    t.ok(out.every((v) => v === -1), `${BACKEND}: black 4x4 -> (0 - 0.5) / 0.5 = -1 everywhere`);
  } finally {
    model.dispose();
  }
});
