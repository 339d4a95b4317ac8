/** `queue add`: one job per shard, keyed by its partition number so a partition is never queued twice. */
import { expandShards } from '../shards/embed-shards.js';
import { partitionNumbers } from '../shards/index.js';
import { ClipError } from '../errors.js';
import { DEFAULT_QUEUE, closeBounded, connectionOptions, loadBullmq, reachable } from './connection.js';
import { type ShardJob, jobId, relativeShard } from './jobs.js';

export interface QueueAddOptions {
  redis: string;
  queue?: string;
  /** Shard paths are stored relative to this folder (default: the working directory); workers get their own. */
  root?: string;
  /** Tries per job when embedding throws (default 3); a worker that dies is handled by the stalled check. */
  attempts?: number;
  /** Milliseconds before the first retry, doubling after (default 10000). */
  backoff?: number;
}

export interface QueueAddResult {
  added: number;
  /** Already queued (or done) for the same shard. */
  present: number;
  jobs: { id: string; shard: string; partition: number; added: boolean }[];
}

export async function addShardJobs(shards: readonly string[], options: QueueAddOptions): Promise<QueueAddResult> {
  const root = options.root ?? process.cwd();
  const files = await expandShards(shards);
  const numbers = partitionNumbers(files);
  const jobs: ShardJob[] = files.map((f, i) => ({ shard: relativeShard(root, f), partition: numbers[i] }));
  const { Queue } = await loadBullmq();
  const queue = new Queue<ShardJob>(options.queue ?? DEFAULT_QUEUE, { connection: connectionOptions(options.redis) });
  try {
    await reachable(queue.waitUntilReady(), options.redis);
    const result: QueueAddResult = { added: 0, present: 0, jobs: [] };
    for (const data of jobs) {
      const id = jobId(data.partition);
      const existing = await queue.getJob(id);
      if (existing) {
        if (existing.data.shard !== data.shard) {
          throw new ClipError('E_INVALID_ARGUMENT', `partition ${data.partition} is already queued for ${existing.data.shard}, not ${data.shard} (a partition holds one shard)`);
        }
        result.present++;
        result.jobs.push({ id, ...data, added: false });
        continue;
      }
      await queue.add('embed-shard', data, {
        jobId: id,
        attempts: options.attempts ?? 3,
        backoff: { type: 'exponential', delay: options.backoff ?? 10_000 },
        removeOnComplete: false,
        removeOnFail: false,
      });
      result.added++;
      result.jobs.push({ id, ...data, added: true });
    }
    return result;
  } finally {
    await closeBounded(queue);
  }
}
