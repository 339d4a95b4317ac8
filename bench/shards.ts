/**
 * embed-shards throughput: one worker process (all cores) vs two worker processes (one core each) on the same
 * shards, run in interleaved rounds; with the static split (`--shard i/n`) and, when bullmq + ioredis are
 * installed, through the queue on a local redis-server. Also the queue's own cost per shard: jobs on empty
 * shards (nothing to embed) through a worker, against the same empty shards embedded without the queue.
 *
 *   node --import tsx bench/shards.ts [--model DIR] [--shards 8] [--samples 24] [--rounds 3] [--empty 40]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Clip } from '../lib/clip.js';
import { embedShards } from '../lib/shards/index.js';
import { fixture, projectRoot } from '../test/helpers/fixtures.js';
import { startRedis } from '../test/helpers/redis.js';
import { writeShard, writeTar } from '../test/helpers/webdataset.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: fixture('models', 'xxlarge-deep256') },
    shards: { type: 'string', default: '8' },
    samples: { type: 'string', default: '24' },
    rounds: { type: 'string', default: '3' },
    empty: { type: 'string', default: '40' },
    batch: { type: 'string', default: '8' },
  },
});
const SHARDS = Number(args.shards);
const SAMPLES = Number(args.samples);
const ROUNDS = Number(args.rounds);
const EMPTY = Number(args.empty);
const BATCH = args.batch!;
const PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'china.jpg', 'rocket.jpg', 'camera.png', 'progressive.jpg', 'logo.png'];

const work = mkdtempSync(path.join(tmpdir(), 'bench-shards-'));
const bin = path.join(projectRoot, 'lib', 'bin.ts');

/** Runs the CLI; resolves with the seconds it reports embedding (after its model load). */
function run(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', bin, ...argv], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.once('exit', (code) => (code === 0 ? resolve(reportedSeconds(stderr)) : reject(new Error(`${argv.slice(0, 2).join(' ')} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`))));
  });
}

