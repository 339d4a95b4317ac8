/** Every kind of input gives the same tensor: paths, Buffers, raw pixels; modes and formats; EXIF rotation. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import test from 'tape';
import { decodeImage, preprocessImages, type RawImage } from '../lib/image/index.js';
import { OPENAI_MEAN, OPENAI_STD, type PreprocessConfig } from '../lib/model-dir.js';
import { fixture } from './helpers/fixtures.js';

const CFG: PreprocessConfig = { size: 64, mean: OPENAI_MEAN, std: OPENAI_STD, interpolation: 'bicubic', resizeMode: 'shortest', fillColor: 0 };

function same(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

async function rawOf(file: string, gray = false): Promise<RawImage> {
  const decoder = sharp(file, { ignoreIcc: true });
  const { data, info } = await (gray ? decoder.toColourspace('b-w') : decoder).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels as RawImage['channels'] };
}

test('decoding keeps the image mode, as Pillow opens it', async (t) => {
  const cases: [string, string, string][] = [
    ['camera.png', 'L', 'plain'],
    ['gray.jpg', 'L', 'plain'],
    ['logo.png', 'RGBA', 'plain'],
    ['palette.png', 'RGB', 'palette'],
    ['rocket.jpg', 'RGB', 'plain'],
  ];
  for (const [file, mode, kind] of cases) {
    const image = await decodeImage(fixture('images', file), file);
    t.equal(`${image.mode}/${image.kind}`, `${mode}/${kind}`, `${file} decodes as ${mode} (${kind})`);
  }
  const rot = await decodeImage(fixture('images', 'exif_rot6.jpg'), 'exif');
  t.deepEqual([rot.width, rot.height], [320, 240], 'EXIF orientation is not applied by default');
  const turned = await decodeImage(fixture('images', 'exif_rot6.jpg'), 'exif', { autoOrient: true });
  t.deepEqual([turned.width, turned.height], [240, 320], 'autoOrient applies it');
});

test('Buffer and Uint8Array inputs equal path inputs', async (t) => {
  for (const file of ['china.jpg', 'chelsea.png', 'logo.png', 'palette.png']) {
    const bytes = await readFile(fixture('images', file));
    const fromPath = await preprocessImages([fixture('images', file)], CFG);
    const fromBuffer = await preprocessImages([bytes], CFG);
    const fromView = await preprocessImages([new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)], CFG);
    t.ok(same(fromPath, fromBuffer) && same(fromPath, fromView), `${file}: path = Buffer = Uint8Array`);
  }
});

test('raw pixels equal the decoded files, for 1, 2, 3 and 4 channels', async (t) => {
  const gray = await rawOf(fixture('images', 'camera.png'), true);
  t.equal(gray.channels, 1);
  t.ok(same(await preprocessImages([gray], CFG), await preprocessImages([fixture('images', 'camera.png')], CFG)), 'gray raw = camera.png');

  const rgb = await rawOf(fixture('images', 'chelsea.png'));
  t.ok(same(await preprocessImages([rgb], CFG), await preprocessImages([fixture('images', 'chelsea.png')], CFG)), 'RGB raw = chelsea.png');
  const clamped = { ...rgb, data: new Uint8ClampedArray(rgb.data.buffer, rgb.data.byteOffset, rgb.data.length) };
  t.ok(same(await preprocessImages([clamped], CFG), await preprocessImages([rgb], CFG)), 'Uint8ClampedArray data works too');

  const rgba = await rawOf(fixture('images', 'logo.png'));
  t.equal(rgba.channels, 4);
  t.ok(same(await preprocessImages([rgba], CFG), await preprocessImages([fixture('images', 'logo.png')], CFG)), 'RGBA raw = logo.png');

  // Gray + alpha resizes like RGBA with R = G = B (Pillow's LA and RGBA both go premultiplied).
  const n = rgba.width * rgba.height;
  const la = new Uint8Array(2 * n);
  const asRgba = new Uint8Array(4 * n);
  for (let i = 0; i < n; i++) {
    la[2 * i] = asRgba[4 * i] = asRgba[4 * i + 1] = asRgba[4 * i + 2] = rgba.data[4 * i + 1];
    la[2 * i + 1] = asRgba[4 * i + 3] = rgba.data[4 * i + 3];
  }
  const fromLa = await preprocessImages([{ data: la, width: rgba.width, height: rgba.height, channels: 2 }], CFG);
  const fromRgba = await preprocessImages([{ data: asRgba, width: rgba.width, height: rgba.height, channels: 4 }], CFG);
  t.ok(same(fromLa, fromRgba), 'LA raw = RGBA with gray colour');
});

test('autoOrient rotates by the EXIF orientation before the transform', async (t) => {
  const file = fixture('images', 'exif_rot6.jpg');
  const plain = await preprocessImages([file], CFG);
  const oriented = await preprocessImages([file], CFG, { autoOrient: true });
  t.notOk(same(plain, oriented), 'the rotated image gives another tensor');
  const { data, info } = await sharp(file, { ignoreIcc: true }).rotate(90).raw().toBuffer({ resolveWithObject: true });
  const turned = await preprocessImages([{ data, width: info.width, height: info.height, channels: 3 }], CFG);
  t.ok(same(oriented, turned), 'autoOrient = the pixels turned 90 degrees clockwise');
});

test('WebP, TIFF, GIF, AVIF and CMYK JPEG decode', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cclip-formats-'));
  try {
    const src = fixture('images', 'chelsea.png');
    const reference = await preprocessImages([src], CFG);
    const lossless: [string, (s: Sharp) => Sharp][] = [
      ['img.webp', (s) => s.webp({ lossless: true })],
      ['img.tiff', (s) => s.tiff({ compression: 'lzw' })],
    ];
    for (const [name, encode] of lossless) {
      const file = path.join(dir, name);
      await encode(sharp(src)).toFile(file);
      t.ok(same(await preprocessImages([file], CFG), reference), `${name} (lossless) = the PNG`);
    }
    const gif = path.join(dir, 'img.gif');
    await sharp(src).gif().toFile(gif);
    t.equal((await decodeImage(gif, 'gif')).kind, 'palette', 'GIF decodes as a palette image');
    const avif = path.join(dir, 'img.avif');
    await sharp(src).avif({ quality: 90 }).toFile(avif);
    const cmyk = path.join(dir, 'cmyk.jpg');
    await sharp(src).toColourspace('cmyk').jpeg({ quality: 95 }).toFile(cmyk);
    t.equal((await decodeImage(cmyk, 'cmyk')).mode, 'CMYK', 'a CMYK JPEG stays CMYK until convert("RGB")');
    const out = await preprocessImages([gif, avif, cmyk], CFG);
    t.equal(out.length, 3 * 3 * 64 * 64, 'GIF, AVIF and CMYK preprocess');
    t.ok(out.every((v) => Number.isFinite(v)), 'finite values');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
