/**
 * BullMQ on Redis, loaded only when a queue command runs (bullmq and its Redis driver, ioredis, are optional
 * dependencies). Redis URLs are checked here and printed without their password.
 */
import { createRequire } from 'node:module';
import { ClipError } from '../errors.js';

export type BullMQ = typeof import('bullmq');

export const DEFAULT_QUEUE = 'convnext-clip-shards';
export const DEFAULT_REDIS = 'redis://127.0.0.1:6379';

/** bullmq, or E_BACKEND_UNAVAILABLE naming what to install. */
export async function loadBullmq(): Promise<BullMQ> {
  try {
    createRequire(import.meta.url).resolve('ioredis');
  } catch {
    throw new ClipError('E_BACKEND_UNAVAILABLE', 'the queue needs the optional packages bullmq and ioredis: npm install bullmq ioredis');
  }
  try {
    return await import('bullmq');
  } catch (err) {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `the queue needs the optional package bullmq (npm install bullmq ioredis): ${(err as Error).message}`, { cause: err });
  }
}

/** A redis:// or rediss:// URL; anything else is refused. */
export function checkRedisUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ClipError('E_INVALID_ARGUMENT', `--redis must be a redis://host:port URL, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new ClipError('E_INVALID_ARGUMENT', `--redis must be a redis:// or rediss:// URL, got ${parsed.protocol}`);
  return parsed;
}

/** The URL with its password replaced by ***. */
export function redactUrl(url: string): string {
  const parsed = checkRedisUrl(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

export function connectionOptions(url: string): { url: string; maxRetriesPerRequest: null; connectTimeout: number } {
  checkRedisUrl(url);
  return { url, maxRetriesPerRequest: null, connectTimeout: 5000 };
}

/** Waits for `ready` (a BullMQ queue or worker connecting), or fails with E_NETWORK after `ms`. */
export async function reachable(ready: Promise<unknown>, url: string, ms = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ClipError('E_NETWORK', `cannot reach Redis at ${redactUrl(url)} within ${ms / 1000} s`)), ms);
  });
  try {
    await Promise.race([ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** close(), but at most `ms`: then the connection is dropped (a Redis that never answered must not hang us). */
export async function closeBounded(client: { close(): Promise<void>; disconnect(): Promise<void> }, ms = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  const closed = await Promise.race([client.close().then(() => false, () => false), timedOut]);
  clearTimeout(timer);
  if (closed) await client.disconnect().catch(() => undefined);
}
