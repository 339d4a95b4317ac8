import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { type DownloadProgress, isHubError, parseHubRef, resolveHubModel, resolveModel } from '../lib/hub/index.js';
import { describeModel } from '../lib/model-dir.js';
import { type FakeHub, isolateHubEnv, startFakeHub, tempDir, tinyRepo } from './helpers/fake-hub.js';
import { fixture } from './helpers/fixtures.js';

isolateHubEnv();

const REPO = 'laion/CLIP-convnext-tiny-test';
const GATED = 'laion/gated-tiny';
const BIN_ONLY = 'laion/bin-only-tiny';
const tiny = (f: string) => fixture('models', 'xxlarge-tiny', f);

let hub: FakeHub;
test('start the fake hub', async (t) => {
  hub = await startFakeHub([
    tinyRepo(REPO, { oldId: 'laion/old-name' }),
    tinyRepo(GATED, { gated: true }),
    tinyRepo(BIN_ONLY, { files: ['open_clip_config.json', 'open_clip_pytorch_model.bin', 'vocab.json', 'merges.txt'] }),
  ]);
  t.ok(hub.endpoint.startsWith('http://127.0.0.1:'));
});

function opts(cacheDir: string, extra: Record<string, unknown> = {}) {
  return { cacheDir, endpoint: hub.endpoint, retryBaseMs: 5, ...extra };
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function since(mark: number) {
  return hub.requests.slice(mark);
}

test('parseHubRef accepts org/name, hf-hub: and @revision, and leaves paths alone', (t) => {
  t.deepEqual(parseHubRef('laion/CLIP-convnext_xxlarge-laion2B-s34B-b82K-augreg-soup'), { repoId: 'laion/CLIP-convnext_xxlarge-laion2B-s34B-b82K-augreg-soup', revision: undefined });
  t.deepEqual(parseHubRef('hf-hub:laion/x@v1.0'), { repoId: 'laion/x', revision: 'v1.0' });
  t.deepEqual(parseHubRef('org/name@refs/pr/1'), { repoId: 'org/name', revision: 'refs/pr/1' });
  t.deepEqual(parseHubRef('hf-hub:gpt2'), { repoId: 'gpt2', revision: undefined });
  t.equal(parseHubRef('./models/x'), undefined);
  t.equal(parseHubRef('/abs/dir'), undefined);
  t.equal(parseHubRef('gpt2'), undefined, 'a bare name needs hf-hub:');
  t.equal(parseHubRef('a/b/c'), undefined);
  t.throws(() => parseHubRef('hf-hub:bad--name/x'), /not a valid/);
  t.throws(() => parseHubRef('org/name@../x'), /invalid revision/);
  t.end();
});

test('a local directory is returned unchanged, with no request', async (t) => {
  const mark = hub.requests.length;
  const dir = fixture('models', 'xxlarge-tiny');
  t.equal(await resolveModel(dir, opts(tempDir())), dir);
  t.equal(since(mark).length, 0);
  await resolveModel('./no/such/dir', opts(tempDir())).then(
    () => t.fail('should throw'),
    (err) => t.ok(isHubError(err, 'not-found') && /neither a model directory nor/.test(err.message), err.message),
  );
});

test('cold download: config, safetensors (preferred over .bin) and vocabulary, in the huggingface_hub layout', async (t) => {
  const cache = tempDir();
  const mark = hub.requests.length;
  const events: DownloadProgress[] = [];
  const res = await resolveHubModel(REPO, opts(cache, { token: 'hf_public', onProgress: (p: DownloadProgress) => events.push(p) }));
  const commit = hub.commitOf(REPO);
  const root = path.join(cache, 'models--laion--CLIP-convnext-tiny-test');
  t.equal(res.dir, path.join(root, 'snapshots', commit));
  t.equal(res.commit, commit);
  t.deepEqual(Object.keys(res.files).sort(), ['merges.txt', 'open_clip_config.json', 'open_clip_model.safetensors', 'vocab.json']);
  t.deepEqual(res.downloaded.sort(), Object.keys(res.files).sort());
  for (const f of Object.keys(res.files)) t.ok(readFileSync(tiny(f)).equals(readFileSync(path.join(res.dir, f))), `${f} is byte-identical`);
  t.notOk(existsSync(path.join(res.dir, 'open_clip_pytorch_model.bin')), 'the .bin is not fetched when safetensors exist');

  // Layout: refs/main holds the commit; snapshot entries are relative symlinks to blobs named by etag.
  t.equal(readFileSync(path.join(root, 'refs', 'main'), 'utf8'), commit, 'refs/main is the bare commit sha');
  for (const f of Object.keys(res.files)) {
    const pointer = path.join(res.dir, f);
    t.ok(lstatSync(pointer).isSymbolicLink(), `${f} is a symlink`);
    const etag = hub.file(REPO, f).etag;
    t.equal(readlinkSync(pointer), `../../blobs/${etag}`, `${f} -> ../../blobs/<etag>`);
    t.equal(realpathSync(pointer), realpathSync(path.join(root, 'blobs', etag)));
  }
  t.equal(sha256(path.join(root, 'blobs', hub.file(REPO, 'open_clip_model.safetensors').sha256)), hub.file(REPO, 'open_clip_model.safetensors').sha256);
  t.deepEqual(readdirSync(path.join(root, 'blobs')).filter((b) => !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(b)), [], 'no .incomplete or temp files left');

  const reqs = since(mark);
  t.ok(reqs.filter((r) => r.server === 'hub').every((r) => r.authorization === 'Bearer hf_public'), 'the token goes to the Hub');
  t.ok(reqs.filter((r) => r.server === 'cdn').length > 0 && reqs.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined), 'and never to the CDN');
  t.notOk(reqs.some((r) => r.url.includes('pytorch_model.bin')));

  const done = events.filter((e) => e.state === 'done').map((e) => e.file);
  t.ok(done.includes('open_clip_model.safetensors'), 'progress reports completion');
  t.ok(events.every((e) => e.repoId === REPO && e.total > 0 && e.bytes <= e.total && e.rate >= 0));

  const described = await describeModel(res.dir);
  t.equal(described.manifest.format, 'safetensors', 'describeModel accepts the snapshot directory');

  // Warm cache: the same call makes no request at all.
  const warm = hub.requests.length;
  t.equal(await resolveModel(REPO, opts(cache)), res.dir);
  t.equal(await resolveModel(`hf-hub:${REPO}@main`, opts(cache, { endpoint: 'http://127.0.0.1:9' })), res.dir, 'even with an unreachable endpoint');
  t.equal(since(warm).length, 0, 'zero requests on a warm cache');
});

