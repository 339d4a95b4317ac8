/**
 * One downloader per blob across processes: a proper-lockfile lock (an atomic mkdir, kept fresh while held and
 * taken over once stale, so a killed process does not block others for long). Waiters poll; they give up only
 * when neither the lock is released nor the holder's `.incomplete` file grows for `timeoutMs`.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import lockfile from 'proper-lockfile';
import { HubError } from './errors.js';

export interface LockWait {
  /** Give up after this long without the holder making progress. */
  timeoutMs: number;
  pollMs?: number;
  /** Stop waiting (and take no lock) once this is true: another process finished the blob. */
  isDone(): boolean;
  /** A file whose growth shows the holder is alive (the `.incomplete` download). */
  watchFile: string;
  onWait?(bytes: number): void;
}

export type Release = () => Promise<void>;

const STALE_MS = 30_000;

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}

/** Takes the lock at `lockPath`, or returns 'done' if `isDone()` became true while waiting. */
export async function acquireLock(lockPath: string, wait: LockWait): Promise<Release | 'done'> {
  mkdirSync(path.dirname(lockPath), { recursive: true });
  const pollMs = wait.pollMs ?? 200;
  let lastSize = sizeOf(wait.watchFile);
  let lastProgress = Date.now();
  for (;;) {
    try {
      const release = await lockfile.lock(lockPath, {
        realpath: false,
        lockfilePath: lockPath,
        stale: STALE_MS,
        retries: 0,
        // A lost lock is not fatal: the blob is verified before it is renamed into place.
        onCompromised: () => undefined,
      });
      return async () => {
        try {
          await release();
        } catch {
          /* already released or taken over */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    }
    if (wait.isDone()) return 'done';
    const size = sizeOf(wait.watchFile);
    if (size !== lastSize) {
      lastSize = size;
      lastProgress = Date.now();
    }
    wait.onWait?.(Math.max(size, 0));
    if (Date.now() - lastProgress > wait.timeoutMs) {
      throw new HubError('lock-timeout', `gave up waiting for another process downloading ${wait.watchFile.replace(/\.incomplete$/, '')}: no progress for ${Math.round(wait.timeoutMs / 1000)} s (lock ${lockPath}; remove it if no download is running)`, {
        subject: lockPath,
      });
    }
    await sleep(pollMs * (0.75 + Math.random() * 0.5));
  }
}
