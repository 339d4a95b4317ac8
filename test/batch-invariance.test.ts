/**
 * A row's embedding does not depend on the rest of its batch: every fixture text and image embedded alone is
 * bit-identical to the same row of the whole batch (texts of different lengths included), on the native and the
 * wasm backend, fp32 and bf16. The server's dynamic batching relies on it; gemm_test checks the GEMM itself.
 */
import path from 'node:path';
import test from 'tape';
import { nativeAddonLoad } from '../lib/backends/addon-loader.js';
import { nativeBackend } from '../lib/backends/native.js';
import type { Backend } from '../lib/backends/types.js';
import { wasmBackend } from '../lib/backends/wasm.js';
import { FIXTURE_MODELS } from './helpers/fixtures.js';
import { fixtureModel, floats, readExpected, tokensOf } from './native-helpers.js';

function sameRows(all: Float32Array, row: Float32Array, index: number, dim: number): boolean {
  for (let j = 0; j < dim; j++) if (row[j] !== all[index * dim + j]) return false;
  return true;
}

const backends: [string, Backend, boolean][] = [
  ['native', nativeBackend, nativeAddonLoad().ok],
  ['wasm', wasmBackend, true],
];

for (const [label, backend, available] of backends) {
  test(`${label}: each row alone == that row of the batch, bit for bit (every fixture model, fp32 and bf16)`, { skip: !available }, async (t) => {
    t.timeoutAfter(240_000);
    for (const name of FIXTURE_MODELS) {
      const model = await fixtureModel(name);
      const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
      const tokens = tokensOf(expected.get('tokens'));
      const texts = expected.get('tokens')!.shape[0];
      const pixels = floats(expected.get('pixels'), 'pixels');
      const images = expected.get('pixels')!.shape[0];
      const { embedDim: dim, vision, text } = model.arch;
      const perImage = 3 * vision.imageSize * vision.imageSize, ctx = text.contextLength;
      for (const precision of ['fp32', 'bf16'] as const) {
        const m = await backend.load(model.arch, model.manifest, { precision, device: 'cpu', threads: 2 });
        try {
          const allTexts = (await m.encodeText(tokens, texts)).features;
          const allImages = (await m.encodeImage(pixels, images)).features;
          let textsOk = true, imagesOk = true;
          for (let i = 0; i < texts; i++)
            textsOk &&= sameRows(allTexts, (await m.encodeText(tokens.subarray(i * ctx, (i + 1) * ctx), 1)).features, i, dim);
          for (let i = 0; i < images; i++)
            imagesOk &&= sameRows(allImages, (await m.encodeImage(pixels.subarray(i * perImage, (i + 1) * perImage), 1)).features, i, dim);
          t.ok(textsOk, `${label} ${name} ${precision}: ${texts} texts alone == in the batch`);
          t.ok(imagesOk, `${label} ${name} ${precision}: ${images} images alone == in the batch`);
        } finally {
          m.dispose();
        }
      }
    }
  });
}
