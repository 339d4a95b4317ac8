/** The HTTP server over real loopback HTTP: embeddings equal the library's, batching, limits, errors. */
import { readFileSync } from 'node:fs';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { fixture } from './helpers/fixtures.js';
import { maxAbsDiff, metric, postJson, request, startServer } from './server-helpers.js';

const MODEL = fixture('models', 'xxlarge-tiny');
const clipPromise = Clip.load(MODEL, { backend: 'native', threads: 1 });
const png = (name: string) => readFileSync(fixture('images', name));
const TEXTS = ['a photo of a cat.', 'an astronaut riding a horse', 'coffee', 'ü and 😀 are fine too'];

test.onFinish(async () => (await clipPromise).dispose());

function rows(body: { embeddings: number[][] }): number[] {
  return body.embeddings.flat();
}

test('server: text and image embeddings equal Clip.embedTexts / embedImages (raw, multipart, base64)', async (t) => {
  const clip = await clipPromise;
  const { app, base } = await startServer(clip);
  try {
    const text = await postJson(`${base}/v1/embeddings/text`, { texts: TEXTS });
    t.equal(text.status, 200);
    t.equal(text.body.dim, clip.embedDim);
    t.equal(text.body.embeddings.length, TEXTS.length);
    const wantText = await clip.embedTexts(TEXTS);
    t.ok(maxAbsDiff(rows(text.body), wantText.data) <= 1e-5, `texts: max diff ${maxAbsDiff(rows(text.body), wantText.data)}`);

    const names = ['chelsea.png', 'astronaut.png', 'coffee.png'];
    const want = await clip.embedImages(names.map((n) => fixture('images', n)));
    const D = clip.embedDim;

    const raw = await request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/png; name=chelsea.png' }, body: png(names[0]) });
    t.equal(raw.status, 200);
    t.ok(maxAbsDiff(rows(raw.body), want.data.subarray(0, D)) <= 1e-5, 'raw image/png body (with a parameter)');
    const octets = await request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: png(names[0]) });
    t.ok(octets.status === 200 && maxAbsDiff(rows(octets.body), want.data.subarray(0, D)) <= 1e-5, 'application/octet-stream body');

    const form = new FormData();
    for (const n of names) form.append('file', new Blob([png(n)], { type: 'image/png' }), n);
    const multi = await request(`${base}/v1/embeddings/image`, { method: 'POST', body: form });
    t.equal(multi.status, 200);
    t.equal(multi.body.embeddings.length, 3, 'one row per multipart file, in order');
    t.ok(maxAbsDiff(rows(multi.body), want.data) <= 1e-5, 'multipart files');

    const b64 = await postJson(`${base}/v1/embeddings/image`, { images: names.map((n) => png(n).toString('base64')) });
    t.equal(b64.status, 200);
    t.ok(maxAbsDiff(rows(b64.body), want.data) <= 1e-5, 'base64 JSON');
    for (const row of b64.body.embeddings as number[][]) t.ok(Math.abs(Math.hypot(...row) - 1) < 1e-5, 'unit norm');
  } finally {
    await app.close();
  }
});

test('server: concurrent requests join one forward pass; --max-batch 1 turns batching off', async (t) => {
  const clip = await clipPromise;
  for (const [maxBatch, expectJoined] of [
    [32, true],
    [1, false],
  ] as const) {
    const { app, base } = await startServer(clip, { maxBatch, maxWaitMs: 50 });
    try {
      const texts = Array.from({ length: 16 }, (_, i) => `photo number ${i} of a cat`);
      const answers = await Promise.all(texts.map((s) => postJson(`${base}/v1/embeddings/text`, { texts: [s] })));
      t.ok(
        answers.every((a) => a.status === 200),
        'all 200',
      );
      const want = await clip.embedTexts(texts);
      const worst = Math.max(...answers.map((a, i) => maxAbsDiff(a.body.embeddings[0], want.row(i))));
      t.ok(worst <= 1e-5, `each request gets its own row back (max diff ${worst.toExponential(1)})`);
      const m = (await request(`${base}/metrics`)).body as string;
      const passes = metric(m, 'clip_batch_rows_count', { tower: 'text' });
      const rowsSum = metric(m, 'clip_batch_rows_sum', { tower: 'text' });
      t.equal(rowsSum, 16, '16 rows went through the text tower');
      if (expectJoined) t.ok(passes < 16 && metric(m, 'clip_batch_rows_bucket', { tower: 'text', le: '1' }) < passes, `batching on: ${passes} forward passes for 16 requests`);
      else t.equal(passes, 16, 'batching off: one forward pass per request');
      t.equal(metric(m, 'clip_http_requests_total', { route: '/v1/embeddings/text', status: '200' }), 16, 'requests by status');
      t.ok(m.includes('clip_queue_depth{tower="text"} 0'), 'queue depth gauge');
      t.ok(metric(m, 'clip_http_request_duration_seconds_count', { route: '/v1/embeddings/text' }) === 16, 'latency histogram');
    } finally {
      await app.close();
    }
  }
});

