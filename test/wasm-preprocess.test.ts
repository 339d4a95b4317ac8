/** open_clip's eval transform in the wasm build: bit-identical to the native addon's, within 1 level of Pillow's. */
import path from 'node:path';
import test from 'tape';
import { wasmBackend, type WasmClipModel } from '../lib/backends/wasm.js';
import { decodeImage } from '../lib/image/index.js';
import { imageAddon } from '../lib/image/native.js';
import { fixture } from './helpers/fixtures.js';
import { fixtureModel, floats, readExpected } from './native-helpers.js';

const MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
const IMAGES = ['astronaut.png', 'camera.png', 'logo.png', 'tiny_3x2.png', 'wide_900x120.jpg'];

function nativeAvailable(): boolean {
  try {
    imageAddon();
    return true;
  } catch {
    return false;
  }
}

test('wasm preprocess: same floats as the native addon, PNGs within 1/255 of Pillow', { skip: !wasmBackend.available().ok }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const wasm = (await wasmBackend.load(model.arch, model.manifest, { precision: 'bf16', device: 'cpu', threads: 2 })) as WasmClipModel;
  const expected = await readExpected(fixture('preprocess_expected.safetensors'));
  const native = nativeAvailable();
  try {
    for (const name of IMAGES) {
      const image = await decodeImage(fixture('images', name), name);
      for (const size of [256, 64]) {
        const spec = { size, mean: MEAN, std: STD, resizeMode: 'shortest' as const, filter: 'bicubic' as const, fill: [0, 0, 0, 0] as [number, number, number, number] };
        const channels = { L: 1, RGB: 3, RGBA: 4, CMYK: 4 }[image.mode];
        const got = await wasm.preprocess({ data: image.data, width: image.width, height: image.height, channels, mode: image.mode }, spec);
        if (native) {
          const want = new Float32Array(3 * size * size);
          await imageAddon().preprocessImage(image.data, image.width, image.height, image.mode, { ...spec, fill: new Array<number>(channels).fill(0) }, want);
          t.ok(got.every((v, i) => v === want[i]), `${name}@${size}: identical to the native addon`);
        }
        const key = `${name}@${size}`;
        if (name.endsWith('.png') && expected.has(key)) {
          const ref = floats(expected.get(key), key);
          let bad = 0;
          for (let i = 0; i < ref.length; i++) {
            const c = Math.floor(i / (size * size));
            if (Math.abs(got[i] - ref[i]) * STD[c] > 1 / 255 + 1e-6) bad++;
          }
          t.ok(bad <= ref.length * 1e-3, `${key}: ${bad} of ${ref.length} values off by more than one level`);
        }
      }
    }
    try {
      await wasm.preprocess({ data: new Uint8Array(5), width: 2, height: 2, channels: 3, mode: 'RGB' }, { size: 8, mean: MEAN, std: STD });
      t.fail('bad geometry accepted');
    } catch (err) {
      t.match((err as Error).message, /12|bytes/, `bad geometry: ${(err as Error).message}`);
    }
  } finally {
    wasm.dispose();
  }
});