test('a cache laid out by Python huggingface_hub (.bin only) is found with zero requests', async (t) => {
  const cache = tempDir();
  const commit = 'a'.repeat(40);
  const root = path.join(cache, 'models--laion--from-python');
  const { mkdirSync, copyFileSync, symlinkSync } = await import('node:fs');
  mkdirSync(path.join(root, 'blobs'), { recursive: true });
  mkdirSync(path.join(root, 'refs'));
  mkdirSync(path.join(root, 'snapshots', commit), { recursive: true });
  writeFileSync(path.join(root, 'refs', 'main'), commit);
  for (const f of ['open_clip_config.json', 'open_clip_pytorch_model.bin', 'vocab.json', 'merges.txt']) {
    const etag = createHash('sha256').update(f).digest('hex');
    copyFileSync(tiny(f), path.join(root, 'blobs', etag));
    symlinkSync(`../../blobs/${etag}`, path.join(root, 'snapshots', commit, f));
  }
  const mark = hub.requests.length;
  const dir = await resolveModel('laion/from-python', opts(cache, { endpoint: 'http://127.0.0.1:9' }));
  t.equal(dir, path.join(root, 'snapshots', commit));
  t.equal(since(mark).length, 0);
  t.equal((await describeModel(dir)).manifest.format, 'torch-zip');
});

