import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import test from 'tape';
import { isHubError, resolveModel } from '../lib/hub/index.js';
import { type FakeHub, isolateHubEnv, startFakeHub, tempDir, tinyRepo } from './helpers/fake-hub.js';
import { projectRoot } from './helpers/fixtures.js';

isolateHubEnv();

const REPO = 'laion/concurrent-tiny';
let hub: FakeHub;

test('start the fake hub', async (t) => {
  hub = await startFakeHub([tinyRepo(REPO)]);
  t.pass();
});

/** Runs resolveHubModel in a separate Node process and returns what it printed. */
function child(cacheDir: string): Promise<{ code: number | null; out: string; err: string }> {
  const script = `
    import { resolveHubModel } from ${JSON.stringify(path.join(projectRoot, 'lib', 'hub', 'index.ts'))};
    const r = await resolveHubModel(process.env.REPO, { cacheDir: process.env.CACHE, endpoint: process.env.ENDPOINT, retryBaseMs: 5 });
    process.stdout.write(JSON.stringify({ dir: r.dir, downloaded: r.downloaded }));
  `;
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: projectRoot,
      env: { ...process.env, REPO, CACHE: cacheDir, ENDPOINT: hub.endpoint },
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (err += d));
    proc.on('close', (code) => resolve({ code, out, err }));
  });
}

test('two processes downloading the same model at once end with one good copy, each blob fetched once', async (t) => {
  const cache = tempDir();
  hub.throttle(256 * 1024, 50); // ~3 s for the weights: the two overlap
  const mark = hub.requests.length;
  const [a, b] = await Promise.all([child(cache), child(cache)]);
  hub.throttle(0, 0);
  t.equal(a.code, 0, a.err);
  t.equal(b.code, 0, b.err);
  const ra = JSON.parse(a.out) as { dir: string; downloaded: string[] };
  const rb = JSON.parse(b.out) as { dir: string; downloaded: string[] };
  t.equal(ra.dir, rb.dir, 'the same snapshot');
  const all = [...ra.downloaded, ...rb.downloaded].sort();
  t.deepEqual(all, ['merges.txt', 'open_clip_config.json', 'open_clip_model.safetensors', 'vocab.json'], 'each file downloaded by exactly one process');
  const heads = hub.requests.slice(mark).filter((r) => r.method === 'HEAD' && r.url.endsWith('/open_clip_model.safetensors'));
  t.equal(heads.length, 2, 'both processes found the cache incomplete (they ran at the same time)');
  const gets = hub.requests.slice(mark).filter((r) => r.server === 'cdn' && r.method === 'GET');
  t.equal(gets.length, 1, 'the weights crossed the network once');

  const root = path.join(cache, 'models--laion--concurrent-tiny');
  const blobs = readdirSync(path.join(root, 'blobs')).sort();
  t.equal(blobs.length, 4, `only finished blobs: ${blobs.join(', ')}`);
  for (const f of ['open_clip_config.json', 'open_clip_model.safetensors', 'vocab.json', 'merges.txt']) {
    const info = hub.file(REPO, f);
    t.equal(createHash('sha256').update(readFileSync(path.join(ra.dir, f))).digest('hex'), info.sha256, `${f} intact`);
  }
  const locks = path.join(cache, '.locks', 'models--laion--concurrent-tiny');
  t.deepEqual(existsSync(locks) ? readdirSync(locks) : [], [], 'every lock released');
});

test('a lock held by a live process that makes no progress times out with a clear error', async (t) => {
  const cache = tempDir();
  const etag = hub.file(REPO, 'open_clip_config.json').etag;
  const lockPath = path.join(cache, '.locks', 'models--laion--concurrent-tiny', `${etag}.node.lock`);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.dirname(lockPath), { recursive: true });
  const release = await lockfile.lock(lockPath, { realpath: false, lockfilePath: lockPath, stale: 30_000 });
  try {
    await resolveModel(REPO, { cacheDir: cache, endpoint: hub.endpoint, lockTimeoutMs: 400 }).then(
      () => t.fail('should throw'),
      (err) => t.ok(isHubError(err, 'lock-timeout') && /another process/.test(err.message), err.message),
    );
  } finally {
    await release();
  }
  t.ok(existsSync(path.join(await resolveModel(REPO, { cacheDir: cache, endpoint: hub.endpoint }), 'open_clip_config.json')), 'works once released');
});

test('stop the fake hub', async (t) => {
  await hub.close();
  t.pass();
});
