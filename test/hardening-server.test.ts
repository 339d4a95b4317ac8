/**
 * Issue 18, the server classes, attacked over real loopback HTTP: requests that would stall the event loop
 * (long random words, a huge label), work left running after its answer, slow clients, broken multipart bodies.
 */
import net from 'node:net';
import test from 'tape';
import sharp from 'sharp';
import { Clip } from '../lib/clip.js';
import { fixture } from './helpers/fixtures.js';
import { latencyBound, worstHealthz } from './helpers/latency.js';
import { metric, postJson, request, startServer } from './server-helpers.js';

const clipPromise = Clip.load(fixture('models', 'xxlarge-tiny'), { backend: 'native', threads: 1 });
test.onFinish(async () => (await clipPromise).dispose());

function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomLetters(random: () => number, n: number): string {
  const codes = new Uint8Array(n);
  for (let i = 0; i < n; i++) codes[i] = 97 + Math.floor(random() * 26);
  return Buffer.from(codes).toString('latin1');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


test('hardening: /healthz answers within 100 ms while 40 texts x 16,384 random letters are embedded', async (t) => {
  t.timeoutAfter(120_000);
  const clip = await clipPromise;
  const { app, base } = await startServer(clip);
  try {
    const random = generator(40);
    // A server that has answered once (its code compiled), as a deployed one has.
    t.equal((await postJson(`${base}/v1/embeddings/text`, { texts: [randomLetters(random, 2000), 'warm up'] })).status, 200, 'warm-up request');
    const texts = Array.from({ length: 40 }, () => randomLetters(random, 16_384));
    const t0 = performance.now();
    const answer = postJson(`${base}/v1/embeddings/text`, { texts });
    const { worst, probes, blocked } = await worstHealthz(base, answer);
    const bound = latencyBound(t);
    const a = await answer;
    t.equal(a.status, 200, `answered 200 in ${(performance.now() - t0).toFixed(0)} ms`);
    t.equal(a.body.embeddings?.length, 40, '40 rows');
    t.ok(probes >= 1, `${probes} /healthz probes meanwhile`);
    t.ok(worst < bound, `slowest /healthz ${worst.toFixed(0)} ms (< ${bound.toFixed(0)} ms)`);
    t.ok(blocked < bound, `event loop blocked at most ${blocked.toFixed(0)} ms at a time (< ${bound.toFixed(0)} ms)`);
  } finally {
    await app.close();
  }
});

test('hardening: a 100,000-character label on /v1/classify is refused (413) at once; /healthz stays fast', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await clipPromise;
  const { app, base } = await startServer(clip);
  try {
    const random = generator(100);
    const image = (await import('node:fs')).readFileSync(fixture('images', 'chelsea.png')).toString('base64');
    const t0 = performance.now();
    const answer = postJson(`${base}/v1/classify`, { image, labels: [randomLetters(random, 100_000), 'cat'] });
    const { worst, blocked } = await worstHealthz(base, answer);
    const bound = latencyBound(t);
    const a = await answer;
    t.equal(a.status, 413, `413 in ${(performance.now() - t0).toFixed(0)} ms`);
    t.ok(blocked < bound, `event loop blocked at most ${blocked.toFixed(0)} ms`);
    t.equal(a.body.error.code, 'E_INPUT_TOO_LARGE');
    t.match(a.body.error.message, /labels\[0\] has 100000 characters/, 'names the label');
    t.ok(worst < bound, `slowest /healthz ${worst.toFixed(0)} ms`);

    // A label at the limit is served, the event loop still free; many templates cannot multiply it past the budget.
    const atLimit = postJson(`${base}/v1/classify`, { image, labels: [randomLetters(random, 16_384), 'cat'] });
    const during = await worstHealthz(base, atLimit);
    t.equal((await atLimit).status, 200, 'a 16,384-character label: 200');
    t.ok(during.worst < bound && during.blocked < bound, `slowest /healthz meanwhile ${during.worst.toFixed(0)} ms, event loop blocked at most ${during.blocked.toFixed(0)} ms`);
    const templates = Array.from({ length: 64 }, (_, i) => `${'{}'.repeat(8)} ${i}`);
    const multiplied = await postJson(`${base}/v1/classify`, { image, labels: [randomLetters(random, 16_384)], templates });
    t.equal(multiplied.status, 413, 'labels x templates over the per-request character budget: 413');
    t.match(multiplied.body.error.message, /prompts/);
    const textsOver = await postJson(`${base}/v1/embeddings/text`, { texts: Array.from({ length: 65 }, () => 'a'.repeat(16_384)) });
    t.equal(textsOver.status, 413, '65 texts x 16,384 characters (over 1 MiB in all): 413');
    const multipart = new FormData();
    multipart.append('file', new Blob([Buffer.from(image, 'base64')], { type: 'image/png' }), 'chelsea.png');
    multipart.append('labels', JSON.stringify(['x'.repeat(20_000)]));
    t.equal((await request(`${base}/v1/classify`, { method: 'POST', body: multipart })).status, 413, 'multipart labels are held to the same limit');
  } finally {
    await app.close();
  }
});