test('a download cut halfway resumes with a Range request and ends byte-identical', async (t) => {
  const cache = tempDir();
  const name = 'open_clip_model.safetensors';
  const cutAt = 5 * 1024 * 1024 + 123;
  hub.cutNext(name, cutAt);
  const mark = hub.requests.length;
  const res = await resolveHubModel(REPO, opts(cache));
  const gets = since(mark).filter((r) => r.server === 'cdn' && r.method === 'GET');
  t.equal(gets.length, 2, 'two GETs: the cut one and the resumed one');
  t.equal(gets[0].range, undefined);
  // The resume starts where the partial blob ends: at most the cut point (bytes still in flight when the socket
  // closed are lost), never from zero.
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1].range ?? '')?.[1] ?? Number.NaN);
  t.ok(resumedAt > 0 && resumedAt <= cutAt, `the second asks for the rest (from byte ${resumedAt}, cut at ${cutAt})`);
  t.equal(gets[1].status, 206);
  t.ok(readFileSync(path.join(res.dir, name)).equals(readFileSync(tiny(name))), 'byte-identical');
});

test('a stalled download times out (HF_HUB_DOWNLOAD_TIMEOUT) and resumes', async (t) => {
  const cache = tempDir();
  const name = 'open_clip_model.safetensors';
  hub.stallNext(name, 1_000_000);
  process.env.HF_HUB_DOWNLOAD_TIMEOUT = '1';
  const mark = hub.requests.length;
  try {
    const res = await resolveHubModel(REPO, opts(cache));
    const gets = since(mark).filter((r) => r.server === 'cdn' && r.method === 'GET');
    t.equal(gets.length, 2);
    t.match(gets[1].range ?? '', /^bytes=\d+-$/, 'resumed with a Range');
    t.equal(sha256(path.join(res.dir, name)), hub.file(REPO, name).sha256);
  } finally {
    delete process.env.HF_HUB_DOWNLOAD_TIMEOUT;
  }
});

test('a partial .incomplete left by a killed process is resumed, not restarted', async (t) => {
  const cache = tempDir();
  const name = 'open_clip_model.safetensors';
  const info = hub.file(REPO, name);
  const blobs = path.join(cache, 'models--laion--CLIP-convnext-tiny-test', 'blobs');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(blobs, { recursive: true });
  const have = 3_000_001;
  writeFileSync(path.join(blobs, `${info.etag}.incomplete`), readFileSync(tiny(name)).subarray(0, have));
  const mark = hub.requests.length;
  const res = await resolveHubModel(REPO, opts(cache));
  const gets = since(mark).filter((r) => r.server === 'cdn' && r.method === 'GET');
  t.deepEqual(gets.map((g) => g.range), [`bytes=${have}-`]);
  t.equal(sha256(path.join(res.dir, name)), info.sha256);
  t.notOk(existsSync(path.join(blobs, `${info.etag}.incomplete`)));
});

test('a corrupt .incomplete prefix fails the sha256 check and is refetched whole', async (t) => {
  const cache = tempDir();
  const name = 'open_clip_model.safetensors';
  const info = hub.file(REPO, name);
  const blobs = path.join(cache, 'models--laion--CLIP-convnext-tiny-test', 'blobs');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(blobs, { recursive: true });
  writeFileSync(path.join(blobs, `${info.etag}.incomplete`), Buffer.alloc(1000, 7));
  const mark = hub.requests.length;
  const res = await resolveHubModel(REPO, opts(cache));
  const gets = since(mark).filter((r) => r.server === 'cdn' && r.method === 'GET');
  t.deepEqual(gets.map((g) => g.range), ['bytes=1000-', undefined], 'resumed, failed verification, refetched from 0');
  t.equal(sha256(path.join(res.dir, name)), info.sha256);
});

