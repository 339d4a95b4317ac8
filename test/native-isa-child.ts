/**
 * Child of native-isa.test.ts (run with CCLIP_GEMM_ISA set): every fixture model in fp32 and bf16 against the
 * reference tensors; prints one JSON line with the GEMM variants the addon picked and the worst differences.
 */
import path from 'node:path';
import { nativeAddonLoad } from '../lib/backends/addon-loader.js';
import { FIXTURE_MODELS } from './helpers/fixtures.js';
import { fixtureModel, floats, loadNative, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from './native-helpers.js';

const load = nativeAddonLoad();
if (!load.ok) throw new Error(load.message);
const result: Record<string, unknown> = { kernels: load.addon.gemmKernels };
for (const name of FIXTURE_MODELS) {
  const model = await fixtureModel(name);
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const pixels = expected.get('pixels')!, tokens = expected.get('tokens')!;
  for (const precision of ['fp32', 'bf16'] as const) {
    const m = await loadNative(model, precision);
    const image = await m.encodeImage(floats(pixels, 'pixels'), pixels.shape[0]);
    const text = await m.encodeText(tokensOf(tokens), tokens.shape[0]);
    const wantImage = floats(expected.get('image_features'), 'image_features');
    const wantText = floats(expected.get('text_features'), 'text_features');
    result[`${name} ${precision}`] = {
      maxRel: Math.max(maxRelativeDiff(image.features, wantImage), maxRelativeDiff(text.features, wantText)),
      minCos: Math.min(minRowCosine(image.features, wantImage, model.arch.embedDim), minRowCosine(text.features, wantText, model.arch.embedDim)),
    };
    m.dispose();
  }
}
console.log(JSON.stringify(result));
