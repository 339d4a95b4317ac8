/**
 * Issue 18, class 7: `serve --grace-ms` is honoured. An idle keep-alive connection (or a request still queued
 * when the grace period ends) must not hold the process after SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import test from 'tape';
import { fixture, projectRoot } from './helpers/fixtures.js';

const ENTRY = process.env.SERVE_ENTRY ?? path.join(projectRoot, 'test', 'server-cli-entry.ts');

function serve(...args: string[]): { child: ChildProcess; base: Promise<string>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'serve', '--model', fixture('models', 'xxlarge-tiny'), '--backend', 'native', '--threads', '1', '--port', '0', ...args], {
    cwd: projectRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const base = new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(err);
      if (m) resolve(m[1]);
    });
    child.once('exit', () => reject(new Error(`serve exited early: ${err}`)));
  });
  base.catch(() => {});
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const guard = setTimeout(() => child.kill('SIGKILL'), 90_000); // never outlive the test
  void exit.then(() => clearTimeout(guard));
  return { child, base, exit };
}

/** A request on a keep-alive agent; resolves with the status once the body is read (the socket stays open). */
function keepAliveRequest(agent: http.Agent, url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Milliseconds from SIGTERM to exit, or Infinity past `boundMs` (then the process is killed). */
async function exitAfterSigterm(server: ReturnType<typeof serve>, boundMs: number): Promise<{ ms: number; code: number | null }> {
  const t0 = performance.now();
  server.child.kill('SIGTERM');
  const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), boundMs));
  const outcome = await Promise.race([server.exit, timer]);
  if (outcome === 'late') {
    server.child.kill('SIGKILL');
    await server.exit;
    return { ms: Number.POSITIVE_INFINITY, code: null };
  }
  return { ms: performance.now() - t0, code: outcome };
}

test('serve --grace-ms 100: an idle keep-alive client does not hold the process after SIGTERM', async (t) => {
  t.timeoutAfter(120_000);
  const server = serve('--grace-ms', '100');
  const base = await server.base;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    t.equal(await keepAliveRequest(agent, `${base}/v1/embeddings/text`, JSON.stringify({ texts: ['a cat'] })), 200, 'served over a keep-alive connection');
    t.equal(agent.freeSockets[Object.keys(agent.freeSockets)[0]]?.length, 1, 'the connection is idle and kept alive');
    const { ms, code } = await exitAfterSigterm(server, 15_000);
    t.ok(ms < 2000, `exited ${ms.toFixed(0)} ms after SIGTERM (bound 2000 ms)`);
    t.equal(code, 0, 'exit code 0');
  } finally {
    agent.destroy();
  }
});

test('serve --grace-ms 100: a request still queued when the grace period ends is cut, and the process exits', async (t) => {
  t.timeoutAfter(120_000);
  const server = serve('--grace-ms', '100', '--max-wait-ms', '20000');
  const base = await server.base;
  const agent = new http.Agent({ keepAlive: true });
  try {
    const queued = keepAliveRequest(agent, `${base}/v1/embeddings/text`, JSON.stringify({ texts: ['waits for a batch'] })).catch((e: NodeJS.ErrnoException) => e.code ?? 'error');
    await new Promise((r) => setTimeout(r, 300)); // in the batch queue for 20 s
    const { ms, code } = await exitAfterSigterm(server, 15_000);
    t.ok(ms < 2000, `exited ${ms.toFixed(0)} ms after SIGTERM (bound 2000 ms)`);
    t.equal(code, 0, 'exit code 0');
    t.equal(await queued, 'ECONNRESET', 'the unfinished request lost its connection');
  } finally {
    agent.destroy();
  }
});

test('serve --grace-ms 5000: a keep-alive request finishing during the drain does not keep its connection open', async (t) => {
  t.timeoutAfter(120_000);
  const server = serve('--grace-ms', '5000', '--max-wait-ms', '500');
  const base = await server.base;
  const agent = new http.Agent({ keepAlive: true });
  try {
    t.equal(await keepAliveRequest(agent, `${base}/v1/embeddings/text`, JSON.stringify({ texts: ['warm'] })), 200, 'a first request opens the keep-alive connection');
    const inFlight = keepAliveRequest(agent, `${base}/v1/embeddings/text`, JSON.stringify({ texts: ['in flight at SIGTERM'] }));
    await new Promise((r) => setTimeout(r, 100)); // queued for its batch (500 ms)
    const exited = exitAfterSigterm(server, 15_000);
    t.equal(await inFlight, 200, 'the accepted request completes');
    const { ms, code } = await exited;
    t.ok(ms < 2500, `exited ${ms.toFixed(0)} ms after SIGTERM (the request took ~500 ms; bound 2500 ms)`);
    t.equal(code, 0, 'exit code 0');
  } finally {
    agent.destroy();
  }
});
