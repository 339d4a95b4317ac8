/** embed-shards: webdataset tar shards in, clip-retrieval's layout (float16 npy + Parquet) out. */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { ClipError } from '../lib/errors.js';
import { embedShard, embedShards, partitionNumbers, readPartitionInfo, readSamples, splitMemberName, toFloat16Bits } from '../lib/shards/index.js';
import { fixture, projectRoot } from './helpers/fixtures.js';
import { type ShardSample, cosine, readNpy, writeShard, writeTar } from './helpers/webdataset.js';

const clipPromise = Clip.load(fixture('models', 'xxlarge-tiny'), { backend: 'native', threads: 1 });
test.onFinish(async () => (await clipPromise).dispose());
const work = mkdtempSync(path.join(tmpdir(), 'shards-'));
test.onFinish(() => rmSync(work, { recursive: true, force: true }));

const PHOTOS = ['astronaut.png', 'camera.png', 'chelsea.png', 'china.jpg', 'coffee.png', 'gray.jpg', 'logo.png', 'palette.png', 'progressive.jpg', 'rocket.jpg', 'tiny_3x2.png', 'wide_900x120.jpg', 'exif_rot6.jpg'];

/** img2dataset-like samples: image + caption + json; `corrupt` keys get bytes that are no image. */
function samplesOf(names: readonly string[], first: number, corrupt: ReadonlySet<number> = new Set()): ShardSample[] {
  return names.map((name, i) => {
    const key = String(first + i).padStart(9, '0');
    const ext = name.endsWith('.png') ? 'png' : 'jpg';
    const image = corrupt.has(i) ? Buffer.from('definitely not an image') : readFileSync(fixture('images', name));
    const json = { key, url: `https://example.com/${name}`, status: 'success', width: 64 + i, score: i / 3, nsfw: i % 2 === 0, ...(i === 1 ? { extra: { a: [1, 2] } } : {}) };
    return { key, members: { [ext]: image, txt: `a photo called ${name.replace(/\..*$/, '')}`, json: JSON.stringify(json) } };
  });
}

test('webdataset member names: key up to the first dot of the basename', (t) => {
  t.deepEqual(splitMemberName('000001.jpg'), ['000001', 'jpg']);
  t.deepEqual(splitMemberName('a.b/c/000001.seg.png'), ['a.b/c/000001', 'seg.png'], 'dots in folders do not count');
  t.equal(splitMemberName('README'), undefined, 'no dot: not a sample member');
  t.equal(splitMemberName('dir/.hidden'), undefined);
  t.equal(splitMemberName('x.'), undefined);
  t.end();
});

test('float16: exact values, rounding to nearest even, subnormals, overflow', (t) => {
  t.equal(toFloat16Bits(1), 0x3c00);
  t.equal(toFloat16Bits(-2), 0xc000);
  t.equal(toFloat16Bits(65504), 0x7bff, 'largest finite');
  t.equal(toFloat16Bits(65520), 0x7c00, 'rounds up to infinity');
  t.equal(toFloat16Bits(0.1), 0x2e66);
  t.equal(toFloat16Bits(2 ** -24), 0x0001, 'smallest subnormal');
  t.equal(toFloat16Bits(2 ** -25), 0x0000, 'half of it is a tie: to even (0)');
  t.equal(toFloat16Bits(3 * 2 ** -25), 0x0002, '1.5 x smallest: tie to even (2)');
  t.equal(toFloat16Bits(1 + 2 ** -11), 0x3c00, 'tie between 1 and the next: to even');
  t.equal(toFloat16Bits(1 + 3 * 2 ** -11), 0x3c02, 'tie: to even (up)');
  t.equal(toFloat16Bits(Number.NaN) & 0x7c00, 0x7c00);
  t.end();
});

test('readSamples groups consecutive members by key and skips what webdataset skips', async (t) => {
  const file = path.join(work, 'grouping.tar');
  await writeTar(file, [
    { name: '__meta__', data: 'x' },
    { name: 'sub', data: '', type: 'directory' },
    { name: 'sub/a.jpg', data: 'A' },
    { name: 'sub/a.txt', data: 'caption a' },
    { name: 'NOTES', data: 'no dot' },
    { name: 'b.jpg', data: 'B' },
    { name: 'b.jpg', data: 'B again' },
    { name: 'sub/a.json', data: '{}' },
  ]);
  const samples = [];
  for await (const s of readSamples(file)) samples.push({ key: s.key, index: s.index, fields: [...s.fields.keys()], problem: s.problem?.code });
  t.deepEqual(samples, [
    { key: 'sub/a', index: 0, fields: ['jpg', 'txt'], problem: undefined },
    { key: 'b', index: 1, fields: ['jpg'], problem: 'E_INVALID_ARGUMENT' },
    { key: 'sub/a', index: 2, fields: ['json'], problem: undefined },
  ], 'a key that comes back later starts a new sample; a duplicate member marks its sample broken');

  const big = path.join(work, 'big.tar');
  await writeTar(big, [{ name: 'k.jpg', data: Buffer.alloc(5000) }, { name: 'k.txt', data: 'small' }, { name: 'm.txt', data: 'next' }]);
  const read = [];
  for await (const s of readSamples(big, { maxMemberBytes: 1000 })) read.push([s.key, [...s.fields.keys()], s.problem?.code]);
  t.deepEqual(read, [['k', ['txt'], 'E_INPUT_TOO_LARGE'], ['m', ['txt'], undefined]], 'an oversized member is not read; its sample is marked');
});