test('hardening: a 1,000,000-character word through Clip.embedTexts takes seconds, not minutes', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await clipPromise;
  const word = randomLetters(generator(1), 1_000_000);
  const t0 = performance.now();
  const out = await clip.embedTexts([word]);
  const ms = performance.now() - t0;
  t.equal(out.rows, 1);
  t.ok(ms < 20_000, `${ms.toFixed(0)} ms (the rescan BPE loop took minutes)`);
});

/** A JPEG that is slow to decode (3000 x 3000) but small to send. */
async function heavyJpeg(): Promise<Buffer> {
  const W = 3000;
  const raw = Buffer.alloc(W * W * 3);
  for (let y = 0; y < W; y++) {
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 3;
      raw[o] = x & 255;
      raw[o + 1] = y & 255;
      raw[o + 2] = (x ^ y) & 255;
    }
  }
  return sharp(raw, { raw: { width: W, height: W, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1e6;
}

test('hardening: work nobody waits for stops (a 503 past the deadline, a client that left): CPU after the answer is bounded', async (t) => {
  t.timeoutAfter(180_000);
  const clip = await clipPromise;
  const jpeg = await heavyJpeg();
  const form = () => {
    const f = new FormData();
    for (let i = 0; i < 48; i++) f.append('file', new Blob([new Uint8Array(jpeg)], { type: 'image/jpeg' }), `${i}.jpg`);
    return f;
  };
  // The whole request, to know what it costs.
  let full: number;
  {
    const { app, base } = await startServer(clip, { timeoutMs: 120_000 });
    try {
      const c0 = process.cpuUsage();
      const a = await request(`${base}/v1/embeddings/image`, { method: 'POST', body: form() });
      full = cpuSeconds(c0);
      t.equal(a.status, 200, `the whole request: 200, ${full.toFixed(2)} CPU-s`);
    } finally {
      await app.close();
    }
  }
  const settle = async (): Promise<number> => {
    const c0 = process.cpuUsage();
    await sleep(2500);
    return cpuSeconds(c0);
  };
  {
    const { app, base } = await startServer(clip, { timeoutMs: 300 });
    try {
      const a = await request(`${base}/v1/embeddings/image`, { method: 'POST', body: form() });
      const after = await settle();
      t.equal(a.status, 503, 'past its deadline while preprocessing: 503');
      t.ok(after < Math.max(0.3, 0.25 * full), `CPU in the 2.5 s after the answer: ${after.toFixed(2)} s (the whole request: ${full.toFixed(2)} s)`);
      const m = (await request(`${base}/metrics`)).body as string;
      t.equal(metric(m, 'clip_pending_requests'), 0, 'its admission ticket is back once the work stopped');
    } finally {
      await app.close();
    }
  }
  {
    const { app, base } = await startServer(clip, { timeoutMs: 120_000 });
    try {
      const controller = new AbortController();
      const sent = fetch(`${base}/v1/embeddings/image`, { method: 'POST', body: form(), signal: controller.signal }).catch((e: Error) => e.name);
      await sleep(400);
      controller.abort();
      t.equal(await sent, 'AbortError', 'the client left after 400 ms');
      const after = await settle();
      t.ok(after < Math.max(0.3, 0.25 * full), `CPU in the 2.5 s after it left: ${after.toFixed(2)} s`);
    } finally {
      await app.close();
    }
  }
});

/** A raw connection: writes `head`, then `drip` one byte a second; resolves with what came back and when it closed. */
function slowClient(port: number, head: string, drip: string): Promise<{ closedAfterMs: number; response: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const t0 = performance.now();
    let response = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(head);
      let i = 0;
      timer = setInterval(() => {
        if (i < drip.length && !socket.destroyed) socket.write(drip[i++]);
      }, 1000);
    });
    socket.on('data', (d) => (response += d.toString()));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ closedAfterMs: performance.now() - t0, response });
    });
    setTimeout(() => socket.destroy(), 20_000); // the test's own bound
  });
}

