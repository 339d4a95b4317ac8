/** Server limits and batching settings, with defaults and range checks. */
import { ClipError } from '../errors.js';

export interface ServerOptions {
  /** Most rows (texts or images) per forward pass; 1 turns batching off (default 32). */
  maxBatch?: number;
  /** Most images per forward pass, when it should differ from maxBatch (default: maxBatch). */
  maxImageBatch?: number;
  /**
   * How long the first queued request waits for others to join its batch (default 0: a forward pass starts as
   * soon as the engine is free, and requests arriving meanwhile join the next one).
   */
  maxWaitMs?: number;
  /** Admitted requests not yet in a forward pass; more answer 429 (default 256). */
  maxQueue?: number;
  /** Per-request time limit (default 30000 ms): 503 if still queued, else 504. */
  timeoutMs?: number;
  /** Largest request body (default 32 MiB). */
  maxBodyBytes?: number;
  /** Images with more pixels answer 413 (default 40 megapixels). */
  maxPixels?: number;
  /** Most texts, images or labels in one request (default 256). */
  maxItems?: number;
  /** Longest text, label or template in characters; longer ones answer 413 (default 16384). */
  maxTextChars?: number;
  /** Most characters one request may give the tokenizer, all texts or prompts together (default 1 MiB). */
  maxRequestTextChars?: number;
  /** Time a client has to send the request headers (default 10000 ms); slower ones are cut off. */
  headersTimeoutMs?: number;
  /** Time a client has to send the whole request, body included (default 60000 ms); slower ones get 408. */
  bodyTimeoutMs?: number;
  /**
   * A connection silent this long is closed (default: the larger of 60000 ms and timeoutMs + 5000, so a request
   * being computed is never cut off); it must exceed timeoutMs.
   */
  idleTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this long (default 5000 ms). */
  keepAliveTimeoutMs?: number;
  /** Zero-shot classifiers kept, keyed by labels + templates (default 64). */
  classifierCacheSize?: number;
  /** Seconds in the Retry-After header of 429 and 503 answers (default 1). */
  retryAfterSeconds?: number;
  /** Fastify's logger option (default off). */
  logger?: boolean | { level: string };
}

type Derived = 'maxImageBatch' | 'idleTimeoutMs';

export type ResolvedServerOptions = Required<Omit<ServerOptions, Derived>> & { maxImageBatch: number; idleTimeoutMs: number };

export const SERVER_DEFAULTS: Required<Omit<ServerOptions, Derived>> = {
  maxBatch: 32,
  maxWaitMs: 0,
  maxQueue: 256,
  timeoutMs: 30_000,
  maxBodyBytes: 32 * 1024 * 1024,
  maxPixels: 40_000_000,
  maxItems: 256,
  maxTextChars: 16_384,
  maxRequestTextChars: 1 << 20,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  classifierCacheSize: 64,
  retryAfterSeconds: 1,
  logger: false,
};

const RANGES: Partial<Record<keyof ServerOptions, [number, number]>> = {
  maxBatch: [1, 4096],
  maxImageBatch: [1, 4096],
  maxWaitMs: [0, 60_000],
  maxQueue: [1, 1_000_000],
  timeoutMs: [1, 3_600_000],
  maxBodyBytes: [1, 2 ** 31 - 1],
  maxPixels: [1, 2 ** 40],
  maxItems: [1, 65_536],
  maxTextChars: [1, 1 << 24],
  maxRequestTextChars: [1, 1 << 30],
  headersTimeoutMs: [1, 3_600_000],
  bodyTimeoutMs: [1, 3_600_000],
  idleTimeoutMs: [1, 7_200_000],
  keepAliveTimeoutMs: [1, 3_600_000],
  classifierCacheSize: [0, 100_000],
  retryAfterSeconds: [0, 3600],
};

export function resolveServerOptions(options: ServerOptions = {}): ResolvedServerOptions {
  const resolved = { ...SERVER_DEFAULTS } as Record<string, unknown>;
  for (const [key, value] of Object.entries(options)) if (value !== undefined) resolved[key] = value;
  resolved.maxImageBatch ??= resolved.maxBatch;
  const explicitIdle = resolved.idleTimeoutMs !== undefined;
  if (typeof resolved.timeoutMs === 'number') resolved.idleTimeoutMs ??= Math.max(60_000, resolved.timeoutMs + 5_000);
  for (const [key, [lo, hi]] of Object.entries(RANGES) as [keyof ServerOptions, [number, number]][]) {
    const v = resolved[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new ClipError('E_INVALID_ARGUMENT', `${key} must be an integer in ${lo}..${hi}, got ${String(v)}`);
  }
  const r = resolved as ResolvedServerOptions;
  if (explicitIdle && r.idleTimeoutMs <= r.timeoutMs) throw new ClipError('E_INVALID_ARGUMENT', `idleTimeoutMs (${r.idleTimeoutMs}) must exceed timeoutMs (${r.timeoutMs}), or a request being computed would be cut off`);
  if (r.headersTimeoutMs > r.bodyTimeoutMs) throw new ClipError('E_INVALID_ARGUMENT', `headersTimeoutMs (${r.headersTimeoutMs}) must not exceed bodyTimeoutMs (${r.bodyTimeoutMs})`);
  if (r.maxTextChars > r.maxRequestTextChars) throw new ClipError('E_INVALID_ARGUMENT', `maxTextChars (${r.maxTextChars}) must not exceed maxRequestTextChars (${r.maxRequestTextChars})`);
  return r;
}
