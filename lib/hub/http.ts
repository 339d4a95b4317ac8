/**
 * The Hub's HTTP surface we use: HEAD on /{repo}/resolve/{revision}/{file} for metadata (relative redirects
 * followed, a cross-host redirect to the CDN reported as the download location), and GET with Range for the
 * bytes. Transient failures (connection errors, timeouts, 429, 5xx) are retried with exponential backoff.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HubError } from './errors.js';
import { COMMIT_SHA, SAFE_ETAG } from './repo-id.js';

export interface HttpContext {
  endpoint: string;
  repoId: string;
  token?: string;
  fetch: typeof fetch;
  /** Limit for a HEAD answer (HF_HUB_ETAG_TIMEOUT). */
  etagTimeoutMs: number;
  /** Limit for response headers and for silence between body chunks (HF_HUB_DOWNLOAD_TIMEOUT). */
  downloadTimeoutMs: number;
  /** Retries of a transient failure; a download that makes progress starts counting again. */
  retries: number;
  retryBaseMs: number;
}

export interface FileMetadata {
  file: string;
  commit: string;
  /** blobs/<etag>: the LFS sha256, or the git blob sha1 for small files. */
  etag: string;
  size: number;
  /** Where to GET the bytes: the CDN for LFS files, else the resolve URL. */
  location: string;
  lfs: boolean;
}

export type HeadResult = FileMetadata | { missing: true; file: string; commit?: string };

const USER_AGENT = `convnext-clip; node/${process.versions.node}`;
const MAX_REDIRECTS = 10;

/** A failure worth retrying. */
export class TransientError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function resolveUrl(ctx: HttpContext, revision: string, file: string): string {
  const name = file.split('/').map(encodeURIComponent).join('/');
  return `${ctx.endpoint}/${ctx.repoId}/resolve/${encodeURIComponent(revision)}/${name}`;
}

/** Headers for a request; the token goes only to the Hub's own origin, never to a CDN. */
export function requestHeaders(ctx: HttpContext, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...extra };
  if (ctx.token && new URL(url).origin === new URL(ctx.endpoint).origin) headers.authorization = `Bearer ${ctx.token}`;
  return headers;
}

export function normalizeEtag(etag: string | null): string | undefined {
  if (!etag) return undefined;
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '') || undefined;
}

export function backoffMs(ctx: HttpContext, attempt: number): number {
  const base = Math.min(ctx.retryBaseMs * 2 ** (attempt - 1), ctx.retryBaseMs * 16);
  return base * (0.75 + Math.random() * 0.5);
}

export function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  const name = (err as Error | undefined)?.name;
  // fetch reports network failures as TypeError ("fetch failed", "terminated"); timeouts abort.
  return err instanceof TypeError || name === 'AbortError' || name === 'TimeoutError';
}

function describeNetworkError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

/** Runs `fn`, retrying transient failures; the last one becomes a HubError('network'). */
export async function withRetries<T>(ctx: HttpContext, what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err)) throw err;
      if (attempt >= ctx.retries) throw networkError(ctx, what, err);
      await sleep(backoffMs(ctx, attempt + 1));
    }
  }
}

export function networkError(ctx: HttpContext, what: string, err: unknown): HubError {
  const status = err instanceof TransientError ? err.status : undefined;
  const why = err instanceof TransientError ? err.message : describeNetworkError(err);
  return new HubError('network', `cannot ${what} from ${ctx.endpoint} (${why}, after ${ctx.retries + 1} tries); check the connection, or set HF_HUB_OFFLINE=1 to use only the local cache`, {
    subject: ctx.repoId,
    cause: err,
    status,
  });
}

/** The error for a non-success status that is not worth retrying. */
export function statusError(ctx: HttpContext, res: Response, file: string): HubError {
  const code = res.headers.get('x-error-code') ?? '';
  const detail = res.headers.get('x-error-message');
  const page = `${ctx.endpoint}/${ctx.repoId}`;
  const suffix = detail ? ` (Hub says: ${detail})` : '';
  if (code === 'RepoNotFound' && (res.status === 401 || res.status === 404)) {
    // The Hub answers 401 for a missing repo when no token is sent, so as not to reveal private ones.
    return new HubError('not-found', `repository ${ctx.repoId} was not found on ${ctx.endpoint}: check the name; if it is private or gated, set HF_TOKEN to a token with access${suffix}`, {
      subject: ctx.repoId,
      status: res.status,
    });
  }
  if (res.status === 401 || res.status === 403) {
    const message = !ctx.token
      ? `${ctx.repoId} needs authentication (it is gated or private): set HF_TOKEN to a Hugging Face access token (${ctx.endpoint === 'https://huggingface.co' ? 'https://huggingface.co/settings/tokens' : 'from your account settings'}) and accept the model's licence at ${page}`
      : `your token (HF_TOKEN) does not give access to ${ctx.repoId}: accept the model's licence or request access at ${page} with that account, or check that the token is valid`;
    return new HubError('auth', message + suffix, { subject: ctx.repoId, status: res.status });
  }
  if (res.status === 404 && code === 'RevisionNotFound') {
    return new HubError('not-found', `${ctx.repoId} has no such revision${suffix}`, { subject: ctx.repoId, status: 404 });
  }
  return new HubError('network', `${ctx.endpoint} answered HTTP ${res.status} for ${file} of ${ctx.repoId}${suffix}`, { subject: ctx.repoId, status: res.status });
}

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Fetch with a time limit on getting the response headers. */
async function fetchWithin(ctx: HttpContext, url: string, init: RequestInit, ms: number): Promise<Response> {
  return ctx.fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(ms) });
}

