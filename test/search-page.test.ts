/**
 * `serve --db`: POST /v1/search (text, base64 JSON, raw bytes, multipart), thumbnails only for files in the
 * collection (by row id; `../`, absolute paths and symlinks out are refused), and the search page in headless
 * Chromium: searching by a fixture photo puts it first in the grid. SEARCH_PAGE_SCREENSHOT=<file> saves a
 * screenshot there (docs/search-page.png was made so).
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { Collection } from '../lib/search/collection.js';
import { type ClipServer, createServer } from '../lib/server/index.js';
import { fixture } from './helpers/fixtures.js';
import { postJson, request } from './server-helpers.js';

const MODEL = fixture('models', 'xxlarge-tiny');
const clipPromise = Clip.load(MODEL, { backend: 'native', threads: 1 });
const tmp = mkdtempSync(path.join(tmpdir(), 'clip-search-page-'));
const photos = path.join(tmp, 'photos');
const outside = path.join(tmp, 'outside');
const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function hasPlaywright(): boolean {
  try {
    createRequire(import.meta.url).resolve('playwright-core');
    return true;
  } catch {
    return false;
  }
}

let setup: Promise<{ app: ClipServer; base: string; collection: Collection }> | undefined;

function start() {
  setup ??= (async () => {
    const clip = await clipPromise;
    mkdirSync(path.join(photos, 'trips'), { recursive: true });
    mkdirSync(outside, { recursive: true });
    for (const name of readdirSync(fixture('images'))) copyFileSync(fixture('images', name), path.join(name.endsWith('.jpg') ? path.join(photos, 'trips') : photos, name));
    await sharp(fixture('images', 'rocket.jpg')).resize(80, 80).png().toFile(path.join(outside, 'secret.png'));
    symlinkSync(path.join(outside, 'secret.png'), path.join(photos, 'link-out.png')); // a symlink out: never indexed
    symlinkSync(outside, path.join(photos, 'dir-out')); // a symlinked folder: not followed
    const collection = await Collection.open(path.join(tmp, 'db'), clip, { model: 'xxlarge-tiny' });
    await collection.index([photos], { batchSize: 8 });
    const app = await createServer(clip, { maxItems: 8 }, { modelId: 'xxlarge-tiny', collection });
    await app.listen({ host: '127.0.0.1', port: 0 });
    return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, collection };
  })();
  return setup;
}

test.onFinish(async () => {
  if (setup) {
    const { app, collection } = await setup;
    await app.close();
    collection.close();
  }
  (await clipPromise).dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** A request whose path is sent exactly as written (fetch would normalize `../`). */
function rawGet(base: string, rawPath: string): Promise<{ status: number; body: Buffer }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: rawPath, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('POST /v1/search: text, base64 JSON, raw bytes and multipart; the photo itself comes first', { timeout: 120_000 }, async (t) => {
  const { base, collection } = await start();
  const count = await collection.count();
  t.equal(count, readdirSync(fixture('images')).length, `${count} files indexed (the symlinks out were left out)`);
  const chelsea = readFileSync(fixture('images', 'chelsea.png'));

  const text = await postJson(`${base}/v1/search`, { query: 'a photo of a cat', top: 5 });
  t.equal(text.status, 200, 'text query: 200');
  t.equal(text.body.results.length, 5, 'top 5');
  t.ok(text.body.results.every((r: { score: number }, i: number, all: { score: number }[]) => i === 0 || all[i - 1].score >= r.score), 'ranked by score');

  const asJson = await postJson(`${base}/v1/search`, { image: `data:image/png;base64,${chelsea.toString('base64')}`, top: 3 });
  t.equal(asJson.body.results[0].path, 'chelsea.png', 'base64 image: chelsea.png first');
  t.ok(asJson.body.results[0].score > 0.9999, `with cosine ${asJson.body.results[0].score}`);
  const raw = await request(`${base}/v1/search?top=2`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: chelsea });
  t.ok(raw.status === 200 && raw.body.results.length === 2 && raw.body.results[0].path === 'chelsea.png', 'raw image body with ?top=2');
  const form = new FormData();
  form.append('file', new Blob([readFileSync(fixture('images', 'china.jpg'))], { type: 'image/jpeg' }), 'q.jpg');
  form.append('top', '1');
  const multi = await request(`${base}/v1/search`, { method: 'POST', body: form });
  t.ok(multi.status === 200 && multi.body.results[0].path === 'trips/china.jpg', `multipart: ${multi.body.results?.[0]?.path} first, path relative to its folder`);
  t.ok(!JSON.stringify([text.body, asJson.body]).includes('secret'), 'the file behind the symlink out is never a result');

  for (const [name, body] of [
    ['neither', {}],
    ['both', { query: 'x', image: 'AAAA' }],
    ['bad top', { query: 'x', top: 0 }],
    ['empty query', { query: ' ' }],
  ] as const) {
    const r = await postJson(`${base}/v1/search`, body);
    t.ok(r.status === 400 && r.body.error?.code === 'E_INVALID_ARGUMENT', `${name}: 400 E_INVALID_ARGUMENT`);
  }
});

test('openapi.json documents /v1/search, its thumbnails and the page when serving a collection', { timeout: 120_000 }, async (t) => {
  const { app, base } = await start();
  const doc = (await request(`${base}/openapi.json`)).body as { paths: Record<string, Record<string, unknown>> };
  for (const [p, method] of [['/v1/search', 'post'], ['/v1/search/thumbnails/{id}', 'get'], ['/', 'get'], ['/v1/embeddings', 'post']] as const) {
    t.ok(doc.paths[p]?.[method], `documents ${method.toUpperCase()} ${p}`);
    t.ok(app.hasRoute({ method: method.toUpperCase() as 'GET', url: p.replace(/\{(\w+)\}/g, ':$1') }), `${p} is a route`);
  }
});