test('hardening: slow clients are cut off (body, headers, silence) within the configured bounds', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await clipPromise;
  const { app, base } = await startServer(clip, { bodyTimeoutMs: 2000, headersTimeoutMs: 1000, idleTimeoutMs: 1500, timeoutMs: 1000 });
  const port = Number(new URL(base).port);
  try {
    const body = JSON.stringify({ texts: ['a slow cat'] });
    const [slowBody, slowHeaders, silent] = await Promise.all([
      slowClient(port, `POST /v1/embeddings/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body),
      slowClient(port, 'POST /v1/embeddings/text HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1234567890123456789012345678901234567890'),
      slowClient(port, '', ''),
    ]);
    t.ok(slowBody.closedAfterMs < 4500, `one body byte a second: cut after ${slowBody.closedAfterMs.toFixed(0)} ms (body timeout 2000 ms)`);
    t.match(slowBody.response, /^HTTP\/1\.1 408/, 'with 408 Request Timeout');
    t.ok(slowHeaders.closedAfterMs < 3500, `one header byte a second: cut after ${slowHeaders.closedAfterMs.toFixed(0)} ms (headers timeout 1000 ms)`);
    t.ok(silent.closedAfterMs < 4000, `a silent connection: closed after ${silent.closedAfterMs.toFixed(0)} ms (idle timeout 1500 ms)`);
    t.equal((await postJson(`${base}/v1/embeddings/text`, { texts: ['a fast cat'] })).status, 200, 'a normal client is served');
  } finally {
    await app.close();
  }
  await startServer(clip, { timeoutMs: 5000, idleTimeoutMs: 5000 }).then(
    ({ app }) => app.close().then(() => t.fail('accepted')),
    (err: { code?: string }) => t.equal(err.code, 'E_INVALID_ARGUMENT', 'idleTimeoutMs <= timeoutMs: E_INVALID_ARGUMENT'),
  );
});

/** Sends a raw HTTP request and returns the status line and body. */
function rawRequest(port: number, path: string, contentType: string, body: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    let out = '';
    socket.on('data', (d) => (out += d.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(out)?.[1] ?? 0);
      const text = out.slice(out.indexOf('\r\n\r\n') + 4);
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      resolve({ status, body: parsed });
    });
    setTimeout(() => socket.destroy(), 10_000);
  });
}

test('hardening: a truncated multipart body, or one without a boundary, is 400 E_INVALID_ARGUMENT', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await clipPromise;
  const { app, base } = await startServer(clip);
  const port = Number(new URL(base).port);
  const png = (await import('node:fs')).readFileSync(fixture('images', 'chelsea.png')).toString('latin1');
  const part = `--B0UND\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n${png}`;
  try {
    const cases: [string, string, string, string][] = [
      ['no boundary parameter', '/v1/embeddings/image', 'multipart/form-data', `${part}\r\n--B0UND--\r\n`],
      ['an empty boundary', '/v1/embeddings/image', 'multipart/form-data; boundary=', `${part}\r\n--B0UND--\r\n`],
      ['cut inside the file', '/v1/embeddings/image', 'multipart/form-data; boundary=B0UND', part.slice(0, 2000)],
      ['cut before the closing boundary', '/v1/embeddings/image', 'multipart/form-data; boundary=B0UND', part],
      ['cut inside the part headers', '/v1/embeddings/image', 'multipart/form-data; boundary=B0UND', '--B0UND\r\nContent-Disposition: form-da'],
      ['not multipart at all', '/v1/embeddings/image', 'multipart/form-data; boundary=B0UND', 'hello'],
      ['classify, cut inside the file', '/v1/classify', 'multipart/form-data; boundary=B0UND', part.slice(0, 5000)],
    ];
    for (const [what, path, type, body] of cases) {
      const a = await rawRequest(port, path, type, body);
      t.equal(a.status, 400, `${what}: 400`);
      t.equal(a.body?.error?.code, 'E_INVALID_ARGUMENT', `${what}: ${a.body?.error?.message}`);
    }
    t.equal((await postJson(`${base}/v1/embeddings/text`, { texts: ['still fine'] })).status, 200, 'the server is unharmed');
  } finally {
    await app.close();
  }
});
