/**
 * Downloads one blob into the cache: under a per-blob lock, into blobs/<etag>.incomplete (resuming with an HTTP
 * Range from whatever is already there), checking size and digest, then renamed atomically to blobs/<etag>.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import type { Hash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RepoCache } from './cache.js';
import { HubError } from './errors.js';
import { type FileMetadata, type HttpContext, TransientError, backoffMs, isRetryableStatus, isTransient, networkError, openDownload, statusError } from './http.js';
import { type Digest, expectedDigest, hashPrefix, newHash } from './integrity.js';
import { acquireLock } from './lock.js';
import { ProgressMeter, type ProgressCallback } from './progress.js';

export interface BlobDownload {
  ctx: HttpContext;
  cache: RepoCache;
  meta: FileMetadata;
  onProgress?: ProgressCallback;
  lockTimeoutMs: number;
}

/** The digest did not match: the bytes are wrong, not the connection. */
class DigestMismatch extends Error {}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Makes blobs/<etag> exist and match; returns whether this process downloaded it. */
export async function ensureBlob(job: BlobDownload): Promise<'cached' | 'downloaded'> {
  const { cache, meta } = job;
  const blob = cache.blobPath(meta.etag);
  if (existsSync(blob)) return 'cached';
  mkdirSync(cache.blobsDir, { recursive: true });
  const incomplete = cache.incompletePath(meta.etag);
  const meter = new ProgressMeter({ repoId: cache.repoId, file: meta.file, total: meta.size }, job.onProgress);
  const lock = await acquireLock(cache.lockPath(meta.etag), {
    timeoutMs: job.lockTimeoutMs,
    isDone: () => existsSync(blob),
    watchFile: incomplete,
    onWait: (bytes) => meter.set(bytes, 'waiting'),
  });
  if (lock === 'done') {
    meter.done();
    return 'cached';
  }
  try {
    if (existsSync(blob)) return 'cached'; // finished by another process just before we got the lock
    for (let attempt = 1; ; attempt++) {
      try {
        await downloadInto(job, incomplete, meter);
        break;
      } catch (err) {
        if (!(err instanceof DigestMismatch)) throw err;
        await rm(incomplete, { force: true }); // the bytes on disk are wrong: start over once
        if (attempt >= 2) {
          throw new HubError('integrity', `${meta.file} of ${cache.repoId} failed verification twice: ${err.message}`, { subject: meta.file });
        }
      }
    }
    await rename(incomplete, blob);
    meter.done();
    return 'downloaded';
  } finally {
    await lock();
  }
}

interface Progress {
  pos: number;
  hash: Hash | undefined;
  readonly digest: Digest;
}

/** Fills `incomplete` up to meta.size (resuming) and checks its size and digest. */
async function downloadInto(job: BlobDownload, incomplete: string, meter: ProgressMeter): Promise<void> {
  const { ctx, meta } = job;
  const digest = expectedDigest(meta.etag);
  const state: Progress = { pos: sizeOf(incomplete), hash: newHash(digest, meta.size), digest };
  if (state.pos > meta.size) state.pos = 0;
  if (state.hash && state.pos > 0) await hashPrefix(state.hash, incomplete, state.pos, (n) => meter.set(n, 'verifying'));
  const handle = await open(incomplete, existsSync(incomplete) ? 'r+' : 'w');
  try {
    await handle.truncate(state.pos);
    let failures = 0;
    while (state.pos < meta.size) {
      const before = state.pos;
      try {
        await fetchRange(job, handle, state, meter);
      } catch (err) {
        if (!isTransient(err)) throw err;
        failures = state.pos > before ? 1 : failures + 1; // progress resets the count, as huggingface_hub does
        if (failures > ctx.retries) throw networkError(ctx, `download ${meta.file}`, err);
        await sleep(backoffMs(ctx, failures));
      }
    }
  } finally {
    await handle.close();
  }
  if (state.hash && digest) {
    const got = state.hash.digest('hex');
    if (got !== digest.hex) throw new DigestMismatch(`expected ${digest.kind} ${digest.hex}, got ${got}`);
  }
}

/** Restarts `state` (and the file) at byte 0. */
async function restart(handle: FileHandle, state: Progress, size: number): Promise<void> {
  await handle.truncate(0);
  state.pos = 0;
  state.hash = newHash(state.digest, size);
}

/**
 * One GET from state.pos: writes what arrives at its offset, advancing state. A short body or a stall throws a
 * TransientError so the caller resumes from where it stopped.
 */
async function fetchRange(job: BlobDownload, handle: FileHandle, state: Progress, meter: ProgressMeter): Promise<void> {
  const { ctx, meta } = job;
  const controller = new AbortController();
  const stall = () => controller.abort(new TransientError(`no data for ${ctx.downloadTimeoutMs / 1000} s`));
  let timer = setTimeout(stall, ctx.downloadTimeoutMs);
  try {
    const res = await openDownload(ctx, meta.location, state.pos, controller.signal);
    if (res.status === 206) {
      const range = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
      if (!range || Number(range[1]) !== state.pos) {
        await res.body?.cancel();
        await restart(handle, state, meta.size);
        throw new TransientError(`the server answered a Range request with ${res.headers.get('content-range')}; restarting`);
      }
    } else if (res.status === 200) {
      if (state.pos > 0) await restart(handle, state, meta.size); // the server ignored the Range
    } else {
      await res.body?.cancel();
      if (res.status === 416) {
        await restart(handle, state, meta.size); // our partial file is longer than the server's: start over
        throw new TransientError('range not satisfiable; restarting');
      }
      if (isRetryableStatus(res.status)) throw new TransientError(`HTTP ${res.status}`, res.status);
      throw statusError(ctx, res, meta.file);
    }
    if (!res.body) throw new TransientError('empty response body');
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      clearTimeout(timer);
      timer = setTimeout(stall, ctx.downloadTimeoutMs);
      if (state.pos + chunk.length > meta.size) {
        controller.abort();
        throw new DigestMismatch(`the server sent more than the ${meta.size} bytes announced`);
      }
      let written = 0;
      while (written < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, written, chunk.length - written, state.pos + written);
        written += bytesWritten;
      }
      state.hash?.update(chunk);
      state.pos += chunk.length;
      meter.set(state.pos);
    }
    if (state.pos < meta.size) throw new TransientError(`connection closed after ${state.pos} of ${meta.size} bytes`);
  } catch (err) {
    const reason: unknown = controller.signal.reason;
    if (controller.signal.aborted && reason instanceof TransientError && !(err instanceof DigestMismatch)) throw reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