test('thumbnails: made by sharp, cached, only for files in the collection', { timeout: 120_000 }, async (t) => {
  const { base, collection } = await start();
  const hits = (await postJson(`${base}/v1/search`, { query: 'coffee', top: 20 })).body.results as { id: string; path: string; thumbnail: string }[];
  const first = await request(`${base}${hits[0].thumbnail}`);
  t.equal(first.status, 200, 'a result thumbnail: 200');
  const bytes = Buffer.from(await (await fetch(`${base}${hits[0].thumbnail}`)).arrayBuffer());
  const meta = await sharp(bytes).metadata();
  t.deepEqual([meta.format, meta.width, meta.height], ['webp', 256, 256], 'a 256 x 256 webp');
  t.ok(readdirSync(path.join(collection.dir, '.thumbnails')).some((f) => f.startsWith(hits[0].id)), 'cached on disk beside the collection');

  for (const bad of ['/v1/search/thumbnails/..%2F..%2F..%2Fetc%2Fpasswd', '/v1/search/thumbnails/%2Fetc%2Fpasswd', `/v1/search/thumbnails/${encodeURIComponent(path.join(photos, 'chelsea.png'))}`, '/v1/search/thumbnails/chelsea.png']) {
    const r = await rawGet(base, bad);
    t.equal(r.status, 400, `${bad.slice(22, 70)}: 400 (not an id)`);
    t.ok(!r.body.toString('latin1').includes('root:'), 'no file contents');
  }
  for (const bad of ['/v1/search/thumbnails/../../../../etc/passwd', '/v1/search/thumbnails/../../../etc/passwd%00', '/etc/passwd', '/v1/search/thumbnails//etc/passwd']) {
    const r = await rawGet(base, bad);
    t.ok(r.status === 404 || r.status === 400, `${bad}: ${r.status}`);
    t.ok(!r.body.toString('latin1').includes('root:'), 'no file contents');
  }
  t.equal((await rawGet(base, '/v1/search/thumbnails/0123456789abcdef')).status, 404, 'an id not in the collection: 404');

  // A file of the collection replaced by a symlink out after indexing (its thumbnail already cached): refused.
  const coffee = hits.find((h) => h.path === 'coffee.png')!;
  t.equal((await rawGet(base, coffee.thumbnail)).status, 200, 'coffee.png thumbnail before the swap');
  unlinkSync(path.join(photos, 'coffee.png'));
  symlinkSync(path.join(outside, 'secret.png'), path.join(photos, 'coffee.png'));
  const swapped = await rawGet(base, coffee.thumbnail);
  t.equal(swapped.status, 404, 'after it became a symlink out: 404, even with a cached thumbnail');
  unlinkSync(path.join(photos, 'coffee.png'));
  copyFileSync(fixture('images', 'coffee.png'), path.join(photos, 'coffee.png'));
  t.equal((await rawGet(base, coffee.thumbnail)).status, 200, 'a regular file again: 200');
});

const skipBrowser = !existsSync(chromium) ? `no Chromium at ${chromium}` : !hasPlaywright() ? 'playwright-core is not installed' : undefined;
if (skipBrowser) console.log(`# skipping the Chromium test: ${skipBrowser}`);

test('search page in headless Chromium: search by a fixture photo, it comes first in the grid', { skip: Boolean(skipBrowser), timeout: 180_000 }, async (t) => {
  const { base } = await start();
  const pw = await import('playwright-core');
  const browser = await pw.chromium.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    const outsideRequests: string[] = [];
    page.on('request', (req) => {
      if (!req.url().startsWith(base)) outsideRequests.push(req.url());
    });
    await page.goto(`${base}/`);
    await page.setInputFiles('#file', fixture('images', 'astronaut.png'));
    await page.waitForSelector('body[data-state="done"]', { timeout: 60_000 });
    const grid = await page.$$eval('#results figure', (figs) => figs.map((f) => ({ path: (f as HTMLElement).dataset.path, score: Number((f as HTMLElement).dataset.score) })));
    t.ok(grid.length >= 5, `${grid.length} photos in the grid`);
    t.equal(grid[0]?.path, 'astronaut.png', 'the photo searched by is first');
    t.ok(grid[0]?.score > 0.9999, `with score ${grid[0]?.score}`);
    await page.waitForFunction(() => [...document.querySelectorAll('#results img')].every((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0), undefined, { timeout: 60_000 });
    t.pass('every thumbnail loaded');
    t.ok((await page.textContent('#status'))?.includes('astronaut.png'), 'the status line names the query');

    await page.fill('#query', 'a photo of a cat');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.state === 'done' && document.getElementById('status')?.textContent?.includes('a photo of a cat'), undefined, { timeout: 60_000 });
    t.ok((await page.$$('#results figure')).length > 0, 'a text query fills the grid too');

    await page.setInputFiles('#file', fixture('images', 'astronaut.png'));
    await page.waitForFunction(() => document.body.dataset.state === 'done' && document.getElementById('status')?.textContent?.includes('astronaut.png'), undefined, { timeout: 60_000 });
    await page.waitForFunction(() => [...document.querySelectorAll('#results img')].every((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0), undefined, { timeout: 60_000 });
    const shot = process.env.SEARCH_PAGE_SCREENSHOT ?? path.join(tmp, 'search-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.ok(existsSync(shot), `screenshot at ${shot}`);
    t.deepEqual(outsideRequests, [], 'the page requests nothing outside the server');
    t.deepEqual(errors, [], 'no uncaught page errors');
  } finally {
    await browser.close();
  }
});
