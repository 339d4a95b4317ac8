/**
 * What a queue job holds: one shard, as a path relative to the shard root, and its partition number. Jobs
 * come from Redis, which any machine can write to, so a worker checks them before it touches a file.
 */
import path from 'node:path';
import { ClipError } from '../errors.js';

export interface ShardJob {
  /** '/'-separated, relative to the root every worker is given; ends in .tar. */
  shard: string;
  partition: number;
}

/** What a finished job returns (kept in Redis for `queue status`). */
export interface ShardJobResult {
  partition: number;
  samples: number;
  embedded: number;
  skipped: number;
  /** Already complete when the job ran (a worker died after committing it). */
  existing: boolean;
  seconds: number;
  worker: string;
}

/** The job id of a partition: BullMQ keeps one job per id, so a partition is queued once. */
export function jobId(partition: number): string {
  return `partition-${partition}`;
}

/** The shard's path relative to `root`, refusing one outside it. */
export function relativeShard(root: string, shard: string): string {
  const relative = path.relative(path.resolve(root), path.resolve(shard));
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new ClipError('E_INVALID_ARGUMENT', `${shard} is not inside the shard root ${root} (--root)`, { subject: shard });
  }
  return relative.split(path.sep).join('/');
}

/** Checks job data read from Redis and resolves its shard under `root`. */
export function checkJob(data: unknown, root: string): { shard: string; file: string; partition: number } {
  const job = data as Partial<ShardJob> | null;
  const shard = job?.shard;
  const partition = job?.partition;
  if (typeof partition !== 'number' || !Number.isSafeInteger(partition) || partition < 0) throw new ClipError('E_INVALID_ARGUMENT', `job partition must be a non-negative integer, got ${JSON.stringify(partition)}`);
  if (typeof shard !== 'string' || shard.length === 0 || shard.length > 4096 || shard.includes('\0') || shard.includes('\\')) {
    throw new ClipError('E_INVALID_ARGUMENT', `job shard must be a relative path, got ${JSON.stringify(shard)?.slice(0, 200)}`);
  }
  const parts = shard.split('/');
  if (shard.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..') || !shard.toLowerCase().endsWith('.tar')) {
    throw new ClipError('E_INVALID_ARGUMENT', `job shard must be a relative path to a .tar inside the root, got ${JSON.stringify(shard).slice(0, 200)}`);
  }
  return { shard, file: path.join(path.resolve(root), ...parts), partition };
}
