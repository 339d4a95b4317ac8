/**
 * POST /v1/embeddings through the real clients on a loopback server: the `openai` package (float, base64 and its
 * default) and @langchain/openai's OpenAIEmbeddings equal Clip.embedTexts; images as data: URLs; OpenAI-shaped
 * errors with 400 / 413 / 429 / 503; URL inputs are text and never fetched; queue/inference time headers.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenAIEmbeddings } from '@langchain/openai';
import OpenAI from 'openai';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import type { ClipServer, ServerOptions } from '../lib/server/index.js';
import { createServer } from '../lib/server/index.js';
import { fixture } from './helpers/fixtures.js';
import { postJson } from './server-helpers.js';

const MODEL = fixture('models', 'xxlarge-tiny');
const clipPromise = Clip.load(MODEL, { backend: 'native', threads: 1 });
const TEXTS = ['a photo of a cat.', 'an astronaut riding a horse', 'coffee', 'ü and 😀 are fine too'];
const MIN_COSINE = 0.99999;

test.onFinish(async () => (await clipPromise).dispose());

async function start(options: ServerOptions = {}): Promise<{ app: ClipServer; base: string }> {
  const app = await createServer(await clipPromise, options, { modelId: 'xxlarge-tiny' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return a.length === b.length ? dot / Math.sqrt(na * nb) : 0;
}

function worstCosine(got: ArrayLike<number>[], want: { row(i: number): Float32Array; rows: number }): number {
  if (got.length !== want.rows) return 0;
  return Math.min(...got.map((row, i) => cosine(row, want.row(i))));
}

function fromBase64(s: string): Float32Array {
  const bytes = Buffer.from(s, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

const dataUrl = (name: string) => `data:image/png;base64,${readFileSync(fixture('images', name)).toString('base64')}`;

test('openai client: embeddings.create (float, base64, default) equals Clip.embedTexts', { timeout: 60_000 }, async (t) => {
  const clip = await clipPromise;
  const { app, base } = await start();
  try {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
    const want = await clip.embedTexts(TEXTS);
    for (const encoding_format of ['float', 'base64', undefined] as const) {
      const res = await client.embeddings.create({ model: 'xxlarge-tiny', input: TEXTS, ...(encoding_format ? { encoding_format } : {}) });
      const rows = res.data.map((d) => (typeof d.embedding === 'string' ? fromBase64(d.embedding) : d.embedding));
      t.equal(res.object, 'list', `${encoding_format ?? 'default'}: object list`);
      t.deepEqual(
        res.data.map((d) => [d.object, d.index]),
        TEXTS.map((_, i) => ['embedding', i]),
        `${encoding_format ?? 'default'}: one embedding per input, in order`,
      );
      const cos = worstCosine(rows as ArrayLike<number>[], want);
      t.ok(cos >= MIN_COSINE, `${encoding_format ?? 'default'}: min cosine ${cos.toFixed(7)}`);
      t.equal(res.model, 'xxlarge-tiny');
      t.ok(res.usage.prompt_tokens > TEXTS.length * 2, `usage: ${res.usage.prompt_tokens} prompt tokens`);
    }
    const single = await client.embeddings.create({ model: 'm', input: 'coffee', encoding_format: 'float', dimensions: clip.embedDim });
    t.ok(cosine(single.data[0].embedding, want.row(2)) >= MIN_COSINE, 'a single string input, dimensions equal to the model dim');

    const raw = await fetch(`${base}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'coffee' }) });
    await raw.arrayBuffer();
    t.ok(/^\d+$/.test(raw.headers.get('x-queue-time') ?? '') && /^\d+$/.test(raw.headers.get('x-inference-time') ?? ''), `x-queue-time ${raw.headers.get('x-queue-time')} ms, x-inference-time ${raw.headers.get('x-inference-time')} ms`);
  } finally {
    await app.close();
  }
});

test('langchain OpenAIEmbeddings: embedDocuments and embedQuery equal Clip.embedTexts', { timeout: 60_000 }, async (t) => {
  const clip = await clipPromise;
  const { app, base } = await start();
  try {
    const embeddings = new OpenAIEmbeddings({ model: 'xxlarge-tiny', apiKey: 'unused', maxRetries: 0, configuration: { baseURL: `${base}/v1` } });
    const docs = await embeddings.embedDocuments(TEXTS);
    const want = await clip.embedTexts(TEXTS);
    const cos = worstCosine(docs, want);
    t.ok(cos >= MIN_COSINE, `embedDocuments: min cosine ${cos.toFixed(7)}`);
    const query = await embeddings.embedQuery(TEXTS[1]);
    t.ok(cosine(query, want.row(1)) >= MIN_COSINE, 'embedQuery');
  } finally {
    await app.close();
  }
});

test('/v1/embeddings: data:image inputs are images, mixed with texts in order; URLs are text and never fetched', { timeout: 60_000 }, async (t) => {
  const clip = await clipPromise;
  let fetched = 0;
  const trap = http.createServer((_req, res) => {
    fetched++;
    res.end();
  });
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(trap.address() as AddressInfo).port}/photo.png`;
  const { app, base } = await start();
  try {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
    const res = await client.embeddings.create({ model: 'm', input: [dataUrl('chelsea.png'), 'coffee', dataUrl('astronaut.png'), url], encoding_format: 'float' });
    const images = await clip.embedImages([fixture('images', 'chelsea.png'), fixture('images', 'astronaut.png')]);
    const texts = await clip.embedTexts(['coffee', url]);
    t.ok(cosine(res.data[0].embedding, images.row(0)) >= MIN_COSINE, 'input 0: the image');
    t.ok(cosine(res.data[1].embedding, texts.row(0)) >= MIN_COSINE, 'input 1: the text');
    t.ok(cosine(res.data[2].embedding, images.row(1)) >= MIN_COSINE, 'input 2: the image');
    t.ok(cosine(res.data[3].embedding, texts.row(1)) >= MIN_COSINE, 'input 3: a URL embedded as its text');
    t.equal(fetched, 0, 'the server made no request to the URL');
  } finally {
    await app.close();
    trap.close();
  }
});

test('/v1/embeddings: errors in OpenAI shape with 400, 413, 429, 503', { timeout: 60_000 }, async (t) => {
  const clip = await clipPromise;
  const { app, base } = await start({ maxItems: 4, maxQueue: 1, maxWaitMs: 1500, maxTextChars: 1000, maxRequestTextChars: 2000 });
  const url = `${base}/v1/embeddings`;
  const shaped = (body: any) => typeof body?.error?.message === 'string' && typeof body.error.type === 'string' && typeof body.error.code === 'string';
  try {
    const cases: [string, unknown, number][] = [
      ['not JSON', '{', 400],
      ['no input', { model: 'm' }, 400],
      ['empty list', { input: [] }, 400],
      ['token ids', { input: [[1, 2, 3]] }, 400],
      ['bad encoding', { input: 'x', encoding_format: 'int8' }, 400],
      ['other dimensions', { input: 'x', dimensions: 8 }, 400],
      ['a broken image', { input: 'data:image/png;base64,AAAA' }, 400],
      ['a non-image data URL', { input: 'data:text/plain;base64,AAAA' }, 400],
      ['too many inputs', { input: ['a', 'b', 'c', 'd', 'e'] }, 413],
      ['a text too long', { input: 'x'.repeat(1001) }, 413],
      ['texts too long together', { input: ['x'.repeat(900), 'x'.repeat(900), 'x'.repeat(900)] }, 413],
    ];
    for (const [name, body, status] of cases) {
      const res = await postJson(url, body);
      t.equal(res.status, status, `${name}: ${status}`);
      t.ok(shaped(res.body), `${name}: {error: {message, type, code}} (${JSON.stringify(res.body).slice(0, 120)})`);
    }
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
    try {
      await client.embeddings.create({ model: 'm', input: 'x', dimensions: 3 });
      t.fail('the client should throw');
    } catch (err) {
      t.ok(err instanceof OpenAI.BadRequestError && err.status === 400 && (err.error as any)?.type === 'invalid_request_error', 'the openai client reads it as a BadRequestError');
    }

    const first = postJson(url, { input: 'waits for its batch' });
    await new Promise((r) => setTimeout(r, 200));
    const full = await postJson(url, { input: 'second' });
    t.equal(full.status, 429, 'queue full: 429');
    t.ok(shaped(full.body) && full.body.error.type === 'rate_limit_error', '429 body is OpenAI-shaped (rate_limit_error)');
    t.ok(full.headers.get('retry-after'), 'with Retry-After');
    const closing = app.shutdown({ graceMs: 5000 });
    const refused = await postJson(url, { input: 'after shutdown began' }).catch(() => undefined);
    if (refused) {
      t.equal(refused.status, 503, 'draining: 503');
      t.ok(shaped(refused.body) && refused.body.error.type === 'server_error', '503 body is OpenAI-shaped');
    } else t.pass('the connection was already closed');
    t.equal((await first).status, 200, 'the accepted request completes');
    await closing;
    void clip;
  } finally {
    await app.close();
  }
});

test('TEI routes: /embed equals Clip.embedTexts; /health; /info; TEI-shaped errors', { timeout: 60_000 }, async (t) => {
  const clip = await clipPromise;
  const { app, base } = await start({ maxItems: 4 });
  try {
    const want = await clip.embedTexts(TEXTS);
    const res = await fetch(`${base}/embed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: TEXTS, normalize: true }) });
    const rows = (await res.json()) as number[][];
    t.equal(res.status, 200);
    t.ok(worstCosine(rows, want) >= MIN_COSINE, `/embed: min cosine ${worstCosine(rows, want).toFixed(7)}`);
    t.ok(/^\d+$/.test(res.headers.get('x-queue-time') ?? '') && /^\d+$/.test(res.headers.get('x-inference-time') ?? ''), 'x-queue-time and x-inference-time headers');
    const one = await postJson(`${base}/embed`, { inputs: 'coffee' });
    t.ok(one.body.length === 1 && cosine(one.body[0], want.row(2)) >= MIN_COSINE, 'a single string');

    const health = await fetch(`${base}/health`);
    t.equal(health.status, 200, '/health 200');
    const info = (await (await fetch(`${base}/info`)).json()) as Record<string, unknown>;
    t.equal(info.model_id, 'xxlarge-tiny', '/info model_id');
    t.equal(info.model_dtype, 'float32', '/info model_dtype');
    t.equal(info.max_client_batch_size, 4, '/info max_client_batch_size');
    t.equal(info.max_input_length, 77, '/info max_input_length');

    const errors: [string, unknown, number][] = [
      ['no inputs', {}, 400],
      ['normalize false', { inputs: 'x', normalize: false }, 400],
      ['too many', { inputs: ['a', 'b', 'c', 'd', 'e'] }, 413],
      ['too long with truncate false', { inputs: 'word '.repeat(100), truncate: false }, 413],
    ];
    for (const [name, body, status] of errors) {
      const r = await postJson(`${base}/embed`, body);
      t.equal(r.status, status, `${name}: ${status}`);
      t.ok(typeof r.body?.error === 'string' && typeof r.body?.error_type === 'string', `${name}: {error, error_type}`);
    }
    const fits = await postJson(`${base}/embed`, { inputs: 'word '.repeat(75), truncate: false });
    t.equal(fits.status, 200, 'truncate false: 75 words (77 tokens with start and end) fit');
    const over = await postJson(`${base}/embed`, { inputs: 'word '.repeat(76), truncate: false });
    t.equal(over.status, 413, 'truncate false: 76 words (78 tokens) do not');
    const truncated = await postJson(`${base}/embed`, { inputs: 'word '.repeat(100) });
    t.equal(truncated.status, 200, 'a long text is truncated to the context by default');
  } finally {
    await app.close();
  }
});

test('openapi.json documents /v1/embeddings, /embed, /health and /info; /v1/search only with a collection', { timeout: 60_000 }, async (t) => {
  const { app, base } = await start();
  try {
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    for (const [p, method] of [['/v1/embeddings', 'post'], ['/embed', 'post'], ['/health', 'get'], ['/info', 'get']] as const) {
      t.ok(doc.paths[p]?.[method], `documents ${method.toUpperCase()} ${p}`);
    }
    t.notOk(doc.paths['/v1/search'], 'no /v1/search without a collection');
    const undocumented = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).filter((m) => !app.hasRoute({ method: m.toUpperCase() as 'GET', url: p.replace(/\{(\w+)\}/g, ':$1') })).map((m) => `${m} ${p}`),
    );
    t.deepEqual(undocumented, [], 'every documented path is a route of the server');
  } finally {
    await app.close();
  }
});
