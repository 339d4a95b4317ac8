/** The wasm backend behind the public Clip API: photos from files and texts from strings, as the reference. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { registerBackend } from '../lib/backends/index.js';
import { wasmBackend } from '../lib/backends/wasm.js';
import { Clip } from '../lib/clip.js';
import { fixture } from './helpers/fixtures.js';
import { floats, maxRelativeDiff, readExpected } from './native-helpers.js';

test('Clip.load({ backend: "wasm" }): embeddings from files and strings reproduce the reference', { skip: !wasmBackend.available().ok }, async (t) => {
  registerBackend(wasmBackend);
  const dir = fixture('models', 'xxlarge-tiny');
  const info = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { images: string[]; texts: string[] };
  const expected = await readExpected(path.join(dir, 'expected.safetensors'));
  const photos = info.images.filter((f) => !f.startsWith('<')).map((f) => fixture('images', f));
  const allImages = floats(expected.get('image_embeds'), 'image_embeds');
  const dim = allImages.length / info.images.length;
  const clip = await Clip.load(dir, { backend: 'wasm', precision: 'fp32', threads: 2 });
  try {
    t.equal(clip.backend, 'wasm', 'backend is wasm');
    const images = await clip.embedImages(photos);
    const texts = await clip.embedTexts(info.texts);
    const ri = maxRelativeDiff(images.data, allImages.subarray(0, photos.length * dim));
    const rt = maxRelativeDiff(texts.data, floats(expected.get('text_embeds'), 'text_embeds'));
    t.ok(ri <= 1e-4, `image_embeds from files: max rel diff ${ri.toExponential(2)}`);
    t.ok(rt <= 1e-4, `text_embeds from strings: max rel diff ${rt.toExponential(2)}`);
  } finally {
    clip.dispose();
  }
});