/** embed-shards' summary line ("... in 12.3 s ->"), or the sum of queue work's per-partition lines. */
function reportedSeconds(stderr: string): number {
  const summary = /samples embedded \(\d+ skipped\) in ([\d.]+) s ->/.exec(stderr);
  if (summary) return Number(summary[1]);
  return [...stderr.matchAll(/samples in ([\d.]+) s/g)].reduce((a, m) => a + Number(m[1]), 0);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const shardDir = path.join(work, 'shards');
  mkdirSync(shardDir);
  const shards: string[] = [];
  for (let s = 0; s < SHARDS; s++) {
    const file = path.join(shardDir, `${String(s).padStart(5, '0')}.tar`);
    await writeShard(file, Array.from({ length: SAMPLES }, (_, i) => {
      const name = PHOTOS[(s + i) % PHOTOS.length];
      return { key: `${s}-${i}`, members: { [name.endsWith('.png') ? 'png' : 'jpg']: readFileSync(fixture('images', name)), txt: `photo ${i} of shard ${s}: ${name}` } };
    }));
    shards.push(file);
  }
  const emptyFile = path.join(work, 'empty', '00000.tar');
  mkdirSync(path.dirname(emptyFile));
  await writeTar(emptyFile, []);
  const model = ['--model', args.model!, '--backend', 'native', '--batch', BATCH];
  const total = SHARDS * SAMPLES;
  const hasQueue = (() => {
    try {
      createRequire(import.meta.url).resolve('ioredis');
      createRequire(import.meta.url).resolve('bullmq');
      return true;
    } catch {
      return false;
    }
  })();
  const redis = hasQueue ? await startRedis() : undefined;
  let outId = 0;
  const out = () => path.join(work, `out-${outId++}`);

  /** go() resolves with the embedding seconds (the slowest worker's, model load excluded). */
  type Mode = { name: string; go: () => Promise<number> };
  const modes: Mode[] = [
    { name: 'startup (1 empty shard)', go: () => run(['embed-shards', emptyFile, '--out', out(), ...model, '--threads', '2']) },
    { name: 'static, 1 worker x 2 threads', go: () => run(['embed-shards', shardDir, '--out', out(), ...model, '--threads', '2']) },
    {
      name: 'static, 2 workers x 1 thread',
      go: async () => {
        const o = out();
        return Math.max(...(await Promise.all([0, 1].map((i) => run(['embed-shards', shardDir, '--out', o, ...model, '--threads', '1', '--shard', `${i}/2`])))));
      },
    },
  ];
  if (redis) {
    let q = 0;
    const queueRun = async (workers: number, threads: string) => {
      const name = `bench-${q++}`;
      const o = out();
      await run(['queue', 'add', shardDir, '--root', shardDir, '--redis', redis.url, '--queue', name]);
      return Math.max(...(await Promise.all(Array.from({ length: workers }, () => run(['queue', 'work', '--redis', redis.url, '--queue', name, '--root', shardDir, '--out', o, ...model, '--threads', threads, '--until-empty'])))));
    };
    modes.push({ name: 'queue, 1 worker x 2 threads', go: () => queueRun(1, '2') }, { name: 'queue, 2 workers x 1 thread', go: () => queueRun(2, '1') });
  }

  const times = new Map<string, number[]>(modes.map((m) => [m.name, []]));
  const embedding = new Map<string, number[]>(modes.map((m) => [m.name, []]));
  const loads: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const m of modes) {
      loads.push(loadavg()[0]);
      let seconds = 0;
      times.get(m.name)!.push(await timed(async () => (seconds = await m.go())));
      embedding.get(m.name)!.push(seconds);
    }
  }
  const startup = median(times.get(modes[0].name)!);
  console.log(`\n${SHARDS} shards x ${SAMPLES} samples (${total}), model ${path.basename(args.model!)}, batch ${BATCH}; ${ROUNDS} interleaved rounds, medians; ${cpus().length} x ${cpus()[0]?.model}; load (1-min) median ${median(loads).toFixed(1)}, max ${Math.max(...loads).toFixed(1)}\n`);
  console.log('| mode | wall s, with process start + model load | samples/s (wall) | embedding s (slowest worker, after load) | samples/s (embedding) | embedding speed vs static 1 worker |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  const base = median(embedding.get(modes[1].name)!);
  for (const m of modes.slice(1)) {
    const wall = median(times.get(m.name)!);
    const emb = median(embedding.get(m.name)!);
    console.log(`| ${m.name} | ${wall.toFixed(2)} | ${(total / wall).toFixed(1)} | ${emb.toFixed(2)} | ${(total / emb).toFixed(1)} | ${(base / emb).toFixed(2)}x |`);
  }
  console.log(`| startup only: process + model load + 1 empty shard | ${startup.toFixed(2)} | | | | |`);

  if (redis) {
    // The queue's own cost per shard: K empty shards through one in-process worker vs embedShards on them.
    const { addShardJobs, runQueueWorker } = await import('../lib/queue/index.js');
    const emptyDir = path.join(work, 'empties');
    mkdirSync(emptyDir);
    const empties: string[] = [];
    for (let i = 0; i < EMPTY; i++) {
      const file = path.join(emptyDir, `${String(i).padStart(5, '0')}.tar`);
      await writeTar(file, []);
      empties.push(file);
    }
    const clip = await Clip.load(args.model!, { backend: 'native', threads: 1 });
    const direct: number[] = [];
    const queued: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      direct.push((await timed(() => embedShards(clip, { shards: empties, out: out() }))) / EMPTY);
      const name = `empty-${r}`;
      await addShardJobs(empties, { redis: redis.url, queue: name, root: emptyDir });
      let first = 0;
      let last = 0;
      await runQueueWorker(clip, {
        redis: redis.url, queue: name, root: emptyDir, out: out(), untilEmpty: true,
        onEvent: (e) => {
          if (e.event === 'start' && first === 0) first = performance.now();
          if (e.event === 'done') last = performance.now();
        },
      });
      queued.push((last - first) / 1000 / (EMPTY - 1));
    }
    clip.dispose();
    const d = median(direct) * 1000;
    const qd = median(queued) * 1000;
    console.log(`\n| empty shards (${EMPTY}) | ms per shard (median of ${ROUNDS}) |`);
    console.log('| --- | ---: |');
    console.log(`| embedShards, no queue | ${d.toFixed(2)} |`);
    console.log(`| through the queue (take job, run, complete) | ${qd.toFixed(2)} |`);
    console.log(`| queue overhead per shard | ${(qd - d).toFixed(2)} (${(qd / d).toFixed(1)}x) |`);
    await redis.stop();
  } else {
    console.log('\nqueue rows not run: bullmq + ioredis are not both installed');
  }
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => rmSync(work, { recursive: true, force: true }));