/** A redirect's target, refused unless it is http(s) (a server must not point us at file: or data: URLs). */
function redirectTarget(ctx: HttpContext, res: Response, from: string): URL {
  const location = res.headers.get('location') ?? '';
  let target: URL;
  try {
    target = new URL(location, from);
  } catch {
    throw protocolError(ctx, `a redirect to ${JSON.stringify(location.slice(0, 200))}, which is not a URL`);
  }
  if (target.protocol !== 'https:' && target.protocol !== 'http:') throw protocolError(ctx, `a redirect to a ${target.protocol} URL`);
  return target;
}

function protocolError(ctx: HttpContext, what: string): HubError {
  return new HubError('protocol', `${ctx.endpoint} sent ${what}: refused (a Hugging Face Hub would not)`, { subject: ctx.repoId });
}

/** HEAD a file: its commit, etag, size and download location; `missing` when the repo has no such file. */
export async function headFile(ctx: HttpContext, revision: string, file: string): Promise<HeadResult> {
  return withRetries(ctx, `get metadata of ${file}`, async () => {
    let url = resolveUrl(ctx, revision, file);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await fetchWithin(ctx, url, { method: 'HEAD', headers: requestHeaders(ctx, url, { 'accept-encoding': 'identity' }) }, ctx.etagTimeoutMs);
      if (res.status >= 300 && res.status < 400) {
        const target = redirectTarget(ctx, res, url);
        // Same host: a renamed repo or the Hub's own cache path; follow. Other host: the CDN; stop here.
        if (target.origin === new URL(url).origin && !res.headers.get('x-linked-etag')) {
          url = target.href;
          continue;
        }
        return metadata(ctx, res, file, target.href);
      }
      if (res.ok) return metadata(ctx, res, file, url);
      if (isRetryableStatus(res.status)) throw new TransientError(`HTTP ${res.status}`, res.status);
      if (res.status === 404 && !['RepoNotFound', 'RevisionNotFound'].includes(res.headers.get('x-error-code') ?? '')) {
        const commit = res.headers.get('x-repo-commit') ?? undefined;
        return { missing: true, file, commit: commit !== undefined && COMMIT_SHA.test(commit) ? commit : undefined };
      }
      throw statusError(ctx, res, file);
    }
    throw new HubError('network', `too many redirects for ${file} of ${ctx.repoId}`, { subject: ctx.repoId });
  });
}

function metadata(ctx: HttpContext, res: Response, file: string, location: string): FileMetadata {
  const commit = res.headers.get('x-repo-commit') ?? undefined;
  const linkedEtag = normalizeEtag(res.headers.get('x-linked-etag'));
  const etag = linkedEtag ?? normalizeEtag(res.headers.get('etag'));
  const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
  if (!commit || !etag || !Number.isSafeInteger(size) || size < 0) {
    throw new HubError('network', `${ctx.endpoint} did not answer like the Hugging Face Hub for ${file} of ${ctx.repoId} (missing X-Repo-Commit, ETag or size)`, {
      subject: ctx.repoId,
    });
  }
  // Both become path components in the cache (snapshots/<commit>, blobs/<etag>): only safe names pass.
  if (!COMMIT_SHA.test(commit)) throw protocolError(ctx, `X-Repo-Commit ${JSON.stringify(commit.slice(0, 200))} for ${file}, which is not a commit id (40 lowercase hex digits)`);
  if (!SAFE_ETAG.test(etag)) throw protocolError(ctx, `the ETag ${JSON.stringify(etag.slice(0, 200))} for ${file}, which is not a plain blob name`);
  return { file, commit, etag, size, location, lfs: linkedEtag !== undefined };
}

/** GET `url` from byte `start`, following redirects (dropping the token on a change of host). */
export async function openDownload(ctx: HttpContext, url: string, start: number, signal: AbortSignal): Promise<Response> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers = requestHeaders(ctx, current, start > 0 ? { range: `bytes=${start}-`, 'accept-encoding': 'identity' } : { 'accept-encoding': 'identity' });
    const res = await ctx.fetch(current, { method: 'GET', headers, redirect: 'manual', signal });
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel();
      current = redirectTarget(ctx, res, current).href;
      continue;
    }
    return res;
  }
  throw new HubError('network', `too many redirects downloading from ${url}`, { subject: ctx.repoId });
}

export { isRetryableStatus };