test('bytes corrupted in transit are detected (sha256) and refetched', async (t) => {
  const cache = tempDir();
  const name = 'open_clip_model.safetensors';
  hub.corruptNext(name);
  const mark = hub.requests.length;
  const res = await resolveHubModel(REPO, opts(cache));
  t.equal(since(mark).filter((r) => r.server === 'cdn' && r.method === 'GET').length, 2);
  t.equal(sha256(path.join(res.dir, name)), hub.file(REPO, name).sha256);
});

test('a small (git) file corrupted in transit fails its git-sha1 check and is refetched', async (t) => {
  const cache = tempDir();
  hub.corruptNext('vocab.json');
  const res = await resolveHubModel(REPO, opts(cache));
  t.ok(readFileSync(path.join(res.dir, 'vocab.json')).equals(readFileSync(tiny('vocab.json'))));
});

test('a corrupted cached blob is found by verify: true and refetched', async (t) => {
  const cache = tempDir();
  const name = 'open_clip_model.safetensors';
  const res = await resolveHubModel(REPO, opts(cache));
  const blob = realpathSync(path.join(res.dir, name));
  const bytes = readFileSync(blob);
  bytes[1000] ^= 1;
  writeFileSync(blob, bytes);
  let mark = hub.requests.length;
  await resolveModel(REPO, opts(cache));
  t.equal(since(mark).length, 0, 'without verify a warm cache is trusted (no hashing, no requests)');
  mark = hub.requests.length;
  await resolveModel(REPO, opts(cache, { verify: true }));
  t.equal(since(mark).filter((r) => r.server === 'cdn' && r.method === 'GET').length, 1, 'refetched');
  t.equal(sha256(path.join(res.dir, name)), hub.file(REPO, name).sha256);
  await resolveModel(REPO, opts(cache, { verify: true, offline: true }));
  t.pass('a good cache verifies offline');
});

test('offline mode: the cache when complete, else a clear error naming what is missing', async (t) => {
  const cache = tempDir();
  process.env.HF_HUB_OFFLINE = '1';
  try {
    await resolveModel(REPO, opts(cache)).then(
      () => t.fail('should throw'),
      (err) => {
        t.ok(isHubError(err, 'offline'), `${err.code}: ${err.message}`);
        t.match(err.message, /HF_HUB_OFFLINE/);
        t.match(err.message, /not in the cache/);
      },
    );
    await resolveModel(REPO, opts(cache, { offline: false }));
    const mark = hub.requests.length;
    const dir = await resolveModel(REPO, opts(cache));
    t.equal(since(mark).length, 0);
    t.ok(existsSync(path.join(dir, 'open_clip_config.json')));
    const { rmSync } = await import('node:fs');
    rmSync(path.join(dir, 'merges.txt'));
    await resolveModel(REPO, opts(cache)).then(
      () => t.fail('should throw'),
      (err) => t.ok(isHubError(err, 'offline') && /lacks merges\.txt/.test(err.message), err.message),
    );
    t.equal(since(mark).length, 0, 'offline never touches the network');
  } finally {
    delete process.env.HF_HUB_OFFLINE;
  }
  const mark = hub.requests.length;
  await resolveModel(REPO, opts(cache));
  t.deepEqual(
    since(mark).map((r) => `${r.method} ${r.url.replace(/.*\//, '')}`),
    ['HEAD open_clip_config.json', 'HEAD merges.txt'],
    'online again: only the missing pointer is looked up (its blob is still there, so nothing is downloaded)',
  );
});

