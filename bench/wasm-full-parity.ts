/**
 * Full-size parity of the wasm build (wasm/prebuilt, or $CCLIP_WASM_DIR) against a model directory made by
 * clip_reference.py make: every image and text row of its expected.safetensors, batched, fp32 and bf16, 2 threads.
 * The bars: fp32 max relative difference <= 1e-5, bf16 minimum row cosine >= 0.9999.
 *
 *   node --import tsx bench/wasm-full-parity.ts /tmp/base_w
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseModelConfig } from '../lib/architecture.js';
import { wasmBackend } from '../lib/backends/wasm.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from '../test/native-helpers.js';
const dir = process.argv[2] ?? '/tmp/base_w';
const arch = parseModelConfig((JSON.parse(readFileSync(path.join(dir, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown }).model_cfg);
const manifest = await readSafetensorsManifest(path.join(dir, 'open_clip_model.safetensors'));
const exp = await readExpected(path.join(dir, 'expected.safetensors'));
const pixels = floats(exp.get('pixels'), 'pixels');
const tokens = tokensOf(exp.get('tokens'));
const dim = arch.embedDim;
const wantI = floats(exp.get('image_features'), 'image_features');
const wantT = floats(exp.get('text_features'), 'text_features');
for (const precision of ['fp32', 'bf16'] as const) {
  const m = await wasmBackend.load(arch, manifest, { precision, device: 'cpu', threads: 2 });
  const img = (await m.encodeImage(pixels, wantI.length / dim)).features;
  const txt = (await m.encodeText(tokens, wantT.length / dim)).features;
  const ok = precision === 'fp32'
    ? Math.max(maxRelativeDiff(img, wantI), maxRelativeDiff(txt, wantT)) <= 1e-5
    : Math.min(minRowCosine(img, wantI, dim), minRowCosine(txt, wantT, dim)) >= 0.9999;
  if (!ok) process.exitCode = 1;
  console.log(`${ok ? 'ok' : 'FAIL'} ${precision}: image max rel ${maxRelativeDiff(img, wantI).toExponential(2)} min cos ${minRowCosine(img, wantI, dim).toFixed(7)}; text max rel ${maxRelativeDiff(txt, wantT).toExponential(2)} min cos ${minRowCosine(txt, wantT, dim).toFixed(7)}`);
  await m.dispose();
}
