/**
 * Parity with open_clip's eval transform (Pillow + torchvision) on the golden fixtures: 13 images at 256 and
 * 64 px. Differences are counted in 8-bit levels (|diff| * std * 255) and printed per image.
 */
import { open } from 'node:fs/promises';
import test from 'tape';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { preprocessImages } from '../lib/image/index.js';
import { OPENAI_MEAN, OPENAI_STD, type PreprocessConfig } from '../lib/model-dir.js';
import { fixture } from './helpers/fixtures.js';

const EXPECTED = fixture('preprocess_expected.safetensors');

function config(size: number): PreprocessConfig {
  return { size, mean: OPENAI_MEAN, std: OPENAI_STD, interpolation: 'bicubic', resizeMode: 'shortest', fillColor: 0 };
}

/** Counts of |diff| in 8-bit levels: [0, 1, 2, >2], and the share within `levels`. */
function histogram(expected: Float32Array, actual: Float32Array, size: number, levels: number): { counts: number[]; within: number; maxAbs: number } {
  const counts = [0, 0, 0, 0];
  const plane = size * size;
  let within = 0;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(expected[i] - actual[i]);
    const std = OPENAI_STD[Math.floor(i / plane)];
    const lv = diff * std * 255;
    counts[lv < 0.5 ? 0 : lv < 1.5 ? 1 : lv < 2.5 ? 2 : 3]++;
    if (diff * std <= levels / 255 + 1e-6) within++;
    maxAbs = Math.max(maxAbs, diff);
  }
  return { counts, within: within / expected.length, maxAbs };
}

test('preprocessing matches open_clip on the fixture images (PNG within 1 level for 99.9%, JPEG within 2)', async (t) => {
  const manifest = await readSafetensorsManifest(EXPECTED);
  const fh = await open(EXPECTED);
  const rows: string[] = [];
  try {
    t.equal(manifest.tensors.size, 26, '13 images x 2 sizes');
    for (const [name, entry] of manifest.tensors) {
      const [image, sizeText] = name.split('@');
      const size = Number(sizeText);
      t.deepEqual(entry.shape, [3, size, size], `${name} shape`);
      const bytes = Buffer.alloc(entry.byteLength);
      await fh.read(bytes, 0, entry.byteLength, entry.offset);
      const expected = new Float32Array(bytes.buffer, bytes.byteOffset, entry.byteLength / 4);
      const actual = await preprocessImages([fixture('images', image)], config(size));
      t.equal(actual.length, expected.length, `${name} length`);
      const jpeg = image.endsWith('.jpg');
      const { counts, within, maxAbs } = histogram(expected, actual, size, jpeg ? 2 : 1);
      rows.push(`${name.padEnd(22)} ${counts.map((c) => String(c).padStart(7)).join('')}   max|diff| ${maxAbs.toExponential(2)}`);
      if (jpeg) t.equal(within, 1, `${name}: every value within 2 levels (${counts.join('/')})`);
      else t.ok(within >= 0.999, `${name}: ${(within * 100).toFixed(3)}% within 1 level (${counts.join('/')})`);
    }
  } finally {
    await fh.close();
  }
  t.comment(`differences in 8-bit levels:\n# ${'image@size'.padEnd(22)}${['0', '1', '2', '>2'].map((h) => h.padStart(7)).join('')}\n# ${rows.join('\n# ')}`);
});

test('a batch gives the same rows as single images, in order', async (t) => {
  const images = ['chelsea.png', 'gray.jpg', 'logo.png', 'palette.png'].map((f) => fixture('images', f));
  const batch = await preprocessImages(images, config(64), { concurrency: 3 });
  const per = 3 * 64 * 64;
  t.equal(batch.length, 4 * per);
  for (let i = 0; i < images.length; i++) {
    const one = await preprocessImages([images[i]], config(64));
    t.ok(one.every((v, k) => v === batch[i * per + k]), `row ${i} equals ${images[i]} alone`);
  }
});
