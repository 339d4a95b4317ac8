/** End to end through the public API: files and strings in, the reference's embeddings and logits out. */
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

for (const name of ['xxlarge-tiny', 'large-d-tiny', 'xxlarge-deep256']) {
  test(`${name}: photos from files and texts from strings reproduce the reference (fp32 and bf16)`, async (t) => {
    const dir = fixture('models', name);
    const info = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as ExpectedJson;
    const expected = await readExpected(path.join(dir, 'expected.safetensors'));
    const photos = info.images.filter((f) => !f.startsWith('<')).map((f) => fixture('images', f));
    const D = floats(expected.get('image_embeds'), 'image_embeds').length / info.images.length;
    const wantImages = floats(expected.get('image_embeds'), 'image_embeds').subarray(0, photos.length * D);
    const wantTexts = floats(expected.get('text_embeds'), 'text_embeds');
    const wantLogits = floats(expected.get('logits_per_image'), 'logits_per_image');

    for (const precision of ['fp32', 'bf16'] as const) {
      const clip = await Clip.load(dir, { backend: 'native', precision, threads: 2 });
      try {
        const images = await clip.embedImages(photos);
        const texts = await clip.embedTexts(info.texts);
        t.equal(images.rows, photos.length);
        t.equal(texts.rows, info.texts.length);
        if (precision === 'fp32') {
          const ri = maxRelDiff(images.data, wantImages);
          const rt = maxRelDiff(texts.data, wantTexts);
          t.ok(ri <= 1e-4, `fp32 image_embeds from files: max rel diff ${ri.toExponential(2)}`);
          t.ok(rt <= 1e-4, `fp32 text_embeds from strings: max rel diff ${rt.toExponential(2)}`);
          // logits_per_image = exp(logit_scale) * img . txt
          const T = info.texts.length;
          let worst = 0;
          for (let i = 0; i < photos.length; i++) {
            for (let j = 0; j < T; j++) {
              let dot = 0;
              for (let k = 0; k < D; k++) dot += images.data[i * D + k] * texts.data[j * D + k];
              worst = Math.max(worst, Math.abs(clip.logitScale * dot - wantLogits[i * T + j]));
            }
          }
          t.ok(worst <= 1e-3, `logits_per_image reproduced: max abs diff ${worst.toExponential(2)}`);
        } else {
          let minCos = 1;
          for (let i = 0; i < photos.length; i++) minCos = Math.min(minCos, cosine(images.row(i), wantImages.subarray(i * D, (i + 1) * D)));
          for (let i = 0; i < texts.rows; i++) minCos = Math.min(minCos, cosine(texts.row(i), wantTexts.subarray(i * D, (i + 1) * D)));
          t.ok(minCos >= 0.999, `bf16: min cosine ${minCos.toFixed(6)} over every row`);
        }
      } finally {
        clip.dispose();
      }
    }
  });
}

test('zero-shot classifier, logits and probabilities as open_clip builds them', async (t) => {
  const dir = fixture('models', 'xxlarge-tiny');
  const zs = JSON.parse(readFileSync(path.join(dir, 'zeroshot_expected.json'), 'utf8')) as { classnames: string[]; templates: string[] };
  const expected = await readExpected(path.join(dir, 'zeroshot_expected.safetensors'));
  const embeds = await readExpected(path.join(dir, 'expected.safetensors'));
  const clip = await Clip.load(dir, { backend: 'native', threads: 2 });
  try {
    const classifier = await clip.zeroShot(zs.classnames, zs.templates);
    const C = zs.classnames.length;
    const D = clip.embedDim;
    const want = floats(expected.get('classifier'), 'classifier'); // [D, C]
    const got = new Float32Array(D * C);
    for (let c = 0; c < C; c++) for (let k = 0; k < D; k++) got[k * C + c] = classifier.weights.data[c * D + k];
    t.ok(maxRelDiff(got, want) <= 1e-4, `classifier [D, C]: max rel diff ${maxRelDiff(got, want).toExponential(2)}`);

    // classify the reference's own image rows: probs = softmax(logit_scale * img . classifier)
    const imageEmbeds = floats(embeds.get('image_embeds'), 'image_embeds');
    const wantProbs = floats(expected.get('probs'), 'probs');
    const rows = imageEmbeds.length / D;
    let worst = 0;
    for (let i = 0; i < rows; i++) {
      const logits = Array.from({ length: C }, (_, c) => {
        let dot = 0;
        for (let k = 0; k < D; k++) dot += imageEmbeds[i * D + k] * classifier.weights.data[c * D + k];
        return clip.logitScale * dot;
      });
      const max = Math.max(...logits);
      const exps = logits.map((l) => Math.exp(l - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      for (let c = 0; c < C; c++) worst = Math.max(worst, Math.abs(exps[c] / sum - wantProbs[i * C + c]));
    }
    t.ok(worst <= 1e-4, `probs: max abs diff ${worst.toExponential(2)}`);

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
