/** `queue status`: jobs done / running / waiting / failed, and the rates of the last minutes. */
import type { Job, JobType } from 'bullmq';
import { DEFAULT_QUEUE, closeBounded, connectionOptions, loadBullmq, reachable } from './connection.js';
import type { ShardJob, ShardJobResult } from './jobs.js';

export interface QueueStatus {
  total: number;
  done: number;
  running: number;
  waiting: number;
  failed: number;
  /** The first 1000 running and failed jobs. Rates: over the completed jobs that finished in the last `windowSeconds`. */
  rate: { windowSeconds: number; shardsPerMinute: number; samplesPerSecond: number };
  /** Seconds to finish the waiting and running jobs at that rate (null when there is no rate). */
  etaSeconds: number | null;
  active: { id: string; shard: string; worker?: string; samples?: number; since: number | null }[];
  failures: { id: string; shard: string; reason: string; attempts: number }[];
}

const PAGE = 500;

type Getter = { getJobs(types: JobType[], start: number, end: number, asc?: boolean): Promise<Job<ShardJob>[]> };

async function jobsOf(queue: Getter, type: JobType, limit: number): Promise<Job<ShardJob>[]> {
  const out: Job<ShardJob>[] = [];
  for (let start = 0; out.length < limit; start += PAGE) {
    const page = await queue.getJobs([type], start, start + PAGE - 1);
    out.push(...page.filter((j) => j !== undefined && j !== null));
    if (page.length < PAGE) break;
  }
  return out.slice(0, limit);
}

/** Completed jobs that finished after `since`, newest first (the completed set is ordered by finish time). */
async function completedSince(queue: Getter, since: number): Promise<Job<ShardJob>[]> {
  const out: Job<ShardJob>[] = [];
  for (let start = 0; ; start += PAGE) {
    const page = (await queue.getJobs(['completed'], start, start + PAGE - 1, false)).filter((j) => j !== undefined && j !== null);
    for (const job of page) {
      if ((job.finishedOn ?? 0) < since) return out;
      out.push(job);
    }
    if (page.length < PAGE) return out;
  }
}

export async function queueStatus(options: { redis: string; queue?: string; windowSeconds?: number; now?: number }): Promise<QueueStatus> {
  const { Queue } = await loadBullmq();
  const queue = new Queue<ShardJob>(options.queue ?? DEFAULT_QUEUE, { connection: connectionOptions(options.redis) });
  try {
    await reachable(queue.waitUntilReady(), options.redis);
    const counts = await queue.getJobCounts('completed', 'active', 'waiting', 'delayed', 'prioritized', 'failed');
    const windowSeconds = options.windowSeconds ?? 600;
    const now = options.now ?? Date.now();
    const recent = await completedSince(queue, now - windowSeconds * 1000);
    const samples = recent.reduce((n, j) => n + ((j.returnvalue as ShardJobResult | undefined)?.samples ?? 0), 0);
    // the window starts at the earliest start among them when that is later (a run younger than the window)
    const since = Math.max(now - windowSeconds * 1000, recent.reduce((a, j) => Math.min(a, j.processedOn ?? now), now));
    const seconds = Math.max((now - since) / 1000, 1e-3);
    const shardsPerMinute = recent.length === 0 ? 0 : (recent.length / seconds) * 60;
    const waiting = counts.waiting + counts.delayed + counts.prioritized;
    const active = (await jobsOf(queue, 'active', 1000)).map((j) => {
      const progress = (typeof j.progress === 'object' ? j.progress : {}) as { worker?: string; samples?: number };
      return { id: j.id ?? '', shard: j.data.shard, worker: progress.worker, samples: progress.samples, since: j.processedOn ?? null };
    });
    const failures = (await jobsOf(queue, 'failed', 1000)).map((j) => ({ id: j.id ?? '', shard: j.data.shard, reason: j.failedReason, attempts: j.attemptsMade }));
    return {
      total: counts.completed + counts.active + waiting + counts.failed,
      done: counts.completed,
      running: counts.active,
      waiting,
      failed: counts.failed,
      rate: { windowSeconds, shardsPerMinute, samplesPerSecond: recent.length === 0 ? 0 : samples / seconds },
      etaSeconds: shardsPerMinute > 0 ? ((waiting + counts.active) / shardsPerMinute) * 60 : null,
      active,
      failures,
    };
  } finally {
    await closeBounded(queue);
  }
}
