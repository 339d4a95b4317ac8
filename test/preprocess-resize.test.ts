/** The native resampler alone against Pillow's Image.resize on synthetic images (hashes of Pillow's output). */
import { createHash } from 'node:crypto';
import test from 'tape';
import { imageAddon } from '../lib/image/native.js';

type Filter = 'bicubic' | 'bilinear' | 'nearest';

/** Deterministic test images, generated identically on the Python side. */
function pattern(w: number, h: number, c: number, kind: 'noise' | 'ramp'): Uint8Array {
  const out = new Uint8Array(w * h * c);
  for (let i = 0; i < out.length; i++) {
    if (kind === 'noise') out[i] = (Math.imul(i, 2654435761 | 0) >>> 0) >>> 24;
    else {
      const px = Math.floor(i / c);
      out[i] = ((px % w) * 3 + Math.floor(px / w) * 5 + (i % c) * 40) % 256;
    }
  }
  return out;
}

// [w, h, channels, out w, out h, filter, pattern, sha256 prefix of Pillow 9.4's resize output]; 4 channels
// resized as RGBX (no premultiplication), 2 channels as two L bands.
const CASES: [number, number, number, number, number, Filter, 'noise' | 'ramp', string][] = [
  [200000, 2, 3, 50, 2, 'bicubic', 'noise', '1439862bfc94d918'], // rows too wide for the blocked pass
  [640, 480, 3, 213, 160, 'bicubic', 'noise', 'a3fb0087a9700156'],
  [37, 23, 1, 300, 200, 'bicubic', 'ramp', 'ae84cf5e12f82d86'], // upscaling
  [500, 333, 4, 97, 64, 'bilinear', 'noise', '8d6b3cc14fdcba1f'],
  [301, 199, 3, 64, 64, 'nearest', 'ramp', 'e08115f9f098a839'],
  [1000, 10, 2, 333, 7, 'bicubic', 'ramp', 'b49d1d0533a44e36'],
  [64, 64, 3, 64, 32, 'bicubic', 'noise', 'faadb9a30007c638'], // vertical pass only
  [640, 480, 3, 640, 480, 'bicubic', 'noise', 'fb7341e21c63c82d'], // same size: a copy
];

test('resizeImage equals Pillow Image.resize bit for bit', async (t) => {
  const addon = imageAddon();
  for (const [w, h, c, ow, oh, filter, kind, hash] of CASES) {
    const out = await addon.resizeImage(pattern(w, h, c, kind), w, h, c, ow, oh, filter);
    t.equal(out.length, ow * oh * c, `${w}x${h}x${c} -> ${ow}x${oh} size`);
    t.equal(createHash('sha256').update(out).digest('hex').slice(0, 16), hash, `${w}x${h}x${c} -> ${ow}x${oh} ${filter} (${kind})`);
  }
});

test('resizeImage rejects bad arguments synchronously', (t) => {
  const addon = imageAddon();
  t.throws(() => addon.resizeImage(new Uint8Array(10), 2, 2, 3, 1, 1, 'bicubic'), /12/, 'wrong byte count');
  t.throws(() => addon.resizeImage(new Uint8Array(12), 2, 2, 3, 0, 1, 'bicubic'), /outWidth/, 'zero output width');
  t.throws(() => addon.resizeImage(new Uint8Array(12), 2, 2, 3, 1, 1, 'lanczos' as Filter), /filter/, 'unknown filter');
  t.end();
});
