/**
 * queue add / work / status on a real Redis started here: 8 shards, 2 worker processes, one SIGKILLed in the
 * middle of a shard; every partition is written exactly once and the output equals a one-process run's bytes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { checkJob, checkRedisUrl, redactUrl, relativeShard, runShardJob } from '../lib/queue/index.js';
import { embedShards } from '../lib/shards/index.js';
import { fixture, projectRoot } from './helpers/fixtures.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { type ShardSample, writeShard } from './helpers/webdataset.js';

const PHOTOS = ['astronaut.png', 'camera.png', 'chelsea.png', 'china.jpg', 'coffee.png', 'gray.jpg', 'logo.png', 'palette.png', 'progressive.jpg', 'rocket.jpg', 'tiny_3x2.png', 'wide_900x120.jpg', 'exif_rot6.jpg'];
const MODEL = fixture('models', 'xxlarge-tiny');

function installed(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

test('queue jobs: shard paths from Redis are checked before they become files', (t) => {
  const root = '/data/shards';
  t.deepEqual(checkJob({ shard: 'a/00001.tar', partition: 1 }, root), { shard: 'a/00001.tar', file: '/data/shards/a/00001.tar', partition: 1 });
  for (const shard of ['../etc/x.tar', '/abs/00001.tar', 'a/../../b.tar', 'a//b.tar', './a.tar', 'a.txt', 'a\\..\\b.tar', 'a\0.tar', '', 42]) {
    t.throws(() => checkJob({ shard, partition: 1 }, root), /job shard/, `refused: ${JSON.stringify(shard)}`);
  }
  for (const partition of [-1, 1.5, '3', null, 2 ** 60]) t.throws(() => checkJob({ shard: 'a.tar', partition }, root), /partition/, `refused partition ${JSON.stringify(partition)}`);
  t.throws(() => checkJob(null, root), /partition/);
  t.equal(relativeShard('/data', '/data/x/00001.tar'), 'x/00001.tar');
  t.throws(() => relativeShard('/data', '/elsewhere/00001.tar'), /not inside the shard root/);
  t.throws(() => checkRedisUrl('http://x:1'), /redis/);
  t.equal(redactUrl('redis://user:secret@host:6379/0'), 'redis://user:***@host:6379/0');
  t.end();
});

test('a queue job (no Redis needed): embeds its shard once; a rerun finds the partition complete; bad data touches no file', async (t) => {
  t.timeoutAfter(120_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'queue-job-'));
  const clip = await Clip.load(MODEL, { backend: 'native', threads: 1 });
  try {
    mkdirSync(path.join(dir, 'shards', 'sub'), { recursive: true });
    await writeShard(path.join(dir, 'shards', 'sub', '00004.tar'), PHOTOS.slice(0, 3).map((name, i) => ({ key: `k${i}`, members: { [name.endsWith('.png') ? 'png' : 'jpg']: readFileSync(fixture('images', name)), txt: name } })));
    const options = { root: path.join(dir, 'shards'), out: path.join(dir, 'out'), batchSize: 2 };
    const batches: number[] = [];
    const first = await runShardJob(clip, { shard: 'sub/00004.tar', partition: 4 }, options, { batch: (p) => batches.push(p.samples) });
    t.deepEqual({ partition: first.partition, samples: first.samples, embedded: first.embedded, existing: first.existing }, { partition: 4, samples: 3, embedded: 3, existing: false });
    t.deepEqual(batches, [2, 3], 'progress per batch');
    const metadata = path.join(dir, 'out', 'metadata', 'metadata_4.parquet');
    const before = readFileSync(metadata);
    const again = await runShardJob(clip, { shard: 'sub/00004.tar', partition: 4 }, options);
    t.ok(again.existing && again.embedded === 3, 'the job run again (its worker died after the commit) only reports the partition');
    t.ok(readFileSync(metadata).equals(before), 'and leaves it as it was');
    const invalid = await runShardJob(clip, { shard: '../../etc/passwd.tar', partition: 1 }, options, { invalid: (m) => new RangeError(m) }).catch((e: unknown) => e);
    t.ok(invalid instanceof RangeError && /relative path/.test(invalid.message), 'a path out of the root is refused as invalid job data');
    t.notOk(existsSync(path.join(dir, 'out', 'metadata', 'metadata_1.parquet')), 'nothing written for it');
    const missing = await runShardJob(clip, { shard: 'sub/00009.tar', partition: 9 }, options).catch((e: unknown) => e);
    t.match(String((missing as Error).message), /no shard/, 'a shard this machine does not see: an error (the job is retried)');
  } finally {
    clip.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

const ready = installed('bullmq') && installed('ioredis');
if (!ready) {
  test('queue with a real Redis', (t) => {
    t.skip('SKIPPED: the optional packages bullmq and ioredis are not both installed (BullMQ cannot reach Redis without ioredis)');
    t.end();
  });
} else {
  let redis: TestRedis | undefined;
  const work = mkdtempSync(path.join(tmpdir(), 'queue-'));
  const children = new Set<ChildProcess>();
  test.onFinish(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await redis?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs the CLI; resolves with its exit code and output (events are JSON lines on stdout). */
  function cli(args: string[], onLine?: (line: string, child: ChildProcess) => void): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> } {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'lib', 'bin.ts'), ...args], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) onLine?.(line, child);
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
    return { child, done };
  }

  function layout(out: string): Map<string, Buffer> {
    const files = new Map<string, Buffer>();
    for (const dir of ['img_emb', 'text_emb', 'metadata']) {
      if (!existsSync(path.join(out, dir))) continue;
      for (const name of readdirSync(path.join(out, dir)).sort()) files.set(`${dir}/${name}`, readFileSync(path.join(out, dir, name)));
    }
    return files;
  }

  async function makeShards(dir: string, count: number, perShard: number): Promise<string[]> {
    mkdirSync(dir, { recursive: true });
    const files: string[] = [];
    for (let s = 0; s < count; s++) {
      const samples: ShardSample[] = Array.from({ length: perShard }, (_, i) => {
        const name = PHOTOS[(s * perShard + i) % PHOTOS.length];
        const key = `${String(s).padStart(5, '0')}${String(i).padStart(4, '0')}`;
        const image = s === 2 && i === 1 ? Buffer.from('broken') : readFileSync(fixture('images', name));
        return { key, members: { [name.endsWith('.png') ? 'png' : 'jpg']: image, txt: `shard ${s} photo ${name}`, json: JSON.stringify({ key, url: `https://example.com/${s}/${i}` }) } };
      });
      const file = path.join(dir, `${String(s).padStart(5, '0')}.tar`);
      await writeShard(file, samples);
      files.push(file);
    }
    return files;
  }

  test('queue: 8 shards, 2 workers, one SIGKILLed mid-shard: each partition once, bytes of a one-process run', async (t) => {
    t.timeoutAfter(240_000);
    redis = await startRedis();
    const shardDir = path.join(work, 'shards');
    const shards = await makeShards(shardDir, 8, 6);

    const clip = await Clip.load(MODEL, { backend: 'native', threads: 1 });
    const refOut = path.join(work, 'one-process');
    try {
      await embedShards(clip, { shards, out: refOut, batchSize: 2 });
    } finally {
      clip.dispose();
    }
    const reference = layout(refOut);
    t.equal(reference.size, 24, 'the one-process run wrote 8 partitions x 3 files');

    const added = await cli(['queue', 'add', shardDir, '--redis', redis.url, '--root', shardDir]).done;
    t.equal(added.code, 0, `queue add: ${added.stderr.trim()}`);
    const again = await cli(['queue', 'add', ...shards, '--redis', redis.url, '--root', shardDir]).done;
    t.match(again.stderr, /queued 0 shards.*8 were already queued/, 'adding the same shards again queues nothing');

    const out = path.join(work, 'queue-out');
    const workerArgs = ['queue', 'work', '--redis', redis.url, '--root', shardDir, '--out', out, '--model', MODEL, '--backend', 'native', '--threads', '1', '--batch', '2', '--lock-ms', '2000', '--stalled-ms', '500', '--max-stalled', '3', '--until-empty', '--events'];
    type Event = { event: string; job?: string; partition?: number; samples?: number; result?: { partition: number; existing: boolean } };
    const events: Record<'a' | 'b', Event[]> = { a: [], b: [] };
    let killedJob: string | undefined;
    const a = cli(workerArgs, (line, child) => {
      const e = JSON.parse(line) as Event;
      events.a.push(e);
      if (killedJob === undefined && e.event === 'batch' && (e.samples ?? 0) < 6) {
        killedJob = e.job;
        child.kill('SIGKILL'); // in the middle of a shard: its first batch is done, two are not
      }
    });
    const b = cli(workerArgs, (line) => events.b.push(JSON.parse(line) as Event));
    const [ra, rb] = await Promise.all([a.done, b.done]);
    t.equal(ra.signal, 'SIGKILL', 'worker A was killed');
    t.equal(rb.code, 0, `worker B finished the queue and exited: ${rb.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    t.ok(killedJob !== undefined, `A was killed in job ${killedJob}`);

    const doneJobs = [...events.a, ...events.b].filter((e) => e.event === 'done').map((e) => e.job);
    t.deepEqual([...doneJobs].sort(), Array.from({ length: 8 }, (_, i) => `partition-${i}`).sort(), 'each of the 8 jobs completed exactly once');
    t.ok(events.b.some((e) => e.event === 'stalled' && e.job === killedJob), "B's stalled check returned the dead worker's job");
    t.ok(events.b.some((e) => e.event === 'done' && e.job === killedJob), 'and B then did it');
    t.ok(events.a.length > 0 && events.b.some((e) => e.event === 'done' && e.job !== killedJob), 'both workers took jobs');

    const got = layout(out);
    t.deepEqual([...got.keys()], [...reference.keys()], 'the same 24 files: one partition per shard, none twice');
    const differing = [...reference].filter(([name, bytes]) => !got.get(name)?.equals(bytes)).map(([name]) => name);
    t.deepEqual(differing, [], 'every file byte-identical to the one-process run');

    const status = await cli(['queue', 'status', '--redis', redis.url, '--json']).done;
    const s = JSON.parse(status.stdout) as { total: number; done: number; running: number; waiting: number; failed: number; rate: { samplesPerSecond: number } };
    t.deepEqual({ total: s.total, done: s.done, running: s.running, waiting: s.waiting, failed: s.failed }, { total: 8, done: 8, running: 0, waiting: 0, failed: 0 }, 'queue status: all done');
    t.ok(s.rate.samplesPerSecond > 0, `status rate ${s.rate.samplesPerSecond.toFixed(1)} samples/s`);
    const text = await cli(['queue', 'status', '--redis', redis.url]).done;
    t.match(text.stdout, /done 8, running 0, waiting 0, failed 0/, 'human-readable status');
  });

  test('queue: the lock is renewed while a long shard runs (lock 0.5 s, a shard of seconds)', async (t) => {
    t.timeoutAfter(180_000);
    if (!redis) redis = await startRedis();
    const dir = path.join(work, 'long');
    const [file] = await makeShards(dir, 1, 200); // long enough to outlast the lock several times on a fast machine
    const queue = 'long-shard';
    const add = await cli(['queue', 'add', file, '--redis', redis.url, '--root', dir, '--queue', queue]).done;
    t.equal(add.code, 0);
    const events: { event: string; result?: { seconds: number } }[] = [];
    const w = await cli(['queue', 'work', '--redis', redis.url, '--queue', queue, '--root', dir, '--out', path.join(work, 'long-out'), '--model', fixture('models', 'xxlarge-deep256'), '--backend', 'native', '--threads', '1', '--batch', '8', '--lock-ms', '500', '--stalled-ms', '200', '--max-stalled', '1', '--until-empty', '--events'], (line) => events.push(JSON.parse(line))).done;
    t.equal(w.code, 0, 'the worker exited cleanly');
    const done = events.filter((e) => e.event === 'done');
    t.equal(done.length, 1, 'the job completed once');
    t.ok((done[0]?.result?.seconds ?? 0) > 1, `the shard took ${done[0]?.result?.seconds.toFixed(1)} s, more than twice the lock`);
    t.notOk(events.some((e) => e.event === 'stalled' || e.event === 'failed'), 'it never stalled nor failed');
  });

  test('queue work: an unreachable Redis is a typed error, not a hang', async (t) => {
    t.timeoutAfter(60_000);
    const r = await cli(['queue', 'status', '--redis', 'redis://127.0.0.1:1']).done;
    t.notEqual(r.code, 0);
    t.match(r.stderr, /E_NETWORK/, r.stderr.trim());
  });
}
