/**
 * HTTP load test of `serve` on loopback with autocannon, against the fixture model xxlarge-deep256: throughput
 * and p50/p99 latency at 1, 8 and 32 connections with batching on (with and without max-wait) and off, for the text endpoint and the image
 * endpoint (a small PNG); then a bounded soak (N text requests) sampling the server's RSS every second.
 * Writes the tables to bench/LOAD.md.
 * Run: node --import tsx bench/load.ts [--duration 5] [--soak 20000] [--threads 1] [--max-batch 16] [--max-wait-ms 5] [--repeat 2]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = process.env.CONVNEXT_CLIP_FIXTURES ? path.resolve(process.env.CONVNEXT_CLIP_FIXTURES) : path.resolve(root, '..', 'shared', 'fixtures');
const model = path.join(fixtures, 'models', 'xxlarge-deep256');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const duration = arg('duration', 5);
const soakRequests = arg('soak', 20_000);
const threads = arg('threads', 1);
const maxWaitMs = arg('max-wait-ms', 5); // the "on + wait" configuration
const maxBatch = arg('max-batch', 16);
const repeat = arg('repeat', 2);
const CONCURRENCY = [1, 8, 32];

interface Server {
  child: ChildProcess;
  base: string;
}

async function startServer(options: Record<string, number>): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'load-server.ts'), model, String(threads), JSON.stringify(options)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`load-server exited with ${code}`)));
  });
  return { child, base: `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}` };
}

async function stopServer(server: Server): Promise<void> {
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  await exited;
}

/** Rows, forward passes and forward-pass seconds of a tower so far, from /metrics. */
async function batchCounters(base: string, tower: string): Promise<{ rows: number; passes: number; seconds: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*tower="${tower}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { rows: value('clip_batch_rows_sum'), passes: value('clip_batch_rows_count'), seconds: value('clip_forward_seconds_sum') };
}

interface Row {
  endpoint: string;
  batching: string;
  connections: number;
  rps: number;
  p50: number;
  p99: number;
  meanBatch: number;
  /** Milliseconds of forward pass per row (image or text). */
  msPerRow: number;
  non2xx: number;
}

