/** resize_mode longest / squash, bilinear interpolation, fill_color: shapes, padding and Pillow parity. */
import { createHash } from 'node:crypto';
import test from 'tape';
import { preprocessImages } from '../lib/image/index.js';
import { OPENAI_MEAN, OPENAI_STD, type PreprocessConfig } from '../lib/model-dir.js';
import { fixture } from './helpers/fixtures.js';

type Mode = PreprocessConfig['resizeMode'];
type Interp = PreprocessConfig['interpolation'];

function config(size: number, resizeMode: Mode, interpolation: Interp = 'bicubic', fillColor = 0): PreprocessConfig {
  return { size, mean: OPENAI_MEAN, std: OPENAI_STD, interpolation, resizeMode, fillColor };
}

/** Back to the 8-bit RGB planes [3, S, S] the normalization started from. */
function toLevels(x: Float32Array, size: number): Uint8Array {
  const plane = size * size;
  return Uint8Array.from(x, (v, i) => {
    const c = Math.floor(i / plane);
    return Math.round((v * OPENAI_STD[c] + OPENAI_MEAN[c]) * 255);
  });
}

// sha256 (first 16 hex digits) of the 8-bit [3, S, S] result of open_clip's transform, computed with
// Pillow 9.4 (Image.resize, ImageOps.expand as torchvision pads PIL images, crop, convert('RGB')).
const PILLOW_HASHES: [string, number, Mode, Interp, number, string][] = [
  ['wide_900x120.jpg', 64, 'longest', 'bicubic', 0, '48da0ea9dd91ffb5'],
  ['wide_900x120.jpg', 64, 'longest', 'bicubic', 128, 'e43dfb9647394896'],
  ['palette.png', 64, 'longest', 'bicubic', 7, '8d137ea160b3bedb'],
  ['logo.png', 48, 'longest', 'bilinear', 200, 'c17773ea01271059'],
  ['camera.png', 50, 'squash', 'bicubic', 0, '07ca0c2ff47528fc'],
  ['chelsea.png', 64, 'squash', 'bilinear', 0, '93e86995debf0e53'],
  ['coffee.png', 64, 'shortest', 'bilinear', 0, 'ebc4ae5c2df5a2b0'],
  ['tiny_3x2.png', 16, 'longest', 'bicubic', 255, '1e6ce7d31b15641f'],
  ['astronaut.png', 97, 'shortest', 'bicubic', 0, 'b198921e87748fa9'],
];

test('longest, squash and bilinear match Pillow bit for bit', async (t) => {
  for (const [image, size, mode, interp, fill, hash] of PILLOW_HASHES) {
    const out = await preprocessImages([fixture('images', image)], config(size, mode, interp, fill));
    t.equal(out.length, 3 * size * size, `${image} ${mode} ${interp} -> [3, ${size}, ${size}]`);
    const digest = createHash('sha256').update(toLevels(out, size)).digest('hex').slice(0, 16);
    t.equal(digest, hash, `${image} ${mode} ${interp} fill ${fill} at ${size}px`);
  }
});

test('longest pads the short side with fill_color, split as center_crop_or_pad does', async (t) => {
  const S = 64;
  // 900x120 -> 64 x round(120 / (900 / 64)) = 64x9: 27 rows of padding above, 28 below.
  const levels = toLevels(await preprocessImages([fixture('images', 'wide_900x120.jpg')], config(S, 'longest', 'bicubic', 128)), S);
  const rowIsFill = (y: number) => [0, 1, 2].every((c) => levels.subarray(c * S * S + y * S, c * S * S + (y + 1) * S).every((v) => v === 128));
  const fillRows = Array.from({ length: S }, (_, y) => rowIsFill(y));
  t.deepEqual(fillRows.slice(0, 27), new Array(27).fill(true), 'rows 0..26 are padding');
  t.ok(fillRows.slice(27, 36).every((f) => !f), 'rows 27..35 are the image');
  t.deepEqual(fillRows.slice(36), new Array(28).fill(true), 'rows 36..63 are padding');

  // A square image fills the output: no padding at all.
  const square = toLevels(await preprocessImages([fixture('images', 'camera.png')], config(S, 'longest', 'bicubic', 77)), S);
  t.notOk(square.every((v) => v === 77), 'a square image is not padded');
});

test('squash resizes both sides to the size; bilinear and bicubic differ but agree closely', async (t) => {
  const S = 32;
  const bicubic = await preprocessImages([fixture('images', 'wide_900x120.jpg')], config(S, 'squash', 'bicubic'));
  const bilinear = await preprocessImages([fixture('images', 'wide_900x120.jpg')], config(S, 'squash', 'bilinear'));
  t.equal(bicubic.length, 3 * S * S);
  const a = toLevels(bicubic, S);
  const b = toLevels(bilinear, S);
  let differing = 0;
  let sumAbs = 0;
  for (let i = 0; i < a.length; i++) {
    differing += a[i] !== b[i] ? 1 : 0;
    sumAbs += Math.abs(a[i] - b[i]);
  }
  t.ok(differing > 0, `${differing} values differ between the filters`);
  t.ok(sumAbs / a.length < 8, `mean |bicubic - bilinear| ${(sumAbs / a.length).toFixed(2)} levels`);
});

test('a model-sized transform of a tiny image upsamples without padding in shortest mode', async (t) => {
  const S = 24;
  const levels = toLevels(await preprocessImages([fixture('images', 'tiny_3x2.png')], config(S, 'shortest')), S);
  t.equal(levels.length, 3 * S * S);
  t.ok(new Set(levels).size > 3, 'interpolated values, not a constant');
});