test('server: --max-image-batch caps image passes apart from text passes', async (t) => {
  const clip = await clipPromise;
  const { app, base } = await startServer(clip, { maxBatch: 32, maxImageBatch: 1, maxWaitMs: 50 });
  try {
    const images = Array.from({ length: 3 }, () => request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png('coffee.png') }));
    const texts = Array.from({ length: 6 }, (_, i) => postJson(`${base}/v1/embeddings/text`, { texts: [`text ${i}`] }));
    t.ok((await Promise.all([...images, ...texts])).every((a) => a.status === 200), 'all 200');
    const m = (await request(`${base}/metrics`)).body as string;
    t.equal(metric(m, 'clip_batch_rows_count', { tower: 'image' }), 3, 'one image per pass');
    t.ok(metric(m, 'clip_batch_rows_count', { tower: 'text' }) < 6, 'texts still batched');
  } finally {
    await app.close();
  }
});

test('server: a broken image fails only its own request, even in a shared batch', async (t) => {
  const clip = await clipPromise;
  const { app, base } = await startServer(clip, { maxWaitMs: 50 });
  try {
    const good = ['chelsea.png', 'coffee.png', 'camera.png'];
    const want = await clip.embedImages(good.map((n) => fixture('images', n)));
    const sends = [
      ...good.map((n) => request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png(n) })),
      request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: Buffer.from('not a jpeg at all') }),
      postJson(`${base}/v1/embeddings/image`, { images: [png('chelsea.png').toString('base64'), png('chelsea.png').subarray(0, 200).toString('base64')] }),
    ];
    const answers = await Promise.all(sends);
    good.forEach((_, i) => t.ok(answers[i].status === 200 && maxAbsDiff(answers[i].body.embeddings[0], want.row(i)) <= 1e-5, `good image ${i}: 200, right row`));
    t.equal(answers[3].status, 400);
    t.equal(answers[3].body.error.code, 'E_IMAGE_DECODE', 'undecodable bytes: 400 E_IMAGE_DECODE');
    t.equal(answers[4].status, 400, 'a truncated second image fails its whole request');
    t.match(answers[4].body.error.message, /input #1/, 'and names it');
  } finally {
    await app.close();
  }
});

test('server: 400 for bad JSON and wrong types, 415, 404, with {"error": {code, message}}', async (t) => {
  const clip = await clipPromise;
  const { app, base } = await startServer(clip);
  try {
    const cases: [string, Promise<{ status: number; body: any }>, number][] = [
      ['malformed JSON', postJson(`${base}/v1/embeddings/text`, '{"texts": ['), 400],
      ['empty JSON body', postJson(`${base}/v1/embeddings/text`, ''), 400],
      ['texts not an array', postJson(`${base}/v1/embeddings/text`, { texts: 'a cat' }), 400],
      ['texts holding a number', postJson(`${base}/v1/embeddings/text`, { texts: ['a', 5] }), 400],
      ['texts empty', postJson(`${base}/v1/embeddings/text`, { texts: [] }), 400],
      ['body an array', postJson(`${base}/v1/embeddings/text`, [1, 2]), 400],
      ['images not base64', postJson(`${base}/v1/embeddings/image`, { images: ['%%%not base64%%%'] }), 400],
      ['images of numbers', postJson(`${base}/v1/embeddings/image`, { images: [1] }), 400],
      ['classify without labels', postJson(`${base}/v1/classify`, { image: png('chelsea.png').toString('base64') }), 400],
      ['classify labels of numbers', postJson(`${base}/v1/classify`, { image: png('chelsea.png').toString('base64'), labels: [1, 2] }), 400],
      ['classify top 0', postJson(`${base}/v1/classify`, { image: png('chelsea.png').toString('base64'), labels: ['a'], top: 0 }), 400],
      ['multipart without a file', request(`${base}/v1/embeddings/image`, { method: 'POST', body: (() => { const f = new FormData(); f.append('x', 'y'); return f; })() }), 400],
      ['text/plain', request(`${base}/v1/embeddings/text`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'a cat' }), 400],
      ['application/xml', request(`${base}/v1/embeddings/text`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' }), 415],
      ['unknown route', request(`${base}/v1/nothing`, { method: 'POST' }), 404],
    ];
    for (const [what, pending, status] of cases) {
      const a = await pending;
      t.equal(a.status, status, `${what}: ${status}`);
      t.ok(typeof a.body?.error?.code === 'string' && typeof a.body.error.message === 'string', `${what}: ${a.body?.error?.code} ${a.body?.error?.message}`);
    }
    t.equal((await postJson(`${base}/v1/embeddings/text`, { texts: [1] })).body.error.code, 'E_INVALID_ARGUMENT', 'wrong types are E_INVALID_ARGUMENT');
  } finally {
    await app.close();
  }
});

test('server: 413 for a body over max-body-bytes, an image over max-pixels, too many items', async (t) => {
  const clip = await clipPromise;
  const { app, base } = await startServer(clip, { maxBodyBytes: 64 * 1024, maxPixels: 50_000, maxItems: 8 });
  try {
    const big = await postJson(`${base}/v1/embeddings/text`, { texts: ['x'.repeat(100 * 1024)] });
    t.equal(big.status, 413, 'JSON body over the limit');
    t.equal(big.body.error.code, 'E_INPUT_TOO_LARGE');
    const bigRaw = await request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: Buffer.alloc(100 * 1024) });
    t.equal(bigRaw.status, 413, 'raw image body over the limit');
    const form = new FormData();
    form.append('file', new Blob([Buffer.alloc(100 * 1024)], { type: 'image/png' }), 'big.png');
    t.equal((await request(`${base}/v1/embeddings/image`, { method: 'POST', body: form })).status, 413, 'multipart file over the limit');
    // wide_900x120.jpg: 108000 pixels
    const wide = await request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: png('wide_900x120.jpg') });
    t.equal(wide.status, 413, 'image over max-pixels');
    t.equal(wide.body.error.code, 'E_INPUT_TOO_LARGE');
    t.equal((await postJson(`${base}/v1/embeddings/text`, { texts: Array(9).fill('a') })).status, 413, 'more items than max-items');
    t.equal((await postJson(`${base}/v1/embeddings/text`, { texts: ['a'.repeat(20_000)] })).status, 413, 'a text over 16384 characters');
    t.equal((await request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png('tiny_3x2.png') })).status, 200, 'a small image still passes');
  } finally {
    await app.close();
  }
});