/** Waits until the server has no request in flight (a finished run's last requests may still be running). */
async function idle(base: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const text = await (await fetch(`${base}/metrics`)).text();
    if (/^clip_in_flight_requests 0$/m.test(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function measure(server: Server, endpoint: 'text' | 'image', body: Buffer | string, contentType: string, connections: number, seconds: number): Promise<Omit<Row, 'batching'>> {
  const url = `${server.base}/v1/embeddings/${endpoint}`;
  const opts = { url, method: 'POST' as const, headers: { 'content-type': contentType }, body };
  await autocannon({ ...opts, connections, duration: 1 }); // warm-up
  await idle(server.base);
  const before = await batchCounters(server.base, endpoint);
  const r = await autocannon({ ...opts, connections, duration: seconds });
  await idle(server.base);
  const after = await batchCounters(server.base, endpoint);
  const passes = after.passes - before.passes;
  return { endpoint, connections, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, meanBatch: passes > 0 ? (after.rows - before.rows) / passes : 0, msPerRow: after.rows > before.rows ? (1000 * (after.seconds - before.seconds)) / (after.rows - before.rows) : 0, non2xx: r.non2xx + r.errors + r.timeouts };
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

const png = await sharp({ create: { width: 96, height: 96, channels: 3, background: { r: 200, g: 120, b: 40 }, noise: { type: 'gaussian', mean: 128, sigma: 30 } } })
  .png()
  .toBuffer();
const textBody = JSON.stringify({ texts: ['a photo of a cat sitting on a red sofa'] });
const load0 = loadavg()[0];
const rows: Row[] = [];
// Both servers stay up; cells alternate on/off so that the machine's load (shared) affects both alike.
const CONFIGS = ['on', 'on+wait', 'off'] as const;
type Config = (typeof CONFIGS)[number];
const servers: Record<Config, Server> = {
  on: await startServer({ maxBatch, maxWaitMs: 0, maxQueue: 1024 }),
  'on+wait': await startServer({ maxBatch, maxWaitMs, maxQueue: 1024 }),
  off: await startServer({ maxBatch: 1, maxWaitMs: 0, maxQueue: 1024 }),
};
try {
  for (const [endpoint, body, type] of [
    ['text', textBody, 'application/json'],
    ['image', png, 'image/png'],
  ] as const) {
    for (const c of CONCURRENCY) {
      const runs: Record<Config, Omit<Row, 'batching'>[]> = { on: [], 'on+wait': [], off: [] };
      for (let r = 0; r < repeat; r++) {
        for (const batching of CONFIGS) runs[batching].push(await measure(servers[batching], endpoint, body, type, c, endpoint === 'image' ? 2 * duration : duration));
      }
      for (const batching of CONFIGS) {
        const rs = runs[batching];
        const avg = (f: (x: Omit<Row, 'batching'>) => number) => rs.reduce((a, x) => a + f(x), 0) / rs.length;
        const row: Row = { endpoint, batching, connections: c, rps: avg((x) => x.rps), p50: avg((x) => x.p50), p99: Math.max(...rs.map((x) => x.p99)), meanBatch: avg((x) => x.meanBatch), msPerRow: avg((x) => x.msPerRow), non2xx: rs.reduce((a, x) => a + x.non2xx, 0) };
        rows.push(row);
        process.stderr.write(`${endpoint} batching ${batching} c=${c}: ${row.rps.toFixed(0)} req/s p50 ${row.p50} ms p99 ${row.p99} ms, mean batch ${row.meanBatch.toFixed(1)}, ${row.msPerRow.toFixed(1)} ms/row (${rs.map((x) => x.rps.toFixed(0)).join(', ')})\n`);
      }
    }
  }
} finally {
  for (const server of Object.values(servers)) await stopServer(server);
}

// Soak: a fixed number of text requests, RSS of the server sampled every second.
const server = await startServer({ maxBatch, maxWaitMs: 0, maxQueue: 1024 });
const soakOptions = { url: `${server.base}/v1/embeddings/text`, method: 'POST' as const, headers: { 'content-type': 'application/json' }, body: textBody, connections: 8 };
const rssCold = rssOf(server.child.pid!);
await autocannon({ ...soakOptions, amount: 5000 }); // warm-up: JIT, heap growth to its working size
const rss: number[] = [rssOf(server.child.pid!)];
const sampler = setInterval(() => rss.push(rssOf(server.child.pid!)), 1000);
const t0 = performance.now();
const soak = await autocannon({ ...soakOptions, amount: soakRequests });
const soakSeconds = (performance.now() - t0) / 1000;
clearInterval(sampler);
rss.push(rssOf(server.child.pid!));
await stopServer(server);

const half = Math.floor(rss.length / 2);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const soakSummary = {
  requests: soak.requests.total,
  non2xx: soak.non2xx + soak.errors,
  seconds: soakSeconds,
  rss,
  firstHalf: mean(rss.slice(0, Math.max(1, half))),
  secondHalf: mean(rss.slice(half)),
};

const cpu = cpus()[0]?.model ?? 'unknown CPU';
const lines = [
  '# Load test: `serve` on loopback (bench/load.ts)',
  '',
  `Model: fixture \`xxlarge-deep256\` (ConvNeXt-XXLarge layout, depths 3-4-30-3 at 256 px; 24-layer text tower), native backend, fp32, ${threads} engine thread(s).`,
  `Machine: ${cpu}, ${availableParallelism()} cores shared with autocannon (same machine); load average ${load0.toFixed(1)} at start, ${loadavg()[0].toFixed(1)} at the end. ${duration} s per text cell, ${2 * duration} s per image cell, each after a 1 s warm-up; the three servers run side by side and their cells alternate, ${repeat} times each: req/s and p50 are the mean of the runs, p99 the worst.`,
  `Batching on: --max-batch ${maxBatch} --max-wait-ms 0 (the default: a pass starts when the engine is free; requests arriving meanwhile join the next); on+wait: --max-batch ${maxBatch} --max-wait-ms ${maxWaitMs}; off: --max-batch 1. Text body: one 9-word text; image body: a 96x96 PNG (${png.length} bytes).`,
  '"mean batch" is rows per forward pass and "fwd ms/row" the forward-pass time per row, both from /metrics.',
  '',
  '| endpoint | batching | clients | req/s | p50 ms | p99 ms | mean batch | fwd ms/row | non-2xx |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.endpoint} | ${r.batching} | ${r.connections} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(0)} | ${r.p99} | ${r.meanBatch.toFixed(1)} | ${r.msPerRow.toFixed(1)} | ${r.non2xx} |`),
  '',
  `## Soak: ${soakSummary.requests} text requests, 8 clients, batching on`,
  '',
  `After 5000 warm-up requests (RSS ${rssCold.toFixed(0)} MiB before them). ${soakSummary.seconds.toFixed(1)} s, ${soakSummary.non2xx} non-2xx. Server RSS (MiB) sampled every second:`,
  '',
  `- start ${rss[0].toFixed(0)}, min ${Math.min(...rss).toFixed(0)}, max ${Math.max(...rss).toFixed(0)}, end ${rss[rss.length - 1].toFixed(0)}`,
  `- mean of the first half ${soakSummary.firstHalf.toFixed(0)}, of the second half ${soakSummary.secondHalf.toFixed(0)} (${(soakSummary.secondHalf - soakSummary.firstHalf >= 0 ? '+' : '') + (soakSummary.secondHalf - soakSummary.firstHalf).toFixed(1)} MiB)`,
  `- samples: ${rss.map((x) => x.toFixed(0)).join(' ')}`,
  '',
];
writeFileSync(path.join(root, 'bench', 'LOAD.md'), `${lines.join('\n')}`);
process.stdout.write(`${lines.join('\n')}`);
