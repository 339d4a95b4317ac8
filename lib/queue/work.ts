/**
 * A queue worker: takes one shard job at a time, embeds the shard into its partition (committed atomically),
 * then completes the job. Inference runs in the native engine's own threads, so the event loop stays free and
 * BullMQ keeps renewing the job's lock; a worker that dies stops renewing it, and another worker's stalled-job
 * check puts the job back in the queue.
 */
import { hostname } from 'node:os';
import type { Job } from 'bullmq';
import type { Clip } from '../clip.js';
import { ClipError } from '../errors.js';
import { type ShardProgress, type SkippedSample, embedShard } from '../shards/index.js';
import { DEFAULT_QUEUE, closeBounded, connectionOptions, loadBullmq, reachable } from './connection.js';
import { type ShardJobResult, checkJob } from './jobs.js';

export interface QueueWorkOptions {
  redis: string;
  queue?: string;
  /** Shard paths in jobs are relative to this folder (default: the working directory). */
  root?: string;
  /** The output folder (img_emb/, text_emb/, metadata/). */
  out: string;
  batchSize?: number;
  text?: boolean;
  maxPixels?: number;
  maxMemberBytes?: number;
  /** How long a job's lock lasts without renewal (ms, default 60000); renewed at half of it. */
  lockDuration?: number;
  /** How often stalled jobs (their worker died) are looked for (ms, default 30000). */
  stalledInterval?: number;
  /** Times a job may stall before it fails (default 2). */
  maxStalledCount?: number;
  /** Stop when nothing is waiting, delayed or running (default: keep waiting for jobs). */
  untilEmpty?: boolean;
  /** Stops taking jobs; the running one finishes first. */
  signal?: AbortSignal;
  onEvent?(event: WorkerEvent): void;
}

export type WorkerEvent =
  | { event: 'start'; job: string; partition: number; shard: string }
  | ({ event: 'batch'; job: string } & ShardProgress)
  | { event: 'skip'; job: string; partition: number; sample: SkippedSample }
  | { event: 'done'; job: string; result: ShardJobResult }
  | { event: 'failed'; job: string; error: string; attempts: number }
  | { event: 'stalled'; job: string }
  | { event: 'error'; error: string };

export interface QueueWorkResult {
  completed: number;
  failed: number;
}

export function workerName(): string {
  return `${hostname()}:${process.pid}`;
}

/**
 * One job: checks its data (it comes from Redis), embeds its shard into its partition, or finds the partition
 * already complete (a worker that died between committing it and completing the job).
 */
export async function runShardJob(
  clip: Clip,
  data: unknown,
  options: Pick<QueueWorkOptions, 'out' | 'batchSize' | 'text' | 'maxPixels' | 'maxMemberBytes'> & { root: string },
  on: { start?(partition: number, shard: string): void; batch?(p: ShardProgress): void; skip?(partition: number, s: SkippedSample): void; invalid?(message: string): Error } = {},
): Promise<ShardJobResult> {
  let checked: ReturnType<typeof checkJob>;
  try {
    checked = checkJob(data, options.root);
  } catch (err) {
    throw on.invalid?.((err as Error).message) ?? err;
  }
  on.start?.(checked.partition, checked.shard);
  const started = Date.now();
  const result = await embedShard(clip, checked.file, checked.partition, options.out, {
    batchSize: options.batchSize,
    text: options.text,
    maxPixels: options.maxPixels,
    maxMemberBytes: options.maxMemberBytes,
    onBatch: (p) => on.batch?.({ ...p, shard: checked.shard }),
    onSkip: (sample) => on.skip?.(checked.partition, sample),
  });
  return { partition: checked.partition, samples: result.samples, embedded: result.embedded, skipped: result.skipped, existing: result.existing === true, seconds: (Date.now() - started) / 1000, worker: workerName() };
}

export async function runQueueWorker(clip: Clip, options: QueueWorkOptions): Promise<QueueWorkResult> {
  const { Worker, Queue, UnrecoverableError } = await loadBullmq();
  const queueName = options.queue ?? DEFAULT_QUEUE;
  const root = options.root ?? process.cwd();
  const emit = options.onEvent ?? (() => undefined);
  const me = workerName();
  const tally: QueueWorkResult = { completed: 0, failed: 0 };

  const process_ = async (job: Job): Promise<ShardJobResult> => {
    const id = job.id ?? '';
    return runShardJob(clip, job.data, { ...options, root }, {
      start: (partition, shard) => emit({ event: 'start', job: id, partition, shard }),
      batch: (p) => {
        emit({ event: 'batch', job: id, ...p });
        job.updateProgress({ samples: p.samples, embedded: p.embedded, skipped: p.skipped, worker: me }).catch(() => undefined);
      },
      skip: (partition, sample) => emit({ event: 'skip', job: id, partition, sample }),
      invalid: (message) => new UnrecoverableError(message), // bad job data: retrying cannot help
    });
  };

  const lockDuration = options.lockDuration ?? 60_000;
  const worker = new Worker(queueName, process_, {
    connection: connectionOptions(options.redis),
    concurrency: 1,
    autorun: false,
    lockDuration,
    stalledInterval: options.stalledInterval ?? 30_000,
    maxStalledCount: options.maxStalledCount ?? 2,
    drainDelay: 1,
  });
  const queue = options.untilEmpty ? new Queue(queueName, { connection: connectionOptions(options.redis) }) : undefined;
  worker.on('completed', (job, result: ShardJobResult) => {
    tally.completed++;
    emit({ event: 'done', job: job.id ?? '', result });
  });
  worker.on('failed', (job, err) => {
    if (job && (job.attemptsMade >= (job.opts.attempts ?? 1) || err instanceof UnrecoverableError)) tally.failed++; // no retry left
    emit({ event: 'failed', job: job?.id ?? '', error: err.message, attempts: job?.attemptsMade ?? 0 });
  });
  worker.on('stalled', (jobId) => emit({ event: 'stalled', job: jobId }));
  worker.on('error', (err) => emit({ event: 'error', error: err.message }));

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= worker.close()); // waits for the running job
  options.signal?.addEventListener('abort', () => void stop(), { once: true });
  let poll: NodeJS.Timeout | undefined;
  try {
    await reachable(worker.waitUntilReady(), options.redis);
    if (queue) await reachable(queue.waitUntilReady(), options.redis);
    const running = worker.run();
    if (queue) {
      // Empty means nothing waiting, delayed or running anywhere (a dead worker's job counts as running until
      // the stalled check returns it), so the last workers wait for it.
      const check = async () => {
        if (stopping) return;
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        const left = Object.values(counts).reduce((a, b) => a + b, 0);
        if (left === 0) await stop();
        else schedule();
      };
      const schedule = () => {
        poll = setTimeout(() => void check().catch((err: Error) => (emit({ event: 'error', error: err.message }), schedule())), 500);
      };
      schedule();
    }
    await running;
    return tally;
  } catch (err) {
    if (err instanceof ClipError) throw err;
    throw new ClipError('E_NETWORK', `queue worker: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(poll);
    if (stopping) await stopping.catch(() => undefined);
    else await closeBounded(worker);
    if (queue) await closeBounded(queue);
  }
}