test('embed-shards: rows in sample order, each equal to Clip.embedImages / embedTexts, npy <f2, Parquet read back by DuckDB', async (t) => {
  t.timeoutAfter(120_000);
  const clip = await clipPromise;
  const dir = path.join(work, 'in');
  mkdirSync(dir, { recursive: true });
  const shard0 = samplesOf(PHOTOS.slice(0, 7), 0, new Set([3])); // china.jpg replaced by junk
  const shard1 = samplesOf(PHOTOS.slice(7), 7);
  delete shard1[2].members.txt; // no caption: skipped when text embeddings are on
  await writeShard(path.join(dir, '00000.tar'), shard0);
  await writeShard(path.join(dir, '00001.tar'), shard1);
  const out = path.join(work, 'out');
  const skippedSeen: string[] = [];
  const result = await embedShards(clip, { shards: [dir], out, batchSize: 3, onSkip: (s) => skippedSeen.push(s.key) });
  t.deepEqual(result.shards.map((s) => s.partition), [0, 1], 'partition N = the number in the shard name');
  t.equal(result.samples, 13);
  t.equal(result.embedded, 11);
  t.deepEqual(skippedSeen, ['000000003', '000000009']);
  t.equal(result.shards[0].skippedSamples[0].code, 'E_IMAGE_DECODE');
  t.equal(result.shards[1].skippedSamples[0].code, 'E_NOT_FOUND');

  const D = clip.embedDim;
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  try {
    for (const [N, samples] of [shard0, shard1].entries()) {
      const kept = samples.filter((s) => !result.shards[N].skippedSamples.some((k) => k.key === s.key));
      const img = readNpy(path.join(out, 'img_emb', `img_emb_${N}.npy`));
      const txt = readNpy(path.join(out, 'text_emb', `text_emb_${N}.npy`));
      t.equal(img.descr, '<f2', `img_emb_${N}.npy is float16`);
      t.equal(txt.descr, '<f2', `text_emb_${N}.npy is float16`);
      t.deepEqual(img.shape, [kept.length, D], 'img_emb shape');
      t.deepEqual(txt.shape, [kept.length, D], 'text_emb shape');

      const images = kept.map((s) => (s.members.jpg ?? s.members.png) as Buffer);
      const expectedImages = await clip.embedImages(images);
      const expectedTexts = await clip.embedTexts(kept.map((s) => s.members.txt as string));
      let worst = 1;
      let worstNorm = 0;
      for (let r = 0; r < kept.length; r++) {
        const row = img.values.subarray(r * D, (r + 1) * D);
        worst = Math.min(worst, cosine(row, expectedImages.row(r)), cosine(txt.values.subarray(r * D, (r + 1) * D), expectedTexts.row(r)));
        worstNorm = Math.max(worstNorm, Math.abs(Math.hypot(...row) - 1));
      }
      t.ok(worst >= 0.999, `partition ${N}: every row matches its sample (worst cosine ${worst.toFixed(6)})`);
      t.ok(worstNorm < 2e-3, `rows are L2-normalized (worst |norm - 1| ${worstNorm.toExponential(2)})`);

      const file = path.join(out, 'metadata', `metadata_${N}.parquet`);
      const reader = await connection.runAndReadAll(`SELECT image_path, caption, url, width, score, nsfw, status FROM read_parquet('${file}')`);
      const rows = reader.getRowObjectsJS();
      t.deepEqual(rows.map((r) => r.image_path), kept.map((s) => s.key), `metadata_${N}: image_path = sample keys in order (DuckDB)`);
      t.deepEqual(rows.map((r) => r.caption), kept.map((s) => s.members.txt), 'captions');
      const json = kept.map((s) => JSON.parse(s.members.json as string) as Record<string, unknown>);
      t.deepEqual(rows.map((r) => r.url), json.map((j) => j.url), 'json string field');
      t.deepEqual(rows.map((r) => Number(r.width)), json.map((j) => j.width), 'json integer field');
      t.deepEqual(rows.map((r) => r.score), json.map((j) => j.score), 'json float field');
      t.deepEqual(rows.map((r) => r.nsfw), json.map((j) => j.nsfw), 'json boolean field');
      const types = (await connection.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${file}'))`)).getRowObjectsJS();
      t.deepEqual(Object.fromEntries(types.map((r) => [r.column_name, r.column_type])), {
        image_path: 'VARCHAR', caption: 'VARCHAR', key: 'VARCHAR', url: 'VARCHAR', status: 'VARCHAR', width: 'BIGINT', score: 'DOUBLE', nsfw: 'BOOLEAN', extra: 'JSON',
      }, 'column types follow the json values');

      const info = await readPartitionInfo(file);
      t.equal(info.skipped, samples.length - kept.length, 'skipped samples counted in the Parquet footer');
      t.equal(info.samples, samples.length);
      const objects = await parquetReadObjects({ file: await asyncBufferFromFile(file), columns: ['image_path'] });
      t.equal(objects.length, kept.length, 'hyparquet reads the same row count');
    }
  } finally {
    connection.closeSync();
    db.closeSync();
  }
  t.notOk(existsSync(path.join(out, '.partial')), 'no staging files left');

  const before = readFileSync(path.join(out, 'img_emb', 'img_emb_0.npy'));
  const again = await embedShards(clip, { shards: [dir], out, batchSize: 3 });
  t.ok(again.shards.every((s) => s.existing), 'a second run finds both partitions complete');
  t.equal(again.embedded, 11, 'and reports their counts');
  t.ok(before.equals(readFileSync(path.join(out, 'img_emb', 'img_emb_0.npy'))), 'untouched');
  const redo = await embedShard(clip, path.join(dir, '00000.tar'), 0, path.join(work, 'out-b7'), { batchSize: 7 });
  t.equal(redo.embedded, 6, 'another batch size: same rows');
});

test('embed-shards: a damaged tar fails with E_IO and leaves no partition; an abort leaves none either', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await clipPromise;
  const file = path.join(work, '00007.tar');
  await writeShard(file, samplesOf(PHOTOS.slice(0, 4), 0));
  const size = readFileSync(file).length;
  truncateSync(file, size - 3000);
  const out = path.join(work, 'broken-out');
  const err = await embedShard(clip, file, 7, out, { batchSize: 2 }).catch((e: unknown) => e);
  t.ok(err instanceof ClipError && err.code === 'E_IO', `typed error: ${(err as Error).message}`);
  t.notOk(existsSync(path.join(out, 'metadata', 'metadata_7.parquet')), 'no metadata');
  t.notOk(existsSync(path.join(out, 'img_emb', 'img_emb_7.npy')), 'no embeddings');
  t.notOk(existsSync(path.join(out, '.partial')), 'staging removed');

  writeFileSync(file, 'not a tar at all, just text');
  const junk = await embedShard(clip, file, 7, out).catch((e: unknown) => e);
  t.ok(junk instanceof ClipError && junk.code === 'E_IO', 'a file that is no tar: E_IO');
  const missing = await embedShard(clip, path.join(work, 'nope.tar'), 7, out).catch((e: unknown) => e);
  t.ok(missing instanceof ClipError && missing.code === 'E_NOT_FOUND', 'a missing shard: E_NOT_FOUND');

  await writeShard(file, samplesOf(PHOTOS.slice(0, 6), 0));
  const controller = new AbortController();
  const aborted = await embedShard(clip, file, 7, out, { batchSize: 2, signal: controller.signal, onBatch: () => controller.abort(new Error('stop')) }).catch((e: Error) => e);
  t.equal((aborted as Error).message, 'stop');
  t.notOk(existsSync(path.join(out, 'metadata', 'metadata_7.parquet')), 'an aborted shard commits nothing');
  t.notOk(existsSync(path.join(out, '.partial')), 'staging removed');
});

