/** wasm backend vs the reference outputs of every fixture model: fp32 to 1e-4 relative (intermediates too), bf16 to cosine 0.999. */
import path from 'node:path';
import test from 'tape';
import type { Precision } from '../lib/backends/types.js';
import { wasmBackend } from '../lib/backends/wasm.js';
import { FIXTURE_MODELS } from './helpers/fixtures.js';
import { type FixtureModel, fixtureModel, floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from './native-helpers.js';

const FP32_TOLERANCE = 1e-4;
const BF16_MIN_COSINE = 0.999;
const available = wasmBackend.available();

function loadWasm(model: FixtureModel, precision: Precision, threads = 2) {
  return wasmBackend.load(model.arch, model.manifest, { precision, device: 'cpu', threads });
}

for (const name of FIXTURE_MODELS) {
  test(`wasm fp32 parity: ${name}`, { skip: !available.ok }, async (t) => {
    const model = await fixtureModel(name);
    const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
    const wasm = await loadWasm(model, 'fp32');
    try {
      const image = await wasm.encodeImage(floats(expected.get('pixels'), 'pixels'), expected.get('pixels')!.shape[0], { capture: true });
      const text = await wasm.encodeText(tokensOf(expected.get('tokens')), expected.get('tokens')!.shape[0], { capture: true });
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
      const blocks = Object.keys(text.intermediates ?? {}).filter((k) => k.startsWith('text0.block'));
      t.equal(blocks.length, model.arch.text.layers, 'one capture per text block');
    } finally {
      wasm.dispose();
    }
  });

  test(`wasm bf16 parity: ${name}`, { skip: !available.ok }, async (t) => {
    const model = await fixtureModel(name);
    const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
    const wasm = await loadWasm(model, 'bf16');
    try {
      const image = await wasm.encodeImage(floats(expected.get('pixels'), 'pixels'), expected.get('pixels')!.shape[0]);
      const text = await wasm.encodeText(tokensOf(expected.get('tokens')), expected.get('tokens')!.shape[0]);
      const dim = model.arch.embedDim;
      const imageCos = minRowCosine(image.features, floats(expected.get('image_features'), 'image_features'), dim);
      const textCos = minRowCosine(text.features, floats(expected.get('text_features'), 'text_features'), dim);
      t.ok(imageCos >= BF16_MIN_COSINE, `image_features min cosine ${imageCos.toFixed(6)} >= ${BF16_MIN_COSINE}`);
      t.ok(textCos >= BF16_MIN_COSINE, `text_features min cosine ${textCos.toFixed(6)} >= ${BF16_MIN_COSINE}`);
    } finally {
      wasm.dispose();
    }
  });
}

test('wasm: 1 and 3 threads give the same fp32 features', { skip: !available.ok }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const pixels = floats(expected.get('pixels'), 'pixels');
  const n = expected.get('pixels')!.shape[0];
  const outputs: Float32Array[] = [];
  for (const threads of [1, 3]) {
    const wasm = await loadWasm(model, 'fp32', threads);
    try {
      outputs.push((await wasm.encodeImage(pixels, n)).features);
    } finally {
      wasm.dispose();
    }
  }
  const rel = maxRelativeDiff(outputs[1], outputs[0]);
  t.ok(rel <= 1e-6, `max rel diff between thread counts ${rel.toExponential(2)}`);
});
