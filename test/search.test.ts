/**
 * Collections on a real LanceDB on disk: search by a fixture image returns it first; results equal a brute-force
 * top-K over the stored embeddings; reindexing after add / touch / change / delete changes only those rows;
 * kill -9 during `convnext-clip index`, rerun: the table equals an uninterrupted run's; another model or
 * precision is refused; without LanceDB, search fails with the install command and embedding still works.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { isClipError } from '../lib/errors.js';
import { Collection } from '../lib/search/collection.js';
import { loadLance } from '../lib/search/lance.js';
import { type Hit, type ImageRow, Store } from '../lib/search/store.js';
import { fixture, projectRoot } from './helpers/fixtures.js';

const MODEL = fixture('models', 'xxlarge-tiny');
const clipPromise = Clip.load(MODEL, { backend: 'native', threads: 1 });
const IMAGES = readdirSync(fixture('images')).sort();
const tmp = mkdtempSync(path.join(tmpdir(), 'clip-search-'));

test.onFinish(async () => {
  (await clipPromise).dispose();
  rmSync(tmp, { recursive: true, force: true });
});

function copyFixtures(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const name of IMAGES) copyFileSync(fixture('images', name), path.join(dir, name));
  return dir;
}

function fresh(name: string): string {
  const dir = path.join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

function bruteForce(rows: ImageRow[], query: Float32Array, top: number): { id: string; score: number }[] {
  return rows
    .map((r) => {
      let s = 0;
      for (let i = 0; i < query.length; i++) s += r.vector[i] * query[i];
      return { id: r.id, score: s };
    })
    .sort((a, b) => b.score - a.score)
    .slice(0, top);
}

const byId = (rows: ImageRow[]) => new Map(rows.map((r) => [r.id, r]));

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return a.length === b.length ? d : Infinity;
}

test('search: index the fixture images; each finds itself first; equal to brute-force top-K', { timeout: 120_000 }, async (t) => {
  const clip = await clipPromise;
  const photos = copyFixtures(fresh('photos'));
  const collection = await Collection.open(fresh('db'), clip, { model: 'xxlarge-tiny' });
  try {
    const result = await collection.index([photos], { batchSize: 4 });
    t.equal(result.added, IMAGES.length, `${result.added} images added`);
    t.equal(await collection.count(), IMAGES.length, 'one row per image');
    const rows = await collection.store.all();
    t.ok(rows.every((r) => Math.abs(Math.hypot(...r.vector) - 1) < 1e-5), 'stored embeddings are unit length');
    t.ok(rows.every((r) => /^[0-9a-f]{64}$/.test(r.hash) && r.size > 0 && r.mtimeMs > 0 && r.root === photos), 'hash, size, mtime, root per row');

    const hits = await collection.search({ image: path.join(photos, 'chelsea.png') }, { top: 3 });
    t.equal(path.basename(hits[0].path), 'chelsea.png', 'search by chelsea.png returns it first');
    t.ok(hits[0].score > 0.9999, `with cosine ${hits[0].score.toFixed(6)}`);
    t.equal(path.basename((await collection.search({ image: fixture('images', 'astronaut.png') }, { top: 1 }))[0].path), 'astronaut.png', 'astronaut.png too');

    for (const query of ['a photo of a cat.', { image: fixture('images', 'coffee.png') }] as const) {
      const vector = await collection.embedQuery(query);
      for (const top of [1, 5, IMAGES.length]) {
        const got: Hit[] = await collection.search({ vector }, { top });
        const want = bruteForce(rows, vector, top);
        t.deepEqual(got.map((h) => h.id), want.map((w) => w.id), `${typeof query === 'string' ? 'text' : 'image'} query, top ${top}: same ids in the same order as brute force`);
        t.ok(got.every((h, i) => Math.abs(h.score - want[i].score) < 1e-5), 'same scores');
      }
    }
    const exact = await collection.search('a photo of a cat.', { top: 5, exact: true });
    t.equal(exact.length, 5, 'exact: true works without an index');
  } finally {
    collection.close();
  }
});

test('search: add, touch, change and delete files; rerun changes only those rows', { timeout: 120_000 }, async (t) => {
  const clip = await clipPromise;
  const photos = copyFixtures(fresh('photos2'));
  const collection = await Collection.open(fresh('db2'), clip);
  try {
    await collection.index([photos], { batchSize: 5 });
    const before = byId(await collection.store.all());
    const again = await collection.index([photos]);
    t.deepEqual([again.added, again.updated, again.removed, again.unchanged], [0, 0, 0, IMAGES.length], 'a rerun with nothing changed skips every file');

    copyFileSync(fixture('images', 'chelsea.png'), path.join(photos, 'added-cat.png')); // new path, known content
    await sharp(fixture('images', 'astronaut.png')).resize(40, 40).png().toFile(path.join(photos, 'added-new.png'));
    const future = new Date(Date.now() + 60_000);
    utimesSync(path.join(photos, 'coffee.png'), future, future); // touched: same bytes
    await sharp(fixture('images', 'rocket.jpg')).flop().jpeg().toFile(path.join(photos, 'china.jpg.tmp'));
    copyFileSync(path.join(photos, 'china.jpg.tmp'), path.join(photos, 'china.jpg')); // changed content
    unlinkSync(path.join(photos, 'china.jpg.tmp'));
    unlinkSync(path.join(photos, 'logo.png')); // deleted

    const r = await collection.index([photos], { batchSize: 5 });
    t.deepEqual({ added: r.added, updated: r.updated, removed: r.removed, unchanged: r.unchanged }, { added: 2, updated: 2, removed: 1, unchanged: IMAGES.length - 3 }, 'counts: 2 added, 2 updated (touched, changed), 1 removed');
    const after = byId(await collection.store.all());
    const name = (id: string) => path.basename((after.get(id) ?? before.get(id))!.path);
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter((id) => {
      const a = before.get(id);
      const b = after.get(id);
      return !a || !b || a.mtimeMs !== b.mtimeMs || a.size !== b.size || a.hash !== b.hash || maxDiff(a.vector, b.vector) !== 0;
    });
    t.deepEqual(changed.map(name).sort(), ['added-cat.png', 'added-new.png', 'china.jpg', 'coffee.png', 'logo.png'], 'only those five rows differ');
    const coffee = [...after.values()].find((x) => x.path.endsWith('coffee.png'))!;
    t.ok(Math.abs(coffee.mtimeMs - future.getTime()) < 1, 'the touched file has its new mtime');
    t.equal(maxDiff(coffee.vector, before.get(coffee.id)!.vector), 0, 'and its embedding kept (same content hash)');
    const cat = [...after.values()].find((x) => x.path.endsWith('added-cat.png'))!;
    const chelsea = [...after.values()].find((x) => x.path.endsWith('chelsea.png'))!;
    t.equal(maxDiff(cat.vector, chelsea.vector), 0, 'a copy of a known file reuses its embedding');
    const china = [...after.values()].find((x) => x.path.endsWith('china.jpg'))!;
    t.ok(maxDiff(china.vector, before.get(china.id)!.vector) > 1e-3, 'the changed file was embedded again');
    const want = (await clip.embedImages([path.join(photos, 'china.jpg')])).row(0);
    t.ok(maxDiff(china.vector, want) < 1e-5, 'with its new content');
  } finally {
    collection.close();
  }
});

test('search: a collection made with another model or precision is refused', { timeout: 120_000 }, async (t) => {
  const clip = await clipPromise;
  const dir = fresh('db3');
  const photos = copyFixtures(fresh('photos3'));
  const c = await Collection.open(dir, clip, { model: 'xxlarge-tiny' });
  await c.index([photos]);
  c.close();
  const others: [string, Promise<Clip>][] = [
    ['another model (same architecture, other weights)', Clip.load(fixture('models', 'xxlarge-deep256'), { backend: 'native', threads: 1 })],
    ['another dim', Clip.load(fixture('models', 'large-d-tiny'), { backend: 'native', threads: 1 })],
    ['another precision', Clip.load(MODEL, { backend: 'native', threads: 1, precision: 'bf16' })],
  ];
  for (const [label, loading] of others) {
    const other = await loading;
    try {
      await Collection.open(dir, other);
      t.fail(`${label}: should be refused`);
    } catch (err) {
      t.ok(isClipError(err, 'E_CONFIG') && /indexed with xxlarge-tiny \(fp32/.test((err as Error).message), `${label}: E_CONFIG: ${(err as Error).message.slice(0, 140)}`);
    } finally {
      other.dispose();
    }
  }
  const reopened = await Collection.open(dir, clip, { mustExist: true });
  t.equal(await reopened.count(), IMAGES.length, 'the same model opens it');
  reopened.close();
  try {
    await Collection.open(fresh('missing-db'), clip, { mustExist: true });
    t.fail('mustExist should refuse a missing collection');
  } catch (err) {
    t.ok(isClipError(err, 'E_NOT_FOUND'), 'mustExist: E_NOT_FOUND for a directory without a collection');
  }
});

/** A copy of the fixture model whose image tower differs: the stem's bias shifted by ±0.5 by channel (the text tower untouched). */
function imageTowerSwapped(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const name of ['open_clip_config.json', 'vocab.json', 'merges.txt']) copyFileSync(path.join(MODEL, name), path.join(dir, name));
  const bytes = Buffer.from(readFileSync(path.join(MODEL, 'open_clip_model.safetensors')));
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const [begin, end] = header['visual.trunk.stem.0.bias'].data_offsets as [number, number];
  const at = 8 + headerLength;
  for (let o = at + begin, c = 0; o < at + end; o += 4, c++) bytes.writeFloatLE(bytes.readFloatLE(o) + (c % 2 ? 0.5 : -0.5), o);
  writeFileSync(path.join(dir, 'open_clip_model.safetensors'), bytes);
  return dir;
}