test('a gated repo without a token is a clear auth error; with the token it downloads', async (t) => {
  const cache = tempDir();
  await resolveModel(GATED, opts(cache)).then(
    () => t.fail('should throw'),
    (err) => {
      t.ok(isHubError(err, 'auth'), `${err.code}: ${err.message}`);
      t.equal(err.status, 401);
      t.match(err.message, /HF_TOKEN/);
      t.match(err.message, /licence/);
    },
  );
  await resolveModel(GATED, opts(cache, { token: 'hf_wrong' })).then(
    () => t.fail('should throw'),
    (err) => t.ok(isHubError(err, 'auth') && err.status === 403 && /not in the authorized list/.test(err.message), err.message),
  );
  process.env.HF_TOKEN = hub.token;
  try {
    const dir = await resolveModel(GATED, opts(cache));
    t.ok(existsSync(path.join(dir, 'open_clip_model.safetensors')), 'HF_TOKEN is honoured');
  } finally {
    delete process.env.HF_TOKEN;
  }
});

test('transient 503s are retried with backoff', async (t) => {
  const cache = tempDir();
  hub.failNext(2);
  const dir = await resolveModel(REPO, opts(cache));
  t.ok(existsSync(path.join(dir, 'vocab.json')));
  hub.failNext(100);
  await resolveModel(REPO, opts(tempDir(), { retries: 2 })).then(
    () => t.fail('should throw'),
    (err) => t.ok(isHubError(err, 'network') && /after 3 tries/.test(err.message), err.message),
  );
  hub.failNext(0);
  await resolveModel(REPO, opts(tempDir(), { endpoint: 'http://127.0.0.1:9', retries: 1 })).then(
    () => t.fail('should throw'),
    (err) => t.ok(isHubError(err, 'network') && /HF_HUB_OFFLINE/.test(err.message), err.message),
  );
});

test('a repo without safetensors falls back to the .bin and records the absence like huggingface_hub', async (t) => {
  const cache = tempDir();
  const res = await resolveHubModel(BIN_ONLY, opts(cache));
  t.ok(res.files['open_clip_pytorch_model.bin']);
  t.notOk(res.files['open_clip_model.safetensors']);
  const marker = path.join(cache, 'models--laion--bin-only-tiny', '.no_exist', res.commit, 'open_clip_model.safetensors');
  t.ok(existsSync(marker), '.no_exist/<commit>/open_clip_model.safetensors');
  t.equal((await describeModel(res.dir)).manifest.format, 'torch-zip');
});

test('revisions: @tag and @commit share one snapshot; a renamed repo follows the relative redirect', async (t) => {
  const cache = tempDir();
  const commit = hub.commitOf(REPO);
  const a = await resolveModel(`${REPO}@v1`, opts(cache));
  t.equal(readFileSync(path.join(cache, 'models--laion--CLIP-convnext-tiny-test', 'refs', 'v1'), 'utf8'), commit);
  const mark = hub.requests.length;
  t.equal(await resolveModel(`${REPO}@${commit}`, opts(cache)), a);
  t.equal(since(mark).length, 0, 'a commit already in snapshots needs no request');
  await resolveModel(`${REPO}@nope`, opts(cache)).then(
    () => t.fail('should throw'),
    (err) => t.ok(isHubError(err, 'not-found') && /no such revision/.test(err.message), err.message),
  );
  const renamed = await resolveModel('laion/old-name', opts(cache));
  t.ok(existsSync(path.join(renamed, 'open_clip_model.safetensors')));
  await resolveModel('laion/does-not-exist', opts(cache)).then(
    () => t.fail('should throw'),
    (err) => t.ok(isHubError(err, 'not-found') && err.status === 401 && /not found.*no local directory laion\/does-not-exist/.test(err.message), err.message),
  );
  await resolveModel('hf-hub:laion/does-not-exist', opts(cache, { token: hub.token })).then(
    () => t.fail('should throw'),
    (err) => t.ok(isHubError(err, 'not-found') && err.status === 404 && /check the name/.test(err.message), err.message),
  );
});

test('stop the fake hub', async (t) => {
  await hub.close();
  t.pass();
});
