/** `convnext-clip serve` as a process: binds 127.0.0.1, serves, and drains on SIGTERM without losing work. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import test from 'tape';
import { fixture, projectRoot } from './helpers/fixtures.js';
import { postJson, request } from './server-helpers.js';

const ENTRY = path.join(projectRoot, 'test', 'server-cli-entry.ts');

function serve(...args: string[]): { child: ChildProcess; base: Promise<string>; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'serve', '--model', fixture('models', 'xxlarge-tiny'), '--backend', 'native', '--threads', '1', '--port', '0', ...args], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
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
  return { child, base, stderr: () => err, exit };
}

test('serve: SIGTERM drains accepted requests (all 200), refuses new ones (503), exits 0', async (t) => {
  const server = serve('--max-wait-ms', '1500');
  const base = await server.base;
  t.match(base, /^http:\/\/127\.0\.0\.1:\d+$/, 'binds to 127.0.0.1 by default');
  t.equal((await request(`${base}/readyz`)).status, 200, 'ready');
  const accepted = Array.from({ length: 5 }, (_, i) => postJson(`${base}/v1/embeddings/text`, { texts: [`request ${i}`] }));
  // all five wait in the batch queue (max-wait 1500 ms): 5 requests in flight
  for (let i = 0; i < 200; i++) {
    const m = (await request(`${base}/metrics`)).body as string;
    if (m.includes('clip_in_flight_requests 5')) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  server.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 100));
  const refused = await postJson(`${base}/v1/embeddings/text`, { texts: ['too late'] }).catch(() => ({ status: 0, body: undefined }));
  t.equal(refused.status, 503, 'new work refused while draining');
  const answers = await Promise.all(accepted);
  t.deepEqual(
    answers.map((a) => a.status),
    [200, 200, 200, 200, 200],
    'every accepted request completed',
  );
  t.ok(answers.every((a) => a.body.embeddings[0].length === 32));
  t.equal(await server.exit, 0, 'exit code 0');
  t.match(server.stderr(), /SIGTERM: draining/, 'says it is draining');
  t.match(server.stderr(), /stopped/, 'and that it stopped');
});

test('serve: bad options exit non-zero with a message', async (t) => {
  const server = serve('--max-batch', '0');
  t.notEqual(await server.exit, 0);
  t.ok(/max-batch/.test(server.stderr()), 'names the option');
});