test('server: a full queue answers 429 with Retry-After; a queued request past its deadline 503, a running one 504', async (t) => {
  const clip = await clipPromise;
  {
    const { app, base } = await startServer(clip, { maxQueue: 1, maxWaitMs: 1500, retryAfterSeconds: 2 });
    try {
      const first = postJson(`${base}/v1/embeddings/text`, { texts: ['first'] });
      for (let i = 0; i < 100 && !((await request(`${base}/metrics`)).body as string).includes('clip_pending_requests 1'); i++) await new Promise((r) => setTimeout(r, 10));
      const second = await postJson(`${base}/v1/embeddings/text`, { texts: ['second'] });
      t.equal(second.status, 429, 'queue full: 429');
      t.equal(second.body.error.code, 'E_OVERLOADED');
      t.equal(second.headers.get('retry-after'), '2', 'Retry-After');
      t.equal((await first).status, 200, 'the admitted request completes');
      t.equal((await postJson(`${base}/v1/embeddings/text`, { texts: ['third'] })).status, 200, 'admitted again once the queue drained');
    } finally {
      await app.close();
    }
  }
  {
    const { app, base } = await startServer(clip, { timeoutMs: 100, maxWaitMs: 1000 });
    try {
      const late = await postJson(`${base}/v1/embeddings/text`, { texts: ['never runs'] });
      t.equal(late.status, 503, 'still queued at the deadline: 503');
      t.ok(late.headers.get('retry-after') !== null, 'with Retry-After');
      const m = (await request(`${base}/metrics`)).body as string;
      t.equal(metric(m, 'clip_queue_depth', { tower: 'text' }), 0, 'its job left the queue');
      t.equal(metric(m, 'clip_batch_rows_count', { tower: 'text' }), 0, 'and never ran');
    } finally {
      await app.close();
    }
  }
  {
    // A model whose text tower takes 300 ms: the request is in its forward pass at the 100 ms deadline.
    const slow = Object.create(clip) as Clip;
    slow.embedTexts = async (...args: Parameters<Clip['embedTexts']>) => {
      await new Promise((r) => setTimeout(r, 300));
      return clip.embedTexts(...args);
    };
    const { app, base } = await startServer(slow, { timeoutMs: 100, maxWaitMs: 0 });
    try {
      const late = await postJson(`${base}/v1/embeddings/text`, { texts: ['slow'] });
      t.equal(late.status, 504, 'running at the deadline: 504');
      t.equal(late.body.error.code, 'E_TIMEOUT');
    } finally {
      await app.close();
    }
  }
});

