/**
 * Issue 18 class 1 on the OpenAI- and TEI-compatible routes, over real loopback HTTP: a request of long random
 * words must not stall /healthz, and the per-request text total is enforced (413 in each route's error shape).
 */
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { fixture } from './helpers/fixtures.js';
import { latencyBound, worstHealthz } from './helpers/latency.js';
import { postJson, startServer } from './server-helpers.js';

const clipPromise = Clip.load(fixture('models', 'xxlarge-tiny'), { backend: 'native', threads: 1 });
test.onFinish(async () => (await clipPromise).dispose());

function randomLetters(seed: number, n: number): string {
  let s = seed >>> 0;
  const codes = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    codes[i] = 97 + Math.floor((s / 2 ** 32) * 26);
  }
  return Buffer.from(codes).toString('latin1');
}


for (const [r, route] of (['/v1/embeddings', '/embed'] as const).entries()) {
  test(`hardening: /healthz answers within 100 ms while ${route} embeds 40 texts x 16,384 random letters`, async (t) => {
    t.timeoutAfter(150_000);
    const clip = await clipPromise;
    const { app, base } = await startServer(clip);
    const body = (texts: string[]) => (route === '/embed' ? { inputs: texts } : { input: texts, model: 'x' });
    try {
      t.equal((await postJson(`${base}${route}`, body([randomLetters(1, 2000), 'warm up']))).status, 200, 'warm-up request');
      const texts = Array.from({ length: 40 }, (_, i) => randomLetters(1000 * (r + 1) + i, 16_384));
      const t0 = performance.now();
      const answer = postJson(`${base}${route}`, body(texts));
      const { worst, probes, blocked } = await worstHealthz(base, answer);
      const bound = latencyBound(t);
      const a = await answer;
      t.equal(a.status, 200, `answered 200 in ${(performance.now() - t0).toFixed(0)} ms`);
      const rows = route === '/embed' ? a.body : a.body.data;
      t.equal(rows?.length, 40, '40 rows');
      if (route === '/v1/embeddings') {
        const ctx = clip.arch.text.contextLength;
        t.equal(a.body.usage.prompt_tokens, 40 * ctx, `usage counts the truncated rows: 40 x ${ctx} tokens`);
      }
      t.ok(probes >= 1, `${probes} /healthz probes meanwhile`);
      t.ok(worst < bound, `slowest /healthz ${worst.toFixed(0)} ms (< ${bound.toFixed(0)} ms)`);
      t.ok(blocked < bound, `event loop blocked at most ${blocked.toFixed(0)} ms at a time (< ${bound.toFixed(0)} ms)`);
    } finally {
      await app.close();
    }
  });
}

test('hardening: texts over the per-request total are 413 at once, in OpenAI and TEI shapes', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await clipPromise;
  const { app, base } = await startServer(clip);
  try {
    // 65 x 16,384 characters: each text within its limit, together over the default 1 MiB.
    const texts = Array.from({ length: 65 }, () => 'a'.repeat(16_384));
    const t0 = performance.now();
    const openai = await postJson(`${base}/v1/embeddings`, { input: texts, model: 'x' });
    const ms = performance.now() - t0;
    t.equal(openai.status, 413, `/v1/embeddings: 413 in ${ms.toFixed(0)} ms`);
    t.equal(openai.body?.error?.code, 'E_INPUT_TOO_LARGE', 'OpenAI shape: error.code');
    t.equal(openai.body?.error?.type, 'invalid_request_error', 'OpenAI shape: error.type');
    t.equal(typeof openai.body?.error?.message, 'string', 'OpenAI shape: error.message');
    const tei = await postJson(`${base}/embed`, { inputs: texts });
    t.equal(tei.status, 413, '/embed: 413');
    t.equal(tei.body?.error_type, 'Validation', 'TEI shape: error_type');
    const one = await postJson(`${base}/v1/embeddings`, { input: 'a'.repeat(16_385) });
    t.equal(one.status, 413, 'one text of 16,385 characters: 413');
    const fits = await postJson(`${base}/v1/embeddings`, { input: texts.slice(0, 64) });
    t.equal(fits.status, 200, '64 x 16,384 characters (exactly 1 MiB): 200');
  } finally {
    await app.close();
  }
});

test('hardening: maxRequestTextChars is honoured by /v1/embeddings and /embed', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await clipPromise;
  const { app, base } = await startServer(clip, { maxTextChars: 100, maxRequestTextChars: 250 });
  try {
    const three = ['x'.repeat(90), 'x'.repeat(90), 'x'.repeat(90)];
    t.equal((await postJson(`${base}/v1/embeddings`, { input: three })).status, 413, '/v1/embeddings: 270 > 250 characters: 413');
    t.equal((await postJson(`${base}/embed`, { inputs: three })).status, 413, '/embed: 270 > 250 characters: 413');
    t.equal((await postJson(`${base}/v1/embeddings`, { input: three.slice(0, 2) })).status, 200, '180 characters: 200');
    t.equal((await postJson(`${base}/v1/embeddings`, { input: 'x'.repeat(101) })).status, 413, 'one text over maxTextChars: 413');
  } finally {
    await app.close();
  }
});