test('partition numbers: from img2dataset names when they are all numeric and distinct, else positions', (t) => {
  t.deepEqual(partitionNumbers(['/d/00003.tar', '/d/00010.tar']), [3, 10]);
  t.deepEqual(partitionNumbers(['/d/00003.tar', '/e/00003.tar']), [0, 1], 'duplicates: positions');
  t.deepEqual(partitionNumbers(['/d/a.tar', '/d/00001.tar']), [0, 1], 'a non-numeric name: positions');
  t.end();
});

test('embed-shards keeps the event loop free while it embeds (what lets a queue worker renew its lock)', async (t) => {
  t.timeoutAfter(120_000);
  // the 256 px model: one batch of 32 takes long enough that a forward pass on the event loop would show
  const clip = await Clip.load(fixture('models', 'xxlarge-deep256'), { backend: 'native', threads: 1 });
  try {
    const file = path.join(work, '00020.tar');
    await writeShard(file, samplesOf([...PHOTOS, ...PHOTOS, ...PHOTOS].slice(0, 32), 0));
    const S = clip.preprocess.size;
    const started = performance.now();
    // one batch of all 32 samples: the shard's own synchronous work (tar parsing, npy and Parquet writing) stays
    // the same while the forward pass it is compared with doubles, so the bound does not ride on timing noise
    await clip.embedImages({ data: new Float32Array(32 * 3 * S * S).fill(0.5), n: 32 }, { batchSize: 32 });
    const forwardMs = performance.now() - started;
    const histogram = monitorEventLoopDelay({ resolution: 5 });
    histogram.enable();
    const result = await embedShard(clip, file, 20, path.join(work, 'loop-out'), { batchSize: 32 });
    histogram.disable();
    const maxMs = histogram.max / 1e6;
    t.equal(result.embedded, 32);
    t.ok(maxMs < forwardMs / 2, `longest event-loop stall ${maxMs.toFixed(0)} ms; one forward pass of the batch takes ${forwardMs.toFixed(0)} ms`);
  } finally {
    clip.dispose();
  }
});

