/**
 * Issue 18, classes 6 and 9 (images): special files and oversized or extreme inputs are refused with typed
 * errors, fast and in bounded memory. Each attack runs in a child process killed past its time or memory bound.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { ClipError } from '../lib/errors.js';
import { preprocessImages } from '../lib/image/index.js';
import { readModelConfig } from '../lib/model-dir.js';
import { ClipTokenizer } from '../lib/tokenizer/index.js';
import { type AttackResult, attack, mkfifo } from './helpers/attack.js';
import { fixture } from './helpers/fixtures.js';
import { request, startServer } from './server-helpers.js';

const MODEL = fixture('models', 'xxlarge-tiny');
const work = mkdtempSync(path.join(tmpdir(), 'hardening-files-'));
test.onFinish(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the tiny model's files (config, weights, vocabulary) in `name`. */
function modelCopy(name: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ['open_clip_config.json', 'open_clip_model.safetensors', 'vocab.json', 'merges.txt']) copyFileSync(path.join(MODEL, f), path.join(dir, f));
  return dir;
}

/** A hand-written PNG of width x height gray zeros (a few KB even for 30 million rows). */
function grayPng(width: number, height: number): Buffer {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes: Buffer) => {
    let c = 0xffffffff;
    for (const b of bytes) c = table[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth; colour type 0 (gray)
  const rows = Buffer.alloc((width + 1) * height); // filter byte 0 + zeros per row
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

function expectRefused(t: test.Test, what: string, r: AttackResult, code: string, pattern: RegExp, limits: { ms: number; rssMB?: number }): void {
  t.notOk(r.killed, `${what}: answered (not killed for ${r.killed ?? '-'}) in ${r.ms} ms`);
  t.equal(r.code, code, `${what}: ${code}: ${r.message ?? ''}`);
  t.match(r.message ?? '', pattern, `${what}: the message says why`);
  t.ok(r.ms < limits.ms, `${what}: within ${limits.ms} ms (${r.ms} ms)`);
  if (limits.rssMB !== undefined) t.ok(r.peakRssMB > 0 && r.peakRssMB < limits.rssMB, `${what}: peak RSS ${r.peakRssMB} MB < ${limits.rssMB} MB`);
}

const cfg = `const { preprocess } = await (await lib('model-dir.js')).readModelConfig(${JSON.stringify(path.join(MODEL, 'open_clip_config.json'))});`;

test('special files: a FIFO as the image, config, vocabulary (each file) or weights is refused at once, never waited on', async (t) => {
  t.timeoutAfter(120_000);
  const image = path.join(work, 'pipe.png');
  mkfifo(image);
  const imageRun = await attack(`${cfg} await (await lib('image/index.js')).preprocessImages([${JSON.stringify(image)}], preprocess);`, { timeoutMs: 15_000 });
  expectRefused(t, 'FIFO image', imageRun, 'E_IO', /FIFO.*not a regular file/, { ms: 15_000 });

  const config = modelCopy('fifo-config');
  mkfifo(path.join(config, 'open_clip_config.json'));
  const configRun = await attack(`await (await lib('model-dir.js')).describeModel(${JSON.stringify(config)});`, { timeoutMs: 15_000 });
  expectRefused(t, 'FIFO config', configRun, 'E_CONFIG', /FIFO.*not a regular file/, { ms: 15_000 });

  for (const name of ['vocab.json', 'merges.txt']) {
    const dir = modelCopy(`fifo-${name}`);
    mkfifo(path.join(dir, name));
    const r = await attack(`await (await lib('tokenizer/index.js')).ClipTokenizer.load(${JSON.stringify(dir)});`, { timeoutMs: 15_000 });
    expectRefused(t, `FIFO ${name}`, r, 'E_VOCAB', /FIFO.*not a regular file/, { ms: 15_000 });
  }
  const gz = path.join(work, 'bpe_simple_vocab_16e6.txt.gz');
  mkfifo(gz);
  const gzRun = await attack(`await (await lib('tokenizer/index.js')).ClipTokenizer.load({ bpeGz: ${JSON.stringify(gz)} });`, { timeoutMs: 15_000 });
  expectRefused(t, 'FIFO .gz vocabulary', gzRun, 'E_VOCAB', /FIFO/, { ms: 15_000 });

  const weights = modelCopy('fifo-weights');
  mkfifo(path.join(weights, 'open_clip_model.safetensors'));
  const weightsRun = await attack(`await (await lib('clip.js')).Clip.load(${JSON.stringify(weights)}, { backend: 'native', threads: 1 });`, { timeoutMs: 15_000 });
  expectRefused(t, 'FIFO weights', weightsRun, 'E_IO', /FIFO.*not a regular file/, { ms: 15_000 });
});

test('special files: /dev/zero and /dev/urandom as an image (also behind an image name) are refused in bounded memory', async (t) => {
  t.timeoutAfter(120_000);
  const link = path.join(work, 'zero.jpg');
  symlinkSync('/dev/zero', link);
  for (const file of ['/dev/zero', '/dev/urandom', link]) {
    const r = await attack(`${cfg} await (await lib('image/index.js')).preprocessImages([${JSON.stringify(file)}], preprocess);`, { timeoutMs: 15_000, maxRssMB: 400 });
    expectRefused(t, file, r, 'E_IO', /character device, not a regular file/, { ms: 15_000, rssMB: 400 });
  }
});

test('special files: /dev/zero behind the config, vocab.json or weights name is refused in bounded memory', async (t) => {
  t.timeoutAfter(120_000);
  for (const [name, body, code] of [
    ['open_clip_config.json', (dir: string) => `await (await lib('model-dir.js')).describeModel(${JSON.stringify(dir)});`, 'E_CONFIG'],
    ['vocab.json', (dir: string) => `await (await lib('tokenizer/index.js')).ClipTokenizer.load(${JSON.stringify(dir)});`, 'E_VOCAB'],
    ['open_clip_model.safetensors', (dir: string) => `await (await lib('model-dir.js')).describeModel(${JSON.stringify(dir)});`, 'E_IO'],
  ] as const) {
    const dir = modelCopy(`zero-${name}`);
    rmSync(path.join(dir, name));
    symlinkSync('/dev/zero', path.join(dir, name));
    const r = await attack(body(dir), { timeoutMs: 15_000, maxRssMB: 400 });
    expectRefused(t, `${name} -> /dev/zero`, r, code, /character device, not a regular file/, { ms: 15_000, rssMB: 400 });
  }
});

test('special files: a directory as the image, config or vocabulary file is a typed error', async (t) => {
  const dir = path.join(work, 'a-folder.png');
  mkdirSync(dir);
  const clipCfg = (await readModelConfig(path.join(MODEL, 'open_clip_config.json'))).preprocess;
  const image = await preprocessImages([dir], clipCfg).catch((e: unknown) => e);
  t.ok(image instanceof ClipError && image.code === 'E_IO' && /directory/.test(image.message), `image: ${(image as Error).message}`);
  const config = await readModelConfig(dir).catch((e: unknown) => e);
  t.ok(config instanceof ClipError && config.code === 'E_CONFIG' && /directory/.test(config.message), `config: ${(config as Error).message}`);
  const vocab = await ClipTokenizer.load({ vocabJson: dir, mergesTxt: path.join(MODEL, 'merges.txt') }).catch((e: unknown) => e);
  t.ok(vocab instanceof ClipError && vocab.code === 'E_VOCAB' && /directory/.test(vocab.message), `vocab.json: ${(vocab as Error).message}`);
});

test('size limits: a 2.2 GB gzip bomb vocabulary fails fast in bounded memory; oversized image, config and vocab.json are refused from their size', async (t) => {
  t.timeoutAfter(120_000);
  // 2.2 GB of zeros as 131 concatenated gzip members of 16 MiB each (gunzip reads them all as one stream)
  const member = gzipSync(Buffer.alloc(16 * 1024 * 1024), { level: 9 });
  const bomb = path.join(work, 'bomb', 'bpe_simple_vocab_16e6.txt.gz');
  mkdirSync(path.dirname(bomb));
  writeFileSync(bomb, Buffer.concat(Array.from({ length: 131 }, () => member)));
  const r = await attack(`await (await lib('tokenizer/index.js')).ClipTokenizer.load(${JSON.stringify(path.dirname(bomb))});`, { timeoutMs: 30_000, maxRssMB: 400 });
  expectRefused(t, `gzip bomb (${member.length * 131} bytes -> 2.2 GB)`, r, 'E_VOCAB', /inflates to more than \d+ bytes/, { ms: 30_000, rssMB: 400 });

  const big = path.join(work, 'sparse.png');
  writeFileSync(big, '');
  truncateSync(big, 3 * 2 ** 30); // sparse: 3 GiB that is never read
  const image = await attack(`${cfg} await (await lib('image/index.js')).preprocessImages([${JSON.stringify(big)}], preprocess);`, { timeoutMs: 15_000, maxRssMB: 400 });
  expectRefused(t, '3 GiB image file', image, 'E_INPUT_TOO_LARGE', /over the limit of \d+ bytes/, { ms: 15_000, rssMB: 400 });

  const config = modelCopy('big-config');
  truncateSync(path.join(config, 'open_clip_config.json'), 2 ** 30);
  const configErr = await readModelConfig(path.join(config, 'open_clip_config.json')).catch((e: unknown) => e);
  t.ok(configErr instanceof ClipError && configErr.code === 'E_CONFIG' && /over the limit/.test(configErr.message), `1 GiB config: ${(configErr as Error).message}`);
  const vocab = modelCopy('big-vocab');
  truncateSync(path.join(vocab, 'vocab.json'), 2 ** 30);
  const vocabErr = await ClipTokenizer.load(vocab).catch((e: unknown) => e);
  t.ok(vocabErr instanceof ClipError && vocabErr.code === 'E_VOCAB' && /over the limit/.test(vocabErr.message), `1 GiB vocab.json: ${(vocabErr as Error).message}`);
});

test('extreme shapes: 1 x 30,000,000 and other aspect ratios over 200:1 are refused from the header, before decoding', async (t) => {
  t.timeoutAfter(60_000);
  const { preprocess } = await readModelConfig(path.join(MODEL, 'open_clip_config.json'));
  const thin = path.join(work, 'thin.png');
  writeFileSync(thin, grayPng(1, 30_000_000));
  for (const [what, input] of [
    ['1 x 30,000,000 PNG file', thin],
    ['30,000,000 x 1 PNG bytes', grayPng(30_000_000, 1)],
    ['2 x 20,000 PNG', grayPng(2, 20_000)],
    ['raw 1 x 201 pixels', { data: new Uint8Array(201), width: 1, height: 201, channels: 1 as const }],
  ] as const) {
    const started = Date.now();
    const err = await preprocessImages([input], preprocess).catch((e: unknown) => e);
    const ms = Date.now() - started;
    t.ok(err instanceof ClipError && err.code === 'E_INPUT_TOO_LARGE' && /aspect ratio of \d+:1, over the limit of 200:1/.test(err.message), `${what}: ${(err as Error).message}`);
    t.ok(ms < 3000, `${what}: refused in ${ms} ms`);
  }
  const ok = await preprocessImages([{ data: new Uint8Array(200), width: 200, height: 1, channels: 1 }, grayPng(3, 2), fixture('images', 'wide_900x120.jpg')], preprocess);
  t.equal(ok.length, 3 * 3 * preprocess.size ** 2, '200:1, 3x2 and 900x120 are still embedded');
  const wider = await preprocessImages([grayPng(2, 20_000)], preprocess, { maxAspectRatio: 20_000 });
  t.equal(wider.length, 3 * preprocess.size ** 2, 'maxAspectRatio raises the limit');
  const bad = await preprocessImages([grayPng(3, 2)], preprocess, { maxAspectRatio: 0.5 }).catch((e: unknown) => e);
  t.ok(bad instanceof ClipError && bad.code === 'E_INVALID_ARGUMENT' && /maxAspectRatio/.test(bad.message), 'maxAspectRatio < 1 is refused');
});

test('extreme shapes over HTTP: the 1 x 30,000,000 image answers 413 at once, and the server keeps serving', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await Clip.load(MODEL, { backend: 'native', threads: 1 });
  const { app, base } = await startServer(clip);
  try {
    const started = Date.now();
    const res = await request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(grayPng(1, 30_000_000)) });
    const ms = Date.now() - started;
    t.equal(res.status, 413, `413 (${JSON.stringify(res.body).slice(0, 200)})`);
    t.equal(res.body?.error?.code, 'E_INPUT_TOO_LARGE');
    t.ok(ms < 3000, `answered in ${ms} ms`);
    const fine = await request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(grayPng(3, 2)) });
    t.equal(fine.status, 200, 'a normal image afterwards: 200');
  } finally {
    await app.close();
    clip.dispose();
  }
});
