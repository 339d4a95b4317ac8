/**
 * One parity suite over every registered backend x device x fixture model x precision: the reference's tower
 * outputs (fp32 to 1e-4 relative, intermediates too; bf16 to cosine 0.999), Clip end to end from photo files and
 * strings (its embeddings and logits), each backend's own preprocessing against the reference's pixels, and
 * Clip.classify against the zero-shot fixture's probabilities. A backend is
 * skipped, with a visible message, only when it is not available here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { BACKEND_NAMES, getBackend } from '../lib/backends/index.js';
import type { Backend, BackendModel, Device, Precision } from '../lib/backends/types.js';
import { Clip } from '../lib/clip.js';
import { isClipError } from '../lib/errors.js';
import { decodeImage } from '../lib/image/index.js';
import { transformDecoded } from '../lib/image/preprocess.js';
import { describeModel } from '../lib/model-dir.js';
import { Embeddings } from '../lib/embeddings.js';
import { FIXTURE_MODELS, fixture } from './helpers/fixtures.js';
import { type FixtureModel, fixtureModel, floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from './native-helpers.js';

const FP32_TOLERANCE = 1e-4;
const BF16_MIN_COSINE = 0.999;
/** classify() embeds the reference pixels itself: fp32 probabilities within 1e-4, bf16 within 5e-3 (absolute). */
const PROB_TOLERANCE: Record<Precision, number> = { fp32: 1e-4, bf16: 5e-3 };
const PRECISIONS: Precision[] = ['fp32', 'bf16'];

interface Target {
  backend: Backend;
  device: Device;
  label: string;
}

const targets: Target[] = [];
for (const name of BACKEND_NAMES) {
  const backend = getBackend(name);
  if (!backend) {
    test(`parity ${name}: SKIPPED (not registered in this build)`, { skip: true }, () => {});
    continue;
  }
  for (const device of name === 'torch' ? (['cpu', 'cuda'] as const) : (['cpu'] as const)) {
    const status = backend.available(device);
    const label = `${name}/${device}`;
    if (status.ok) targets.push({ backend, device, label });
    else test(`parity ${label}: SKIPPED (${status.reason})`, { skip: true }, () => {});
  }
}

function load(target: Target, model: FixtureModel, precision: Precision): Promise<BackendModel> {
  return target.backend.load(model.arch, model.manifest, { precision, device: target.device, threads: 2 });
}

/** A fixture model loaded on `target`, with the reference tensors and the inputs they came from. */
async function reference(target: Target, name: string, precision: Precision) {
  const model = await fixtureModel(name);
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const pixels = { data: floats(expected.get('pixels'), 'pixels'), n: expected.get('pixels')!.shape[0] };
  const tokens = { data: tokensOf(expected.get('tokens')), n: expected.get('tokens')!.shape[0] };
  return { model, expected, pixels, tokens, engine: await load(target, model, precision) };
}

