/** embed-dir: interrupted + resumed runs give the bytes of one uninterrupted run; bad files are skipped. */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'tape';
import { type EmbedDirOptions, embedDir, listImages, parseShard, selectShard } from '../lib/bulk/index.js';
import { Clip } from '../lib/clip.js';
import { ClipError } from '../lib/errors.js';
import { fixture, projectRoot } from './helpers/fixtures.js';

const MODEL = fixture('models', 'xxlarge-tiny');
const clipPromise = Clip.load(MODEL, { backend: 'native', threads: 1 });
test.onFinish(async () => (await clipPromise).dispose());

const work = mkdtempSync(path.join(tmpdir(), 'embed-dir-'));
test.onFinish(() => rmSync(work, { recursive: true, force: true }));

/** 13 images in nested folders, one broken JPEG, one text file, one upper-case extension. */
function makeFolder(): string {
  const dir = path.join(work, 'images');
  if (existsSync(dir)) return dir;
  const photos = ['astronaut.png', 'camera.png', 'chelsea.png', 'china.jpg', 'coffee.png', 'gray.jpg', 'logo.png', 'palette.png', 'progressive.jpg', 'rocket.jpg', 'tiny_3x2.png', 'wide_900x120.jpg'];
  photos.forEach((name, i) => {
    const sub = path.join(dir, i % 3 === 0 ? '' : `set${i % 3}`, i % 4 === 0 ? 'deep' : '');
    mkdirSync(sub, { recursive: true });
    copyFileSync(fixture('images', name), path.join(sub, name));
  });
  copyFileSync(fixture('images', 'exif_rot6.jpg'), path.join(dir, 'set1', 'UPPER.JPG'));
  writeFileSync(path.join(dir, 'set2', 'broken.jpg'), 'this is not a jpeg');
  writeFileSync(path.join(dir, 'notes.txt'), 'not an image');
  return dir;
}

function outputs(out: string): { data: Buffer; index: string } {
  return { data: readFileSync(out), index: readFileSync(out.replace(/\.(npy|jsonl)$/, '.index.json'), 'utf8') };
}

test('embed-dir: sorted recursive listing by extension, shards by index modulo n', async (t) => {
  const files = await listImages(makeFolder());
  t.equal(files.length, 14, '12 photos + UPPER.JPG + broken.jpg; notes.txt left out');
  t.deepEqual(files, [...files].sort(), 'sorted');
  t.ok(files.includes('set1/UPPER.JPG') && files.some((f) => f.startsWith('set1/deep/')), 'nested, case-insensitive extension');
  const shards = [0, 1, 2].map((i) => selectShard(files, parseShard(`${i}/3`)));
  t.deepEqual(
    shards.flat().map((e) => e.index).sort((a, b) => a - b),
    files.map((_, i) => i),
    'three shards cover every file once',
  );
  t.ok(shards[1].every((e) => e.index % 3 === 1), 'shard 1/3 takes index % 3 == 1');
  t.throws(() => parseShard('3/3'), /i\/n/);
  t.throws(() => parseShard('x'), /i\/n/);
});