test('search: a collection is refused for weights whose image tower differs (model key by SHA-256); the same weights elsewhere open it', { timeout: 120_000 }, async (t) => {
  const clip = await clipPromise;
  const dir = fresh('db-key');
  const photos = copyFixtures(fresh('photos-key'));
  const c = await Collection.open(dir, clip, { model: 'xxlarge-tiny', weights: MODEL });
  await c.index([photos]);
  c.close();
  const stored = await Store.readIdentity(dir);
  t.ok(stored.key && /^[0-9a-f]{64}$/.test(String(stored.key.weights)) && stored.key.precision === 'fp32' && typeof stored.key.library === 'string', 'the model key is recorded (weights SHA-256, precision, library)');

  const swappedDir = imageTowerSwapped(fresh('model-swapped'));
  const swapped = await Clip.load(swappedDir, { backend: 'native', threads: 1 });
  try {
    const image = fixture('images', 'chelsea.png');
    const drift = maxDiff((await swapped.embedImages([image])).row(0), (await clip.embedImages([image])).row(0));
    const probeDrift = maxDiff((await swapped.embedTexts(['a photo of a red bicycle in the snow'])).row(0), (await clip.embedTexts(['a photo of a red bicycle in the snow'])).row(0));
    t.ok(drift > 1e-3 && probeDrift === 0, `the copy embeds images differently (max diff ${drift.toExponential(2)}), texts identically (${probeDrift})`);
    try {
      await Collection.open(dir, swapped, { weights: swappedDir, mustExist: true });
      t.fail('weights with another image tower should be refused');
    } catch (err) {
      t.ok(isClipError(err, 'E_CONFIG') && /differs in weights \(SHA-256\)/.test((err as Error).message), `E_CONFIG: ${(err as Error).message.slice(0, 160)}`);
    }
  } finally {
    swapped.dispose();
  }
  // The same bytes under another path (a copy; a relative spelling) are the same model.
  const copy = fresh('model-copy');
  mkdirSync(copy, { recursive: true });
  for (const name of readdirSync(MODEL)) copyFileSync(path.join(MODEL, name), path.join(copy, name));
  for (const weights of [copy, `${path.relative(process.cwd(), MODEL)}/`]) {
    const same = await Collection.open(dir, clip, { weights, mustExist: true });
    t.equal(await same.count(), IMAGES.length, `the same weights at ${weights}: opened`);
    same.close();
  }
});

