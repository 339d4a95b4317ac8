/** Bad inputs fail with a ClipError that names the input: truncated files, garbage, bombs, bad batches. */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import test from 'tape';
import { ClipError } from '../lib/errors.js';
import { preprocessImages } from '../lib/image/index.js';
import { OPENAI_MEAN, OPENAI_STD, type PreprocessConfig } from '../lib/model-dir.js';
import { fixture } from './helpers/fixtures.js';

const CFG: PreprocessConfig = { size: 32, mean: OPENAI_MEAN, std: OPENAI_STD, interpolation: 'bicubic', resizeMode: 'shortest', fillColor: 0 };

async function failure(p: Promise<unknown>): Promise<ClipError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ClipError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

/** A valid-looking gray PNG header of width x height with a tiny IDAT: a decompression bomb. */
function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit grayscale
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(width + 1))), chunk('IEND', new Uint8Array(0))]);
}

test('truncated PNG and JPEG files, random bytes and non-images fail with E_IMAGE_DECODE naming the file', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cclip-bad-'));
  try {
    const png = await readFile(fixture('images', 'chelsea.png'));
    const jpg = await readFile(fixture('images', 'china.jpg'));
    const files: Record<string, Uint8Array> = {
      'half.png': png.subarray(0, png.length >> 1),
      'cut.jpg': jpg.subarray(0, Math.floor(jpg.length * 0.6)),
      'header-only.jpg': jpg.subarray(0, 300),
      'random.bin': Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24),
      'text.png': Buffer.from('not an image at all'),
      'drawing.svg': Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'),
      'empty.jpg': new Uint8Array(0),
    };
    for (const [name, bytes] of Object.entries(files)) {
      const file = path.join(dir, name);
      await writeFile(file, bytes);
      const err = await failure(preprocessImages([file], CFG));
      t.equal(err.code, 'E_IMAGE_DECODE', `${name}: E_IMAGE_DECODE`);
      t.ok(err.message.includes(file) && err.subject === file, `${name}: the error names the file (${err.message.slice(0, 120)})`);
    }
    const fromBuffer = await failure(preprocessImages([png.subarray(0, 1000)], CFG));
    t.equal(fromBuffer.code, 'E_IMAGE_DECODE', 'a truncated Buffer too');
    t.ok(fromBuffer.message.startsWith('input #0'), `a Buffer is named by its index: ${fromBuffer.message.slice(0, 60)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a decompression bomb and images over maxPixels fail with E_INPUT_TOO_LARGE before decoding', async (t) => {
  const bomb = bombPng(50_000, 50_000); // 2.5 gigapixels in a few KB
  t.ok(bomb.length < 100_000, `bomb is ${bomb.length} bytes`);
  const started = Date.now();
  const err = await failure(preprocessImages([bomb], CFG));
  t.equal(err.code, 'E_INPUT_TOO_LARGE', `bomb refused: ${err.message}`);
  t.ok(Date.now() - started < 5000, 'refused from the header, not after decoding');

  const small = await failure(preprocessImages([fixture('images', 'chelsea.png')], CFG, { maxPixels: 100_000 }));
  t.equal(small.code, 'E_INPUT_TOO_LARGE', '451x300 over a 100000-pixel limit');
  t.ok(small.message.includes('chelsea.png'), 'names the file');
  const raw = await failure(preprocessImages([{ data: new Uint8Array(300 * 400), width: 300, height: 400, channels: 1 }], CFG, { maxPixels: 100_000 }));
  t.equal(raw.code, 'E_INPUT_TOO_LARGE', 'raw pixels over the limit');
  const ok = await preprocessImages([fixture('images', 'chelsea.png')], CFG, { maxPixels: 135_300 });
  t.equal(ok.length, 3 * 32 * 32, 'exactly at the limit is accepted');
});

test('a batch with one bad image says which one', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cclip-batch-'));
  try {
    const bad = path.join(dir, 'broken.png');
    const png = await readFile(fixture('images', 'coffee.png'));
    await writeFile(bad, png.subarray(0, 5000));
    const good = path.join(dir, 'good.png');
    await copyFile(fixture('images', 'chelsea.png'), good);
    const inputs = [good, fixture('images', 'china.jpg'), bad, fixture('images', 'gray.jpg')];
    const err = await failure(preprocessImages(inputs, CFG, { concurrency: 2 }));
    t.equal(err.code, 'E_IMAGE_DECODE');
    t.ok(err.message.startsWith(`input #2 (${bad})`), `message: ${err.message.slice(0, 100)}`);
    t.equal(err.subject, bad, 'subject is the bad file');
    const rawBatch = await failure(preprocessImages([fixture('images', 'china.jpg'), { data: new Uint8Array(10), width: 4, height: 4, channels: 3 }], CFG));
    t.equal(rawBatch.code, 'E_INVALID_ARGUMENT', 'wrong raw length');
    t.ok(rawBatch.message.startsWith('input #1'), `names input #1: ${rawBatch.message}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('missing files, bad arguments and bad options', async (t) => {
  const missing = await failure(preprocessImages(['/nonexistent/cat.jpg'], CFG));
  t.equal(missing.code, 'E_NOT_FOUND', 'missing file: E_NOT_FOUND');
  t.ok(missing.message.includes('/nonexistent/cat.jpg'), 'names it');
  const cases: [string, Promise<unknown>][] = [
    ['not an array', preprocessImages('a.jpg' as unknown as string[], CFG)],
    ['a number', preprocessImages([42 as unknown as string], CFG)],
    ['5 channels', preprocessImages([{ data: new Uint8Array(5), width: 1, height: 1, channels: 5 as 4 }], CFG)],
    ['Float32 data', preprocessImages([{ data: new Float32Array(3) as unknown as Uint8Array, width: 1, height: 1, channels: 3 }], CFG)],
    ['zero width', preprocessImages([{ data: new Uint8Array(0), width: 0, height: 1, channels: 3 }], CFG)],
    ['size 0', preprocessImages([fixture('images', 'china.jpg')], { ...CFG, size: 0 })],
    ['maxPixels -1', preprocessImages([fixture('images', 'china.jpg')], CFG, { maxPixels: -1 })],
    ['concurrency 0', preprocessImages([fixture('images', 'china.jpg')], CFG, { concurrency: 0 })],
  ];
  for (const [what, p] of cases) t.equal((await failure(p)).code, 'E_INVALID_ARGUMENT', `${what}: E_INVALID_ARGUMENT`);
  t.equal((await preprocessImages([], CFG)).length, 0, 'an empty batch is an empty tensor');
});
