/**
 * The wasm build in headless Chromium: a node:http server on 127.0.0.1 (cross-origin isolated) serves
 * wasm/prebuilt, the bundled test/browser/page.ts and the fixture models; the page loads each model from a File
 * or an ArrayBuffer, embeds the expected pixels and tokens, and reports the differences back.
 * Needs Chromium (CHROMIUM_PATH, default /usr/bin/chromium) and playwright-core; skipped without them.
 */
import { existsSync, readFileSync, statSync, createReadStream } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import test from 'tape';
import { wasmArtifacts } from '../lib/backends/wasm-artifacts.js';
import { wasmBackend } from '../lib/backends/wasm.js';
import type { PageRequest, PageResult } from './browser/page.js';
import { FIXTURE_MODELS, fixture, projectRoot } from './helpers/fixtures.js';
import { floats, readExpected } from './native-helpers.js';
import { OPENAI_STD } from '../lib/preprocess-config.js';

const FP32_TOLERANCE = 1e-4;
const BF16_MIN_COSINE = 0.999;
const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function hasPlaywright(): boolean {
  try {
    createRequire(import.meta.url).resolve('playwright-core');
    return true;
  } catch {
    return false;
  }
}

const skipReason = !wasmBackend.available().ok
  ? 'wasm build missing'
  : !existsSync(chromium)
    ? `no Chromium at ${chromium}`
    : !hasPlaywright()
      ? 'playwright-core is not installed'
      : undefined;

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html', '.json': 'application/json', '.png': 'image/png', '.jpg': 'image/jpeg' };

