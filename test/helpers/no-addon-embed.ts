/**
 * Run with CONVNEXT_CLIP_ADDON=none (and CONVNEXT_CLIP_TORCH_ADDON=none): loads a fixture model with backend 'auto' and embeds its photos from files
 * and from bytes; prints one JSON line per precision for test/no-native-addon.test.ts to check.
 */
import { readFileSync } from 'node:fs';
import { nativeBackend } from '../../lib/backends/native.js';
import { Clip } from '../../lib/clip.js';

const [dir, ...photos] = process.argv.slice(2);
const status = nativeBackend.available();
process.stdout.write(`${JSON.stringify({ nativeAvailable: status.ok, reason: status.ok ? '' : status.reason })}\n`);
for (const precision of ['fp32', undefined] as const) {
  const clip = await Clip.load(dir, { precision, threads: 2 });
  try {
    const fromFiles = await clip.embedImages(photos);
    const fromBytes = await clip.embedImages(photos.map((p) => new Uint8Array(readFileSync(p))));
    const classified = await clip.classify(photos[0], ['a cat', 'a dog']);
    process.stdout.write(`${JSON.stringify({ backend: clip.backend, precision: clip.precision, dim: fromFiles.dim,
      fromFiles: Array.from(fromFiles.data), fromBytes: Array.from(fromBytes.data), scores: classified[0].length })}\n`);
  } finally {
    clip.dispose();
  }
}