function runCli(args: string[], env: NodeJS.ProcessEnv = {}, extraNodeArgs: string[] = []) {
  const child = spawn(process.execPath, [...extraNodeArgs, '--import', 'tsx', path.join(projectRoot, 'lib/bin.ts'), ...args], { cwd: projectRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { child, done };
}

async function variants(dir: string, n: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const photos = IMAGES.filter((f) => !f.startsWith('tiny'));
  for (let i = 0; i < n; i++) {
    const src = fixture('images', photos[i % photos.length]);
    const size = 48 + (i % 17);
    await sharp(src).resize(size, size).rotate(90 * (Math.floor(i / photos.length) % 4)).png().toFile(path.join(dir, `v${String(i).padStart(3, '0')}.png`));
  }
}

test('search: kill -9 during `convnext-clip index`, rerun: the table equals an uninterrupted run', { timeout: 300_000 }, async (t) => {
  const clip = await clipPromise;
  const photos = fresh('many');
  await variants(photos, 160);
  const killedDb = fresh('killed-db');
  const args = ['index', photos, '--db', killedDb, '--model', MODEL, '--backend', 'native', '--threads', '1', '--batch', '2'];
  const { child, done } = runCli(args);
  const { lancedb } = await loadLance();
  let seen = 0;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && child.exitCode === null) {
    try {
      const db = await lancedb.connect(killedDb);
      if ((await db.tableNames()).includes('images')) seen = await (await db.openTable('images')).countRows();
      db.close();
    } catch {
      /* not created yet */
    }
    if (seen >= 20) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  const killed = await done;
  t.equal(killed.signal, 'SIGKILL', `killed with SIGKILL after at least ${seen} rows were committed`);

  const resumed = await Collection.open(killedDb, clip);
  const before = await resumed.count();
  t.ok(before > 0 && before < 160, `the killed run left ${before} of 160 rows`);
  const rest = await resumed.index([photos], { batchSize: 7 });
  t.equal(rest.unchanged, before, 'the rerun skips the rows already written');
  t.equal(rest.added, 160 - before, 'and adds the rest');
  const got = byId(await resumed.store.all());
  resumed.close();

  const clean = await Collection.open(fresh('clean-db'), clip);
  await clean.index([photos], { batchSize: 16 });
  const want = byId(await clean.store.all());
  clean.close();
  t.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), 'the same ids');
  let worst = 0;
  let metaSame = true;
  for (const [id, w] of want) {
    const g = got.get(id)!;
    metaSame &&= g.path === w.path && g.size === w.size && g.mtimeMs === w.mtimeMs && g.hash === w.hash && g.root === w.root;
    worst = Math.max(worst, maxDiff(g.vector, w.vector));
  }
  t.ok(metaSame, 'the same path, root, size, mtime and hash per row');
  t.ok(worst <= 1e-5, `the same embeddings (max |diff| ${worst.toExponential(2)}; batches differ between the runs)`);

  const small = await Collection.open(killedDb, clip);
  await small.index([photos], { annThreshold: 100 });
  t.notOk(await small.store.hasVectorIndex(), 'annThreshold below the 256 rows IVF-PQ needs: no index, no error');
  small.close();
});

