/** Through the public API: the zero-shot classifier, typed errors, precision defaults, converted weights (reference parity per backend: test/parity.test.ts). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { ClipError } from '../lib/errors.js';
import { fixture } from './helpers/fixtures.js';
import { floats, readExpected } from './native-helpers.js';

interface ExpectedJson {
  images: string[];
  texts: string[];
}

function maxRelDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) (ab += a[i] * b[i]), (aa += a[i] * a[i]), (bb += b[i] * b[i]);
  return ab / Math.sqrt(aa * bb);
}

// Photos from files and texts from strings vs the reference, on every backend and precision: test/parity.test.ts.

test('zero-shot classifier as open_clip builds it; classify ranks every label', async (t) => {
  const dir = fixture('models', 'xxlarge-tiny');
  const zs = JSON.parse(readFileSync(path.join(dir, 'zeroshot_expected.json'), 'utf8')) as { classnames: string[]; templates: string[] };
  const expected = await readExpected(path.join(dir, 'zeroshot_expected.safetensors'));
  const clip = await Clip.load(dir, { backend: 'native', threads: 2 });
  try {
    const classifier = await clip.zeroShot(zs.classnames, zs.templates);
    const C = zs.classnames.length;
    const D = clip.embedDim;
    const want = floats(expected.get('classifier'), 'classifier'); // [D, C]
    const got = new Float32Array(D * C);
    for (let c = 0; c < C; c++) for (let k = 0; k < D; k++) got[k * C + c] = classifier.weights.data[c * D + k];
    t.ok(maxRelDiff(got, want) <= 1e-4, `classifier [D, C]: max rel diff ${maxRelDiff(got, want).toExponential(2)}`);

    // Clip.classify against the fixture's probabilities, on every backend: test/parity.test.ts.
    const ranked = await clip.classify([fixture('images', 'chelsea.png')], classifier);
    t.equal(ranked[0].length, C);
    t.ok(ranked[0].every((r, i) => i === 0 || r.score <= ranked[0][i - 1].score), 'ranked by score');
    t.ok(Math.abs(ranked[0].reduce((s, r) => s + r.score, 0) - 1) < 1e-5, 'scores sum to 1');
  } finally {
    clip.dispose();
  }
});

test('bad inputs to the API are typed errors; a disposed model refuses work', async (t) => {
  const clip = await Clip.load(fixture('models', 'xxlarge-tiny'), { backend: 'native', threads: 1 });
  const codeOf = async (p: Promise<unknown>) => p.then(() => 'resolved', (e) => (e instanceof ClipError ? e.code : `untyped: ${e}`));
  t.equal(await codeOf(clip.embedTexts([[49406, 60000, 49407]])), 'E_INVALID_ARGUMENT', 'token id outside the vocabulary');
  t.equal(await codeOf(clip.embedTexts(new Int32Array(5))), 'E_INVALID_ARGUMENT', 'token count not a multiple of the context');
  t.equal(await codeOf(clip.embedImages({ data: new Float32Array(7) })), 'E_INVALID_ARGUMENT', 'pixel count wrong');
  t.equal(await codeOf(clip.embedImages({ data: new Float32Array(3 * 64 * 64).fill(Number.NaN) })), 'E_INVALID_ARGUMENT', 'NaN pixels');
  t.equal(await codeOf(clip.embedImages([fixture('images', 'chelsea.png'), Buffer.from('not an image')])), 'E_IMAGE_DECODE', 'a broken image in a batch');
  t.equal(await codeOf(clip.zeroShot([])), 'E_INVALID_ARGUMENT', 'no labels');
  t.equal(await codeOf(Clip.load(fixture('models', 'xxlarge-tiny'), { precision: 'fp16' as 'fp32' })), 'E_INVALID_ARGUMENT', 'unknown precision');
  t.equal(await codeOf(Clip.load(fixture('models', 'xxlarge-tiny'), { backend: 'native', device: 'cuda' })), 'E_BACKEND_UNAVAILABLE', 'native on cuda');
  clip.dispose();
  t.equal(await codeOf(clip.embedTexts(['a cat'])), 'E_DISPOSED', 'after dispose');
  clip.dispose(); // twice is harmless
});

test('precision defaults: fp32 natively, bf16 on wasm (its heap is 4 GB)', async (t) => {
  const native = await Clip.load(fixture('models', 'xxlarge-tiny'), { backend: 'native', threads: 1 });
  t.equal(native.precision, 'fp32');
  native.dispose();
  const wasm = await Clip.load(fixture('models', 'xxlarge-tiny'), { backend: 'wasm', threads: 1 });
  t.equal(wasm.precision, 'bf16');
  wasm.dispose();
  const wasm32 = await Clip.load(fixture('models', 'xxlarge-tiny'), { backend: 'wasm', precision: 'fp32', threads: 1 });
  t.equal(wasm32.precision, 'fp32', 'an explicit precision wins');
  wasm32.dispose();
});

test('a model converted to bf16 safetensors passes the bf16 tolerances end to end', async (t) => {
  const { convertModel } = await import('../lib/convert.js');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const out = mkdtempSync(path.join(tmpdir(), 'cclip-bf16-'));
  try {
    const dir = fixture('models', 'xxlarge-deep256');
    await convertModel({ model: dir, out, precision: 'bf16' });
    const info = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as ExpectedJson;
    const expected = await readExpected(path.join(dir, 'expected.safetensors'));
    const want = floats(expected.get('text_embeds'), 'text_embeds');
    for (const backend of ['native', 'wasm'] as const) {
      const clip = await Clip.load(out, { backend, threads: 2 });
      try {
        const texts = await clip.embedTexts(info.texts);
        const D = texts.dim;
        let minCos = 1;
        for (let i = 0; i < texts.rows; i++) minCos = Math.min(minCos, cosine(texts.row(i), want.subarray(i * D, (i + 1) * D)));
        t.ok(minCos >= 0.999, `${backend} on converted bf16 weights: min text cosine ${minCos.toFixed(6)}`);
      } finally {
        clip.dispose();
      }
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