for (const format of ['npy', 'jsonl'] as const) {
  test(`embed-dir (${format}): aborted after two batches and resumed equals one uninterrupted run, byte for byte`, async (t) => {
    const clip = await clipPromise;
    const folder = makeFolder();
    const base: EmbedDirOptions = { folder, out: '', batchSize: 3, model: MODEL };
    const fullOut = path.join(work, `full.${format}`);
    const skipped: string[] = [];
    const full = await embedDir(clip, { ...base, out: fullOut, onSkip: (it) => skipped.push(it.path) });
    t.equal(full.total, 14);
    t.equal(full.embedded, 13);
    t.deepEqual(skipped, ['set2/broken.jpg'], 'the broken file is reported');
    t.equal(full.failed[0].code, 'E_IMAGE_DECODE');
    t.notOk(existsSync(`${fullOut}.journal`), 'journal removed when done');

    const out = path.join(work, `resumed.${format}`);
    const controller = new AbortController();
    let batches = 0;
    const interrupted = await embedDir(clip, {
      ...base,
      out,
      signal: controller.signal,
      onProgress: () => {
        if (++batches === 3) controller.abort(new Error('stop here')); // the initial call + two batches
      },
    }).catch((err: Error) => err);
    t.equal((interrupted as Error).message, 'stop here', 'the run stopped');
    t.notOk(existsSync(out), 'no output yet');
    const journal = readFileSync(`${out}.journal`, 'utf8').trim().split('\n');
    t.equal(journal.length, 3, 'journal: header + two batches');

    const progress: number[] = [];
    const resumed = await embedDir(clip, { ...base, out, onProgress: (p) => progress.push(p.done) });
    t.equal(resumed.resumedBatches, 2, 'two batches taken from the journal');
    t.equal(progress[0], 6, 'progress starts at the six files already done');
    t.equal(progress.at(-1), 14);
    t.ok(outputs(out).data.equals(outputs(fullOut).data), `${format} output identical`);
    t.equal(outputs(out).index, outputs(fullOut).index, 'index identical');

    const again = await embedDir(clip, { ...base, out, onProgress: () => t.fail('no work when already complete') });
    t.ok(again.complete && again.embedded === 13 && again.failed.length === 1, 'a finished run is not redone');

    const index = JSON.parse(outputs(out).index);
    t.equal(index.files.length, 14);
    t.equal(index.embedded, 13);
    const broken = index.files.find((f: { path: string }) => f.path === 'set2/broken.jpg');
    t.equal(broken.row, null, 'the broken file is listed as failed');
    t.match(broken.error, /cannot decode/);
    if (format === 'npy') {
      const data = outputs(out).data;
      const headerLength = data.readUInt16LE(8);
      t.match(data.subarray(10, 10 + headerLength).toString('latin1'), /'descr': '<f4', 'fortran_order': False, 'shape': \(13, 32\)/, 'npy header');
      const rows = new Float32Array(data.buffer.slice(data.byteOffset + 10 + headerLength, data.byteOffset + data.length));
      const first = index.files.find((f: { row: number | null }) => f.row === 4);
      const want = await clip.embedImages(path.join(folder, first.path));
      let diff = 0;
      for (let k = 0; k < 32; k++) diff = Math.max(diff, Math.abs(rows[4 * 32 + k] - want.data[k]));
      t.ok(diff <= 1e-5, `row 4 (${first.path}) is its embedding: max diff ${diff.toExponential(1)}`);
    } else {
      const lines = outputs(out).data.toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
      t.equal(lines.length, 13);
      t.deepEqual(
        lines.map((l) => l.path),
        index.files.filter((f: { row: number | null }) => f.row !== null).map((f: { path: string }) => f.path),
        'jsonl rows in index order',
      );
    }
  });
}

test('embed-dir: a journal of another run is refused unless restart', async (t) => {
  const clip = await clipPromise;
  const out = path.join(work, 'other.npy');
  const controller = new AbortController();
  controller.abort(new Error('before any batch'));
  await embedDir(clip, { folder: makeFolder(), model: MODEL, out, batchSize: 4, signal: controller.signal }).catch(() => undefined);
  t.ok(existsSync(`${out}.journal`), 'journal with a header only');
  const err = await embedDir(clip, { folder: makeFolder(), model: MODEL, out, batchSize: 5 }).catch((e: unknown) => e);
  t.ok(err instanceof ClipError && err.code === 'E_INVALID_ARGUMENT' && /different run/.test(err.message), 'other batch size: refused');
  const done = await embedDir(clip, { folder: makeFolder(), model: MODEL, out, batchSize: 5, restart: true });
  t.equal(done.embedded, 13, '--restart starts over');
});

function cli(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'test', 'server-cli-entry.ts'), ...args], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
}

function finished(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stderr })));
}

test('embed-dir CLI: killed (SIGKILL) after its first batches, torn journal line, resumed: identical bytes', async (t) => {
  const folder = makeFolder();
  const args = (out: string) => ['embed-dir', folder, '--model', fixture('models', 'xxlarge-deep256'), '--backend', 'native', '--threads', '1', '--batch', '2', '--out', out];
  const fullOut = path.join(work, 'cli-full.npy');
  const full = await finished(cli(args(fullOut)));
  t.equal(full.code, 0, full.stderr);
  t.match(full.stderr, /skipped set2\/broken\.jpg: .*\[E_IMAGE_DECODE\]/, 'unreadable file reported on stderr');
  t.match(full.stderr, /embedded 13 of 14 images/, 'summary');

  const out = path.join(work, 'cli-killed.npy');
  const child = cli(args(out));
  const exited = finished(child);
  let batches = 0;
  while (batches < 2 && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 5));
    batches = existsSync(`${out}.journal`) ? readFileSync(`${out}.journal`, 'utf8').split('\n').length - 2 : 0;
  }
  child.kill('SIGKILL');
  const killed = await exited;
  t.equal(killed.signal, 'SIGKILL', `killed after ${batches} batches`);
  t.notOk(existsSync(out), 'no output after the kill');
  await appendFile(`${out}.journal`, '{"type":"batch","batch":99,"items":[{"ind'); // a write torn by the kill

  const resumed = await finished(cli(args(out)));
  t.equal(resumed.code, 0, resumed.stderr);
  t.match(resumed.stderr, /resumed from the journal/);
  t.ok(readFileSync(out).equals(readFileSync(fullOut)), '.npy identical to the uninterrupted run');
  t.equal(readFileSync(out.replace('.npy', '.index.json'), 'utf8'), readFileSync(fullOut.replace('.npy', '.index.json'), 'utf8'), 'index identical');
});