test('server: classify equals Clip.classify; classifiers are cached by labels + templates', async (t) => {
  const clip = await clipPromise;
  const { app, base } = await startServer(clip);
  try {
    const labels = ['cat', 'dog', 'rocket', 'cup of coffee'];
    const templates = ['a photo of a {}.', 'a drawing of a {}.'];
    const images = ['chelsea.png', 'coffee.png'];
    const zs = await clip.zeroShot(labels, templates);
    const want = await clip.classify(
      images.map((n) => fixture('images', n)),
      zs,
    );
    const body = { images: images.map((n) => png(n).toString('base64')), labels, templates };
    const a = await postJson(`${base}/v1/classify`, body);
    t.equal(a.status, 200);
    for (let i = 0; i < images.length; i++) {
      t.deepEqual(
        a.body.results[i].map((s: { label: string }) => s.label),
        want[i].map((s) => s.label),
        `${images[i]}: same ranking`,
      );
      t.ok(maxAbsDiff(a.body.results[i].map((s: { score: number }) => s.score), want[i].map((s) => s.score)) <= 1e-5, `${images[i]}: same scores`);
    }
    const again = await postJson(`${base}/v1/classify`, { ...body, top: 2 });
    t.equal(again.body.results[0].length, 2, 'top 2');
    const form = new FormData();
    form.append('file', new Blob([png('chelsea.png')], { type: 'image/png' }), 'chelsea.png');
    form.append('labels', labels.join(','));
    for (const tpl of templates) form.append('templates', tpl);
    const multi = await request(`${base}/v1/classify`, { method: 'POST', body: form });
    t.equal(multi.status, 200, 'multipart');
    t.ok(maxAbsDiff(multi.body.results[0].map((s: { score: number }) => s.score), want[0].map((s) => s.score)) <= 1e-5, 'multipart: same scores');
    const defaults = await postJson(`${base}/v1/classify`, { image: png('chelsea.png').toString('base64'), labels: ['cat', 'dog'] });
    const wantDefault = await clip.classify(fixture('images', 'chelsea.png'), ['cat', 'dog']);
    t.ok(maxAbsDiff(defaults.body.results[0].map((s: { score: number }) => s.score), wantDefault[0].map((s) => s.score)) <= 1e-5, 'default template');
    const m = (await request(`${base}/metrics`)).body as string;
    t.equal(metric(m, 'clip_classifier_cache_total', { result: 'miss' }), 2, 'two distinct classifiers built');
    t.equal(metric(m, 'clip_classifier_cache_total', { result: 'hit' }), 2, 'the rest came from the cache');
  } finally {
    await app.close();
  }
});

test('server: shutdown refuses new work with 503 and completes every accepted request', async (t) => {
  const clip = await clipPromise;
  const { app, base } = await startServer(clip, { maxWaitMs: 300 });
  const texts = Array.from({ length: 6 }, (_, i) => `accepted ${i}`);
  const accepted = texts.map((s) => postJson(`${base}/v1/embeddings/text`, { texts: [s] }));
  accepted.push(request(`${base}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png('chelsea.png') }));
  await waitFor(() => app.inFlight === 7);
  t.equal((await request(`${base}/readyz`)).status, 200, 'ready before');
  const closed = app.shutdown();
  t.ok(app.draining, 'draining');
  const ready = await request(`${base}/readyz`);
  t.equal(ready.status, 503, 'readyz 503 while draining');
  const refused = await postJson(`${base}/v1/embeddings/text`, { texts: ['too late'] });
  t.equal(refused.status, 503, 'new work refused with 503');
  t.equal(refused.body.error.code, 'E_UNAVAILABLE');
  const answers = await Promise.all(accepted);
  t.deepEqual(
    answers.map((a) => a.status),
    Array(7).fill(200),
    'all accepted requests completed with 200',
  );
  const want = await clip.embedTexts(texts);
  t.ok(answers.slice(0, 6).every((a, i) => maxAbsDiff(a.body.embeddings[0], want.row(i)) <= 1e-5), 'with their own rows');
  await closed;
  await fetch(`${base}/healthz`).then(
    () => t.fail('still listening'),
    () => t.pass('closed after draining'),
  );
});

test('server: healthz, readyz, openapi.json', async (t) => {
  const clip = await clipPromise;
  const { app, base } = await startServer(clip);
  try {
    t.deepEqual((await request(`${base}/healthz`)).body, { status: 'ok' });
    t.deepEqual((await request(`${base}/readyz`)).body, { status: 'ready' });
    const doc = await request(`${base}/openapi.json`);
    t.equal(doc.status, 200);
    t.equal(doc.body.openapi, '3.1.0');
    for (const p of ['/v1/embeddings/text', '/v1/embeddings/image', '/v1/classify', '/healthz', '/readyz', '/metrics']) t.ok(doc.body.paths[p], `documents ${p}`);
    const m = await request(`${base}/metrics`);
    t.match(m.headers.get('content-type') ?? '', /text\/plain/, 'metrics as Prometheus text');
    t.match(m.body, /clip_process_resident_memory_bytes /, 'process metrics included');
  } finally {
    await app.close();
  }
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
