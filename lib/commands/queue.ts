/** `convnext-clip queue add|work|status`: shards spread over any number of workers by BullMQ on Redis. */
import type { Command } from 'commander';
import { DEFAULT_QUEUE, DEFAULT_REDIS, addShardJobs, queueStatus, redactUrl, runQueueWorker } from '../queue/index.js';
import { type ModelFlags, loadModel, modelOptions, nonNegativeInt, positiveInt } from './options.js';

interface QueueFlags {
  redis: string;
  queue: string;
  root?: string;
}

function queueOptions(cmd: Command): Command {
  return cmd
    .option('--redis <url>', 'Redis URL (default $CONVNEXT_CLIP_REDIS, else redis://127.0.0.1:6379)', process.env.CONVNEXT_CLIP_REDIS ?? DEFAULT_REDIS)
    .option('--queue <name>', 'queue name', DEFAULT_QUEUE);
}

function duration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return 'unknown';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.round(seconds)} s`;
}

export function registerQueueCommands(program: Command): void {
  const queue = program.command('queue').description('embed webdataset shards on many machines: a BullMQ queue on Redis, one job per shard');

  queueOptions(queue.command('add').description('queue one job per shard (a partition already queued is left as it is)').argument('<shards...>', 'shard files (.tar), or folders holding them'))
    .option('--root <dir>', 'jobs name shards relative to this folder; give workers the same folder as seen on their machine (default: .)')
    .option('--attempts <n>', 'tries per job when embedding fails', positiveInt, 3)
    .option('--backoff-ms <n>', 'wait before the first retry (doubles after)', nonNegativeInt, 10_000)
    .action(async (shards: string[], flags: QueueFlags & { attempts: number; backoffMs: number }) => {
      const result = await addShardJobs(shards, { redis: flags.redis, queue: flags.queue, root: flags.root, attempts: flags.attempts, backoff: flags.backoffMs });
      process.stderr.write(`convnext-clip: queued ${result.added} shards on ${redactUrl(flags.redis)} (${flags.queue}); ${result.present} were already queued\n`);
    });

  modelOptions(queueOptions(queue.command('work').description('take shard jobs until stopped (or until the queue is empty) and write their partitions')))
    .requiredOption('--out <dir>', 'output folder (img_emb/, text_emb/, metadata/); shared by all workers')
    .option('--root <dir>', 'the folder shard paths in jobs are relative to (default: .)')
    .option('--batch <n>', 'samples per forward pass', positiveInt, 16)
    .option('--no-text', 'image embeddings only')
    .option('--max-pixels <n>', 'skip images with more pixels', positiveInt)
    .option('--max-member-bytes <n>', 'skip samples with a tar member over this size (default 64 MiB)', positiveInt)
    .option('--lock-ms <n>', "a job's lock without renewal (renewed every half of it)", positiveInt, 60_000)
    .option('--stalled-ms <n>', "how often to look for jobs whose worker died", positiveInt, 30_000)
    .option('--max-stalled <n>', 'stalls a job may have before it fails', positiveInt, 2)
    .option('--until-empty', 'exit once nothing is waiting or running')
    .option('--events', 'print one JSON line per event on stdout (start, batch, skip, done, failed, stalled)')
    .action(async (flags: QueueFlags & ModelFlags & { out: string; batch: number; text: boolean; maxPixels?: number; maxMemberBytes?: number; lockMs: number; stalledMs: number; maxStalled: number; untilEmpty?: boolean; events?: boolean }) => {
      const clip = await loadModel(flags);
      const controller = new AbortController();
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        if (++signals > 1) process.exit(130); // a second signal: leave now, the job goes back via the stalled check
        process.stderr.write(`convnext-clip: ${signal}: finishing the current shard, then stopping (again to stop now)\n`);
        controller.abort(new Error(signal));
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const result = await runQueueWorker(clip, {
          redis: flags.redis,
          queue: flags.queue,
          root: flags.root,
          out: flags.out,
          batchSize: flags.batch,
          text: flags.text,
          maxPixels: flags.maxPixels,
          maxMemberBytes: flags.maxMemberBytes,
          lockDuration: flags.lockMs,
          stalledInterval: flags.stalledMs,
          maxStalledCount: flags.maxStalled,
          untilEmpty: flags.untilEmpty,
          signal: controller.signal,
          onEvent: (e) => {
            if (flags.events) process.stdout.write(`${JSON.stringify(e)}\n`);
            if (e.event === 'done') process.stderr.write(`convnext-clip: partition ${e.result.partition}: ${e.result.existing ? 'already complete' : `${e.result.embedded} of ${e.result.samples} samples in ${e.result.seconds.toFixed(2)} s`}\n`);
            else if (e.event === 'failed') process.stderr.write(`convnext-clip: job ${e.job} failed (attempt ${e.attempts}): ${e.error}\n`);
            else if (e.event === 'error') process.stderr.write(`convnext-clip: queue: ${e.error}\n`);
          },
        });
        process.stderr.write(`convnext-clip: worker stopped: ${result.completed} shards done, ${result.failed} failed for good\n`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        clip.dispose();
      }
    });

  queueOptions(queue.command('status').description('jobs done / running / waiting / failed, with rates over the last minutes'))
    .option('--window <seconds>', 'the rates are over the jobs finished in this window', positiveInt, 600)
    .option('--json', 'print JSON')
    .action(async (flags: QueueFlags & { window: number; json?: boolean }) => {
      const s = await queueStatus({ redis: flags.redis, queue: flags.queue, windowSeconds: flags.window });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      const lines = [
        `${flags.queue} on ${redactUrl(flags.redis)}: ${s.total} shards`,
        `  done ${s.done}, running ${s.running}, waiting ${s.waiting}, failed ${s.failed}`,
        `  last ${duration(s.rate.windowSeconds)}: ${s.rate.shardsPerMinute.toFixed(2)} shards/min, ${s.rate.samplesPerSecond.toFixed(1)} samples/s; ETA ${duration(s.etaSeconds)}`,
        ...s.active.map((a) => `  running ${a.shard} on ${a.worker ?? '?'}${a.samples === undefined ? '' : `, ${a.samples} samples so far`}`),
        ...s.failures.map((f) => `  failed ${f.shard} after ${f.attempts} attempts: ${f.reason}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
