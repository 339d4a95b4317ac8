/**
 * Child of wasm-simd.test.ts (run with CCLIP_WASM_SIMD set, and the V8 relaxed-SIMD flag where the engine needs it):
 * every fixture model in fp32 and bf16 on the wasm backend against the reference tensors, and each row alone against
 * its row of the batch; prints one JSON line with the build the models ran, the worst differences and whether every
 * row matched bit for bit. A load error prints {"error": {code, message}}.
 */
import path from 'node:path';
import { wasmBackend } from '../lib/backends/wasm.js';
import type { WasmClipModel } from '../lib/backends/wasm-model.js';
import { ClipError } from '../lib/errors.js';
import { FIXTURE_MODELS } from './helpers/fixtures.js';
import { fixtureModel, floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from './native-helpers.js';

function rowsMatch(all: Float32Array, rows: Float32Array[], dim: number): boolean {
  return rows.every((row, i) => row.every((v, j) => v === all[i * dim + j]));
}

const result: Record<string, unknown> = {};
const builds = new Set<string>();
try {
  for (const name of FIXTURE_MODELS) {
    const model = await fixtureModel(name);
    const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
    const pixels = floats(expected.get('pixels'), 'pixels'), tokens = tokensOf(expected.get('tokens'));
    const images = expected.get('pixels')!.shape[0], texts = expected.get('tokens')!.shape[0];
    const { embedDim: dim, vision, text } = model.arch;
    const perImage = 3 * vision.imageSize * vision.imageSize, ctx = text.contextLength;
    for (const precision of ['fp32', 'bf16'] as const) {
      const m = (await wasmBackend.load(model.arch, model.manifest, { precision, device: 'cpu', threads: 2 })) as WasmClipModel;
      try {
        builds.add(m.simd);
        const image = (await m.encodeImage(pixels, images)).features;
        const txt = (await m.encodeText(tokens, texts)).features;
        const imageRows: Float32Array[] = [], textRows: Float32Array[] = [];
        for (let i = 0; i < images; i++) imageRows.push((await m.encodeImage(pixels.subarray(i * perImage, (i + 1) * perImage), 1)).features);
        for (let i = 0; i < texts; i++) textRows.push((await m.encodeText(tokens.subarray(i * ctx, (i + 1) * ctx), 1)).features);
        const wantImage = floats(expected.get('image_features'), 'image_features');
        const wantText = floats(expected.get('text_features'), 'text_features');
        result[`${name} ${precision}`] = {
          maxRel: Math.max(maxRelativeDiff(image, wantImage), maxRelativeDiff(txt, wantText)),
          minCos: Math.min(minRowCosine(image, wantImage, dim), minRowCosine(txt, wantText, dim)),
          rowsAlone: rowsMatch(image, imageRows, dim) && rowsMatch(txt, textRows, dim),
        };
      } finally {
        m.dispose();
      }
    }
  }
  result.builds = [...builds];
} catch (err) {
  if (!(err instanceof ClipError)) throw err;
  result.error = { code: err.code, message: err.message };
}
console.log(JSON.stringify(result));