test('search: an IVF-PQ index (ANN) finds the same rows; exact: true bypasses it', { timeout: 300_000 }, async (t) => {
  const D = 32;
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  const unit = () => {
    const v = Float32Array.from({ length: D }, random);
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  const store = await Store.open(fresh('ann-db'), { model: 'synthetic', precision: 'fp32', dim: D, probe: unit() });
  try {
    const rows: ImageRow[] = Array.from({ length: 600 }, (_, i) => ({ id: i.toString(16).padStart(16, '0'), path: `/p/${i}.png`, root: '/p', size: 1, mtimeMs: 1, hash: 'h', vector: unit() }));
    await store.upsert(rows);
    await store.createVectorIndex();
    t.ok(await store.hasVectorIndex(), 'the index exists');
    let hits10 = 0;
    let exactSame = true;
    for (let q = 0; q < 20; q++) {
      const query = rows[q * 7].vector;
      const want = bruteForce(rows, query, 10).map((w) => w.id);
      const ann = await store.search(query, { top: 10 });
      t.equal(ann[0].id, rows[q * 7].id, `query ${q}: ANN finds the row itself first`);
      hits10 += ann.filter((h) => want.includes(h.id)).length;
      exactSame &&= JSON.stringify((await store.search(query, { top: 10, exact: true })).map((h) => h.id)) === JSON.stringify(want);
    }
    t.ok(exactSame, 'exact: true equals brute force with the index present');
    t.ok(hits10 / 200 >= 0.8, `ANN recall@10 ${(hits10 / 200).toFixed(3)} on 600 random 32-dim vectors`);
  } finally {
    store.close();
  }
});

test('search: the index and search commands', { timeout: 180_000 }, async (t) => {
  const photos = copyFixtures(fresh('cli-photos'));
  const db = fresh('cli-db');
  const index = await runCli(['index', photos, '--db', db, '--model', MODEL, '--backend', 'native', '--threads', '1', '--json']).done;
  t.equal(index.code, 0, 'index exits 0');
  const counts = JSON.parse(index.stdout);
  t.deepEqual([counts.added, counts.rows, counts.interrupted], [IMAGES.length, IMAGES.length, false], `index --json: ${IMAGES.length} added`);
  t.ok(/13 added, 0 updated, 0 unchanged, 0 removed, 0 failed/.test(index.stderr), 'a summary line on stderr');
  const byImage = await runCli(['search', '--image', fixture('images', 'chelsea.png'), '--db', db, '--top', '3', '--json', '--backend', 'native']).done;
  t.equal(byImage.code, 0, 'search --image exits 0 (the model comes from the collection)');
  const hits = JSON.parse(byImage.stdout) as { path: string; score: number }[];
  t.ok(hits.length === 3 && path.basename(hits[0].path) === 'chelsea.png' && hits[0].score > 0.9999, `search --image --json: chelsea.png first (${hits[0]?.score})`);
  const byText = await runCli(['search', 'a photo of a cat', '--db', db, '--top', '2', '--backend', 'native']).done;
  t.ok(byText.code === 0 && /^-?\d\.\d{4}  \/.+\n-?\d\.\d{4}  \/.+\n$/.test(byText.stdout), `search text: two "score  path" lines (${JSON.stringify(byText.stdout.slice(0, 80))})`);
  const both = await runCli(['search', 'x', '--image', fixture('images', 'chelsea.png'), '--db', db]).done;
  t.equal(both.code, 2, 'a text and --image together: exit 2 (E_INVALID_ARGUMENT)');
  const other = await runCli(['index', photos, '--db', db, '--model', fixture('models', 'large-d-tiny'), '--backend', 'native']).done;
  t.ok(other.code === 1 && other.stderr.includes('[E_CONFIG]'), 'index with another model: refused with E_CONFIG');
});

test('search: without LanceDB installed, search fails naming the install command; embedding does not need it', { timeout: 120_000 }, async (t) => {
  const hooks = path.join(tmp, 'no-lancedb-hooks.mjs');
  writeFileSync(hooks, "export async function resolve(spec, ctx, next) { if (spec === '@lancedb/lancedb' || spec.startsWith('@lancedb/')) { const e = new Error(`Cannot find package '${spec}'`); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(spec, ctx); }\n");
  const register = path.join(tmp, 'no-lancedb.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  const nodeArgs = ['--import', pathToFileURL(register).href];
  const search = await runCli(['search', 'a cat', '--db', path.join(tmp, 'db')], {}, nodeArgs).done;
  t.equal(search.code, 1, 'search exits 1');
  t.ok(search.stderr.includes('npm install @lancedb/lancedb@0.31.0') && search.stderr.includes('[E_BACKEND_UNAVAILABLE]'), `stderr names the install command: ${search.stderr.trim().slice(0, 160)}`);
  const embed = await runCli(['embed', '--model', MODEL, '--backend', 'native', '--threads', '1', '--text', 'a cat'], {}, nodeArgs).done;
  t.equal(embed.code, 0, 'embed works without LanceDB');
  t.ok(JSON.parse(embed.stdout).text_embeds.length === 1, 'and prints the embedding');
});