/** Static files with the headers that make the page cross-origin isolated (SharedArrayBuffer, wasm threads). */
async function startServer(): Promise<{ server: http.Server; origin: string }> {
  const { build } = await import('esbuild');
  const bundle = await build({ entryPoints: [path.join(projectRoot, 'test/browser/page.ts')], bundle: true, format: 'esm', platform: 'browser', write: false, target: 'es2022' });
  const pageJs = bundle.outputFiles[0].text;
  const artifacts = wasmArtifacts();
  if ('error' in artifacts) throw new Error(artifacts.error);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' };
    const send = (body: string, type: string) => {
      res.writeHead(200, { ...headers, 'Content-Type': type });
      res.end(body);
    };
    if (url.pathname === '/') return send(readFileSync(path.join(projectRoot, 'test/browser/index.html'), 'utf8'), TYPES['.html']);
    if (url.pathname === '/page.js') return send(pageJs, TYPES['.js']);
    let file: string | undefined;
    const wasm = /^\/wasm\/(cclip\.(?:js|wasm|worker\.js)|cclip-relaxed\.wasm)$/.exec(url.pathname);
    const model = /^\/fixtures\/([\w-]+)\/(open_clip_config\.json|open_clip_model\.safetensors|expected\.safetensors)$/.exec(url.pathname);
    const image = /^\/fixtures\/images\/([\w-]+\.(?:png|jpg))$/.exec(url.pathname);
    if (wasm) file = path.join(artifacts.dir, wasm[1]);
    else if (image) file = fixture('images', image[1]);
    else if (model && (FIXTURE_MODELS as readonly string[]).includes(model[1])) file = fixture('models', model[1], model[2]);
    if (!file || !existsSync(file)) {
      res.writeHead(404, headers);
      return res.end('not found');
    }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Length': statSync(file).size });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** Every fixture model in both precisions, on each build (cclip-relaxed.wasm where the browser has relaxed SIMD). */
const runs = (wasm: PageRequest['wasm']): PageRequest[] =>
  FIXTURE_MODELS.flatMap((model, i) => [
    { model, precision: 'fp32' as const, threads: 2, via: i % 2 ? ('arraybuffer' as const) : ('file' as const), wasm },
    { model, precision: 'bf16' as const, threads: 2, via: i % 2 ? ('file' as const) : ('arraybuffer' as const), wasm },
  ]);

if (skipReason) console.log(`# skipping the Chromium test: ${skipReason}`);

test('wasm in headless Chromium: fixture parity', { skip: Boolean(skipReason), timeout: 600_000 }, async (t) => {
  const pw = await import('playwright-core');
  const { server, origin } = await startServer();
  const browser = await pw.chromium.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 });
    const relaxed: boolean = await page.evaluate(() => (globalThis as unknown as { relaxedSimdSupported(): boolean }).relaxedSimdSupported());
    const major = Number(browser.version().split('.')[0]);
    if (major >= 114) t.ok(relaxed, `Chromium ${browser.version()}: relaxedSimdSupported() (Chromium 114+ runs relaxed SIMD)`);
    else t.comment(`Chromium ${browser.version()} has no relaxed SIMD: cclip-relaxed.wasm not run`);
    const both: PageRequest = { model: 'xxlarge-tiny', precision: 'fp32', threads: 2, via: 'arraybuffer', wasm: 'both' };
    for (const req of [...runs('cclip.wasm'), ...(relaxed ? runs('cclip-relaxed.wasm') : []), both]) {
      const r: PageResult = await page.evaluate((q) => (globalThis as unknown as { runParity(q: PageRequest): Promise<PageResult> }).runParity(q), req);
      const label = `${req.wasm} ${req.model} ${req.precision} via ${req.via}`;
      const want = req.wasm === 'cclip.wasm' || (req.wasm === 'both' && !relaxed) ? 'simd128' : 'relaxed';
      t.equal(r.simd, want, `${label}: the model runs the build ${req.wasm === 'both' ? 'the loader picked' : 'loaded'} (${want})`);
      t.ok(r.crossOriginIsolated, `${label}: page is cross-origin isolated`);
      t.ok(r.progressEnd, `${label}: load progress reached the total`);
      // One tick per 50 ms asked (at most 2): the forward is sized to ~200 ms, and one that held the page's thread ticks 0-1 times.
      const ticksWanted = Math.min(2, Math.floor(r.longImageMs / 50));
      t.ok(r.ticksDuringLongImage >= ticksWanted, `${label}: the page's event loop ran during the forward (${r.ticksDuringLongImage} ticks in ${r.longImageMs.toFixed(0)} ms, want >= ${ticksWanted})`);
      if (req.precision === 'fp32') {
        for (const [name, rel] of Object.entries(r.rel)) t.ok(rel <= FP32_TOLERANCE, `${label}: ${name} max rel diff ${rel.toExponential(2)}`);
        t.ok(Object.keys(r.rel).length > 4, `${label}: ${Object.keys(r.rel).length} tensors compared`);
      } else {
        t.ok(r.imageCos >= BF16_MIN_COSINE, `${label}: image_features min cosine ${r.imageCos.toFixed(6)}`);
        t.ok(r.textCos >= BF16_MIN_COSINE, `${label}: text_features min cosine ${r.textCos.toFixed(6)}`);
      }
      t.comment(`${label}: load ${r.loadMs.toFixed(0)} ms, image ${r.imageMs.toFixed(0)} ms, text ${r.textMs.toFixed(0)} ms`);
    }
    // The browser entry decodes with the page's own decoder and preprocesses with the module: the reference's pixels.
    const photos = ['astronaut.png', 'camera.png', 'chelsea.png', 'logo.png'];
    const got: Record<string, number[]> = await page.evaluate((q) => (globalThis as unknown as { preprocessImages(q: unknown): Promise<Record<string, number[]>> }).preprocessImages(q), { model: 'xxlarge-tiny', images: photos });
    const reference = await readExpected(fixture('preprocess_expected.safetensors'));
    for (const name of photos) {
      const want = floats(reference.get(`${name}@64`), `${name}@64`);
      let off = 0;
      for (let i = 0; i < want.length; i++) if (!(Math.abs(got[name][i] - want[i]) * OPENAI_STD[Math.floor(i / 4096)] <= 1 / 255 + 1e-6)) off++;
      t.ok(got[name].length === want.length && off <= want.length * 1e-3, `${name}: decoded by Chromium, preprocessed in wasm: ${off} of ${want.length} values off by more than one level`);
    }
    t.deepEqual(errors, [], 'no uncaught page errors');
  } finally {
    await browser.close();
    server.close();
  }
});