for (const target of targets) {
  for (const name of FIXTURE_MODELS) {
    test(`parity ${target.label} fp32: ${name}`, async (t) => {
      t.timeoutAfter(180_000);
      const { model, expected, engine, pixels, tokens } = await reference(target, name, 'fp32');
      try {
        t.equal(engine.backend, target.backend.name, 'the backend asked for');
        const image = await engine.encodeImage(pixels.data, pixels.n, { capture: true });
        const text = await engine.encodeText(tokens.data, tokens.n, { capture: true });
        const check = (key: string, got: Float32Array | undefined) => {
          if (!got) return t.fail(`${key}: not returned`);
          const want = floats(expected.get(key), key);
          const rel = maxRelativeDiff(got, want.subarray(0, got.length)); // text captures: the L positions computed
          t.ok(rel <= FP32_TOLERANCE, `${key}: max rel diff ${rel.toExponential(2)} <= ${FP32_TOLERANCE}`);
        };
        check('image_features', image.features);
        check('text_features', text.features);
        for (const key of expected.keys()) {
          if (key.startsWith('image0.')) check(key, image.intermediates?.[key]);
          if (key.startsWith('text0.')) check(key, text.intermediates?.[key]);
        }
        // Without captures the last block runs on the end-token rows alone: the same features, row for row (bit for
        // bit in the core, whose GEMM rows do not depend on the other rows; libtorch's matmuls make no such promise).
        const plain = await engine.encodeText(tokens.data, tokens.n);
        check('text_features', plain.features);
        const rel = maxRelativeDiff(plain.features, text.features);
        const bound = target.backend.name === 'torch' ? 1e-5 : 0;
        t.ok(rel <= bound, `text_features without captures vs with: max rel diff ${rel.toExponential(2)} <= ${bound}`);
        const blocks = Object.keys(text.intermediates ?? {}).filter((k) => k.startsWith('text0.block'));
        t.equal(blocks.length, model.arch.text.layers, 'one capture per text block');
        t.equal((text.intermediates?.['text0.embed']?.length ?? 0) % model.arch.text.width, 0, 'text captures are [L, width]');
      } finally {
        engine.dispose();
      }
    });

    test(`parity ${target.label} bf16: ${name}`, async (t) => {
      t.timeoutAfter(180_000);
      const { model, expected, engine, pixels, tokens } = await reference(target, name, 'bf16');
      try {
        t.equal(engine.precision, 'bf16');
        const image = await engine.encodeImage(pixels.data, pixels.n);
        const text = await engine.encodeText(tokens.data, tokens.n);
        const dim = model.arch.embedDim;
        const imageCos = minRowCosine(image.features, floats(expected.get('image_features'), 'image_features'), dim);
        const textCos = minRowCosine(text.features, floats(expected.get('text_features'), 'text_features'), dim);
        t.ok(imageCos >= BF16_MIN_COSINE, `image_features min cosine ${imageCos.toFixed(6)} >= ${BF16_MIN_COSINE}`);
        t.ok(textCos >= BF16_MIN_COSINE, `text_features min cosine ${textCos.toFixed(6)} >= ${BF16_MIN_COSINE}`);
      } finally {
        engine.dispose();
      }
    });
  }

  for (const name of FIXTURE_MODELS) {
    test(`parity ${target.label}: Clip from photo files and text strings reproduces ${name} (embeddings, logits)`, async (t) => {
      t.timeoutAfter(180_000);
      const dir = fixture('models', name);
      const info = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { images: string[]; texts: string[] };
      const expected = await readExpected(path.join(dir, 'expected.safetensors'));
      const photos = info.images.filter((f) => !f.startsWith('<')).map((f) => fixture('images', f));
      const allImages = floats(expected.get('image_embeds'), 'image_embeds');
      const D = allImages.length / info.images.length;
      const wantImages = allImages.subarray(0, photos.length * D);
      const wantTexts = floats(expected.get('text_embeds'), 'text_embeds');
      const wantLogits = floats(expected.get('logits_per_image'), 'logits_per_image');
      for (const precision of PRECISIONS) {
        const clip = await Clip.load(dir, { backend: target.backend.name, device: target.device, precision, threads: 2 });
        try {
          t.equal(clip.backend, target.backend.name, `${precision}: the backend asked for`);
          const images = await clip.embedImages(photos);
          const texts = await clip.embedTexts(info.texts);
          if (precision === 'bf16') {
            const cos = Math.min(minRowCosine(images.data, wantImages, D), minRowCosine(texts.data, wantTexts, D));
            t.ok(cos >= BF16_MIN_COSINE, `bf16: min cosine ${cos.toFixed(6)} over every image and text row`);
            continue;
          }
          const ri = maxRelativeDiff(images.data, wantImages);
          const rt = maxRelativeDiff(texts.data, wantTexts);
          t.ok(ri <= FP32_TOLERANCE, `fp32 image_embeds from files: max rel diff ${ri.toExponential(2)}`);
          t.ok(rt <= FP32_TOLERANCE, `fp32 text_embeds from strings: max rel diff ${rt.toExponential(2)}`);
          const T = info.texts.length;
          let worst = 0;
          for (let i = 0; i < photos.length; i++) {
            for (let j = 0; j < T; j++) {
              let dot = 0;
              for (let k = 0; k < D; k++) dot += images.data[i * D + k] * texts.data[j * D + k];
              worst = Math.max(worst, Math.abs(clip.logitScale * dot - wantLogits[i * T + j]));
            }
          }
          t.ok(worst <= 1e-3, `logits_per_image = exp(logit_scale) img . txt: max abs diff ${worst.toExponential(2)}`);
        } finally {
          clip.dispose();
        }
      }
    });
  }

  test(`parity ${target.label}: the backend's own preprocessing gives the reference pixels (PNGs within 1 level)`, async (t) => {
    t.timeoutAfter(120_000);
    const model = await fixtureModel('xxlarge-tiny');
    const { preprocess } = await describeModel(model.dir);
    const reference = await readExpected(fixture('preprocess_expected.safetensors'));
    const engine = await load(target, model, 'bf16');
    try {
      for (const file of ['astronaut.png', 'camera.png', 'logo.png', 'palette.png']) {
        for (const size of [64, 256]) {
          const key = `${file}@${size}`;
          const want = reference.get(key);
          if (!want) continue;
          const out = new Float32Array(3 * size * size);
          await transformDecoded(await decodeImage(fixture('images', file), file), { ...preprocess, size }, out, engine.preprocessImage);
          const ref = floats(want, key);
          let off = 0;
          for (let i = 0; i < ref.length; i++) if (Math.abs(out[i] - ref[i]) * preprocess.std[Math.floor(i / (size * size))] > 1 / 255 + 1e-6) off++;
          t.ok(off <= ref.length * 1e-3, `${key}: ${off} of ${ref.length} values off by more than one level`);
        }
      }
      engine.dispose();
      try {
        await engine.preprocessImage(new Uint8Array(3), 1, 1, 'RGB', { ...preprocessSpec(), size: 8 }, new Float32Array(3 * 64));
        t.fail('preprocessImage after dispose resolved');
      } catch (err) {
        t.ok(isClipError(err, 'E_DISPOSED'), `after dispose: ${(err as Error).message}`);
      }
    } finally {
      engine.dispose();
    }
  });

  test(`parity ${target.label}: Clip.classify gives the zero-shot fixture's probabilities`, async (t) => {
    t.timeoutAfter(180_000);
    const dir = fixture('models', 'xxlarge-tiny');
    const zs = JSON.parse(readFileSync(path.join(dir, 'zeroshot_expected.json'), 'utf8')) as { classnames: string[]; templates: string[] };
    const fixtureZs = await readExpected(path.join(dir, 'zeroshot_expected.safetensors'));
    const expected = await readExpected(path.join(dir, 'expected.safetensors'));
    const pixels = floats(expected.get('pixels'), 'pixels');
    const wantProbs = floats(fixtureZs.get('probs'), 'probs');
    const C = zs.classnames.length;
    for (const precision of PRECISIONS) {
      const clip = await Clip.load(dir, { backend: target.backend.name, device: target.device, precision, threads: 2 });
      try {
        const D = clip.embedDim;
        // the fixture's own classifier ([D, C] -> one row per label) and the one this backend builds
        const given = floats(fixtureZs.get('classifier'), 'classifier');
        const rows = new Float32Array(C * D);
        for (let c = 0; c < C; c++) for (let k = 0; k < D; k++) rows[c * D + k] = given[k * C + c];
        const classifiers = { fixture: { labels: zs.classnames, weights: new Embeddings(rows, C, D) }, built: await clip.zeroShot(zs.classnames, zs.templates) };
        for (const [which, classifier] of Object.entries(classifiers)) {
          const ranked = await clip.classify({ data: pixels }, classifier);
          let worst = 0;
          ranked.forEach((scores, i) => {
            t.equal(scores.length, C, `${precision} ${which} image ${i}: every label scored`);
            for (const { label, score } of scores) worst = Math.max(worst, Math.abs(score - wantProbs[i * C + zs.classnames.indexOf(label)]));
          });
          t.equal(ranked.length, pixels.length / (3 * 64 * 64), `${precision} ${which}: one ranking per image`);
          t.ok(worst <= PROB_TOLERANCE[precision], `${precision} ${which} classifier: max |prob - fixture prob| ${worst.toExponential(2)} <= ${PROB_TOLERANCE[precision]}`);
        }
      } finally {
        clip.dispose();
      }
    }
  });
}

function preprocessSpec() {
  return { size: 64, resizeMode: 'shortest' as const, filter: 'bicubic' as const, fill: [0, 0, 0], mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };
}

const cpu = targets.filter((x) => x.device === 'cpu');
for (const target of cpu) {
  test(`parity ${target.label}: 1 and 3 threads give the same fp32 features`, async (t) => {
    t.timeoutAfter(120_000);
    const model = await fixtureModel('xxlarge-tiny');
    const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
    const pixels = floats(expected.get('pixels'), 'pixels');
    const n = expected.get('pixels')!.shape[0];
    const outputs: Float32Array[] = [];
    for (const threads of [1, 3]) {
      const engine = await target.backend.load(model.arch, model.manifest, { precision: 'fp32', device: 'cpu', threads });
      try {
        outputs.push((await engine.encodeImage(pixels, n)).features);
      } finally {
        engine.dispose();
      }
    }
    const rel = maxRelativeDiff(outputs[1], outputs[0]);
    t.ok(rel <= 1e-6, `max rel diff between thread counts ${rel.toExponential(2)}`);
  });
}
