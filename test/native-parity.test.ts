/** Native backend vs the reference outputs of every fixture model: fp32 to 1e-4 relative, bf16 to cosine 0.999. */
import path from 'node:path';
import test from 'tape';
import { nativeBackend } from '../lib/backends/native.js';
import { FIXTURE_MODELS } from './helpers/fixtures.js';
import { fixtureModel, floats, loadNative, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from './native-helpers.js';

const FP32_TOLERANCE = 1e-4;
const BF16_MIN_COSINE = 0.999;
const available = nativeBackend.available();

for (const name of FIXTURE_MODELS) {
  test(`native fp32 parity: ${name}`, { skip: !available.ok }, async (t) => {
    const model = await fixtureModel(name);
    const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
    const pixels = floats(expected.get('pixels'), 'pixels');
    const tokens = tokensOf(expected.get('tokens'));
    const imageCount = expected.get('pixels')!.shape[0];
    const textCount = expected.get('tokens')!.shape[0];
    const native = await loadNative(model, 'fp32');
    try {
      const image = await native.encodeImage(pixels, imageCount, { capture: true });
      const text = await native.encodeText(tokens, textCount, { capture: true });
      const check = (key: string, got: Float32Array | undefined) => {
        const want = floats(expected.get(key), key);
        if (!got) return t.fail(`${key}: not returned`);
        // Text captures hold only the L positions computed (up to the batch's last end token).
        const rel = maxRelativeDiff(got, want.subarray(0, got.length));
        t.ok(rel <= FP32_TOLERANCE, `${key}: max rel diff ${rel.toExponential(2)} <= ${FP32_TOLERANCE}`);
      };
      check('image_features', image.features);
      check('text_features', text.features);
      for (const key of expected.keys()) {
        if (key.startsWith('image0.')) check(key, image.intermediates?.[key]);
        if (key.startsWith('text0.')) check(key, text.intermediates?.[key]);
      }
      const blocks = Object.keys(text.intermediates ?? {}).filter((k) => k.startsWith('text0.block'));
      t.equal(blocks.length, model.arch.text.layers, 'one capture per text block');
    } finally {
      native.dispose();
    }
  });

  test(`native bf16 parity: ${name}`, { skip: !available.ok }, async (t) => {
    const model = await fixtureModel(name);
    const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
    const native = await loadNative(model, 'bf16');
    try {
      const image = await native.encodeImage(floats(expected.get('pixels'), 'pixels'), expected.get('pixels')!.shape[0]);
      const text = await native.encodeText(tokensOf(expected.get('tokens')), expected.get('tokens')!.shape[0]);
      const dim = model.arch.embedDim;
      const imageCos = minRowCosine(image.features, floats(expected.get('image_features'), 'image_features'), dim);
      const textCos = minRowCosine(text.features, floats(expected.get('text_features'), 'text_features'), dim);
      t.ok(imageCos >= BF16_MIN_COSINE, `image_features min cosine ${imageCos.toFixed(6)} >= ${BF16_MIN_COSINE}`);
      t.ok(textCos >= BF16_MIN_COSINE, `text_features min cosine ${textCos.toFixed(6)} >= ${BF16_MIN_COSINE}`);
    } finally {
      native.dispose();
    }
  });
}
