/**
 * One embed-dir run per output: `<out>.lock`, a proper-lockfile lock (an atomic mkdir whose mtime the holder
 * refreshes) with an owner.json inside naming the holder's host and pid. A second run fails at once with
 * E_LOCKED; a lock left by a killed run is taken over at once when its pid is dead on this host, and after
 * STALE_MS without a refresh when it was held from another host.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { ClipError } from '../errors.js';

/** A lock not refreshed for this long is abandoned (the holder refreshes it every STALE_MS / 6). */
export const STALE_MS = 120_000;
const OWNER = 'owner.json';

interface Owner {
  host: string;
  pid: number;
  token: string;
  since: string;
}

export interface OutputLock {
  readonly path: string;
  /** Throws E_LOCKED when another process has taken the lock over (it was stale or removed). */
  check(): void;
  release(): Promise<void>;
}

function readOwner(lockPath: string): Owner | undefined {
  try {
    const owner = JSON.parse(readFileSync(path.join(lockPath, OWNER), 'utf8')) as Owner;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? owner : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // it exists, owned by another user
  }
}

function lockedError(out: string, lockPath: string, owner: Owner | undefined): ClipError {
  const who = owner ? ` (pid ${owner.pid} on ${owner.host}, since ${owner.since})` : '';
  return new ClipError('E_LOCKED', `${out} is being written by another embed-dir run${who}; wait for it to finish or give another --out (lock: ${lockPath})`, { subject: out });
}

/** Removes a lock whose holder is gone: its pid is dead on this host, or it was not refreshed for STALE_MS. */
function clearAbandoned(lockPath: string): void {
  let mtime: number;
  try {
    mtime = statSync(lockPath).mtimeMs;
  } catch {
    return; // no lock
  }
  const owner = readOwner(lockPath);
  const dead = owner !== undefined && owner.host === hostname() && owner.pid !== process.pid && !alive(owner.pid);
  if (dead || Date.now() - mtime > STALE_MS) rmSync(lockPath, { recursive: true, force: true });
}

/** Takes the lock of `out` or throws E_LOCKED naming the holder. */
export async function lockOutput(out: string): Promise<OutputLock> {
  const lockPath = `${out}.lock`;
  clearAbandoned(lockPath);
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(out, {
      realpath: false,
      lockfilePath: lockPath,
      stale: STALE_MS,
      update: STALE_MS / 6,
      retries: 0,
      // A missed refresh (a long synchronous stretch) is not fatal: check() asks whether the owner is still us.
      onCompromised: () => undefined,
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED' || (err as NodeJS.ErrnoException).code === 'ENOTEMPTY') throw lockedError(out, lockPath, readOwner(lockPath));
    throw new ClipError('E_IO', `cannot lock ${out} (${lockPath}): ${(err as Error).message}`, { subject: out, cause: err });
  }
  const me: Owner = { host: hostname(), pid: process.pid, token: randomUUID(), since: new Date().toISOString() };
  writeFileSync(path.join(lockPath, OWNER), JSON.stringify(me));
  return {
    path: lockPath,
    check() {
      const owner = readOwner(lockPath);
      if (owner?.token !== me.token) throw lockedError(out, lockPath, owner);
    },
    async release() {
      if (readOwner(lockPath)?.token !== me.token) return; // taken over: not ours to remove
      try {
        unlinkSync(path.join(lockPath, OWNER));
        await release();
      } catch {
        rmSync(lockPath, { recursive: true, force: true });
      }
    },
  };
}