test('convnext-clip embed-shards: --shard i/n takes every n-th shard of the list; a rerun skips finished partitions', async (t) => {
  t.timeoutAfter(120_000);
  const dir = path.join(work, 'cli-in');
  mkdirSync(dir, { recursive: true });
  for (let s = 0; s < 3; s++) await writeShard(path.join(dir, `0000${s}.tar`), samplesOf(PHOTOS.slice(s * 2, s * 2 + 2), s * 10));
  const out = path.join(work, 'cli-out');
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'lib', 'bin.ts'), 'embed-shards', dir, '--out', out, '--model', fixture('models', 'xxlarge-tiny'), '--backend', 'native', '--threads', '1', ...args], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'pipe'] });
      const kill = setTimeout(() => child.kill('SIGKILL'), 100_000);
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c));
      child.once('exit', (code) => {
        clearTimeout(kill);
        resolve({ code, stderr });
      });
    });
  const first = await run(['--shard', '1/2']);
  t.equal(first.code, 0, first.stderr.trim().split('\n').pop());
  t.deepEqual(readdirSync(path.join(out, 'metadata')), ['metadata_1.parquet'], 'shard 1/2 of three: the second shard only');
  const all = await run([]);
  t.equal(all.code, 0);
  t.match(all.stderr, /00001\.tar -> partition 1: already complete/, 'the finished partition is skipped');
  t.deepEqual(readdirSync(path.join(out, 'metadata')).sort(), ['metadata_0.parquet', 'metadata_1.parquet', 'metadata_2.parquet']);
  const bad = await run(['--shard', '2/2']);
  t.equal(bad.code, 2, 'a bad --shard exits 2');
  t.match(bad.stderr, /E_INVALID_ARGUMENT/);
});

test('embed-shards: skipped samples are all counted but only the first 1000 listed; text: false writes no text_emb', async (t) => {
  t.timeoutAfter(120_000);
  const clip = await clipPromise;
  const file = path.join(work, '00030.tar');
  await writeTar(file, Array.from({ length: 1005 }, (_, i) => ({ name: `k${i}.txt`, data: 'a caption, no image' })));
  const out = path.join(work, 'many-skips');
  const result = await embedShard(clip, file, 30, out);
  t.equal(result.skipped, 1005, 'all counted');
  t.equal(result.skippedSamples.length, 1000, 'the first 1000 listed');
  const info = await readPartitionInfo(path.join(out, 'metadata', 'metadata_30.parquet'));
  t.deepEqual([info.samples, info.embedded, info.skipped, info.skipped_samples.length], [1005, 0, 1005, 1000], 'the same in the footer');
  t.deepEqual(readNpy(path.join(out, 'img_emb', 'img_emb_30.npy')).shape, [0, clip.embedDim], 'an empty partition is still a valid [0, D] array');

  const noCaption = path.join(work, '00031.tar');
  await writeShard(noCaption, [{ key: 'a', members: { png: readFileSync(fixture('images', 'coffee.png')) } }]);
  const imagesOnly = await embedShard(clip, noCaption, 31, out, { text: false });
  t.equal(imagesOnly.embedded, 1, 'with text off, a sample without a caption is embedded');
  t.notOk(existsSync(path.join(out, 'text_emb', 'text_emb_31.npy')), 'and no text_emb file is written');
  const again = await embedShard(clip, noCaption, 31, out, { text: false });
  t.ok(again.existing, 'an image-only partition is complete without text_emb');
});
