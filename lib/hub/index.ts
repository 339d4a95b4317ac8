/**
 * resolveModel: a local model directory, or a Hugging Face repo (`org/name`, `hf-hub:org/name`, `@revision`)
 * fetched into huggingface_hub's cache, returning the snapshot directory. A complete cached snapshot is used
 * without any request; what is missing is downloaded (resumable, verified, locked against other processes).
 */
import { statSync } from 'node:fs';
import { RepoCache } from './cache.js';
import { ensureBlob } from './download.js';
import { HubError } from './errors.js';
import { type FileMetadata, type HeadResult, type HttpContext, headFile } from './http.js';
import { fileMatches } from './integrity.js';
import type { ProgressCallback } from './progress.js';
import { DEFAULT_REVISION, type HubModelRef, checkRevision, parseHubRef } from './repo-id.js';
import { envSeconds, hubCacheDir, hubEndpoint, hubOffline, hubToken } from './settings.js';
import { invalid } from '../validate.js';

export { HubError, isHubError, type HubErrorReason } from './errors.js';
export { type DownloadProgress, type ProgressCallback, createProgressBar, formatBytes } from './progress.js';
export { parseHubRef, repoFolderName, type HubModelRef } from './repo-id.js';
export { hubCacheDir, hubEndpoint, hubOffline, hubToken } from './settings.js';

export interface ResolveOptions {
  /** Branch, tag or commit; an `@revision` suffix on the source wins. Default main. */
  revision?: string;
  /** Default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Default: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, or the token file of `huggingface-cli login`. */
  token?: string;
  /** Use only the cache. Default: HF_HUB_OFFLINE. */
  offline?: boolean;
  /** Default: HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  onProgress?: ProgressCallback;
  /** Re-hash cached blobs against their names and refetch any that do not match. */
  verify?: boolean;
  fetch?: typeof fetch;
  /** Transient-failure retries (default 5) and the first backoff (default 500 ms). */
  retries?: number;
  retryBaseMs?: number;
  /** Give up waiting for another process's download after this long without progress (default 10 min). */
  lockTimeoutMs?: number;
}

export interface ResolvedHubModel {
  /** The snapshot directory: open_clip_config.json, weights and vocabulary, as symlinks into blobs/. */
  dir: string;
  repoId: string;
  revision: string;
  commit: string;
  /** File name -> absolute path in the snapshot. */
  files: Record<string, string>;
  /** Files this call downloaded (empty on a warm cache). */
  downloaded: string[];
}

export const CONFIG_FILE = 'open_clip_config.json';
/** Preferred first. */
export const WEIGHT_FILES = ['open_clip_model.safetensors', 'open_clip_pytorch_model.bin'] as const;
/** Optional: a repo without them still resolves (recorded in .no_exist, as huggingface_hub does). */
export const VOCAB_FILES = ['vocab.json', 'merges.txt'] as const;

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A local directory unchanged, else the snapshot directory of a Hub model (downloading what is missing). */
export async function resolveModel(source: string, options: ResolveOptions = {}): Promise<string> {
  if (!(typeof source === 'string' && source.length > 0)) throw invalid('a model directory or a Hugging Face name', 'source', source);
  if (isDirectory(source)) return source;
  try {
    return (await resolveHubModel(source, options)).dir;
  } catch (err) {
    // `models/foo` may have been meant as a folder: say so when the Hub does not know it either.
    if (err instanceof HubError && err.reason === 'not-found' && !source.startsWith('hf-hub:') && parseHubRef(source)) {
      throw new HubError('not-found', `${err.message} (and there is no local directory ${source})`, { subject: err.subject, cause: err, status: err.status });
    }
    throw err;
  }
}

/** What the cache holds for a commit: the chosen files and what is still missing. */
function inspectSnapshot(cache: RepoCache, commit: string): { files: Record<string, string>; missing: string[] } {
  const files: Record<string, string> = {};
  const missing: string[] = [];
  if (cache.has(commit, CONFIG_FILE)) files[CONFIG_FILE] = cache.pointerPath(commit, CONFIG_FILE);
  else missing.push(CONFIG_FILE);
  const weights = WEIGHT_FILES.find((w) => cache.has(commit, w));
  if (weights) files[weights] = cache.pointerPath(commit, weights);
  else missing.push(WEIGHT_FILES.join(' or '));
  for (const v of VOCAB_FILES) {
    if (cache.has(commit, v)) files[v] = cache.pointerPath(commit, v);
    else if (!cache.isKnownMissing(commit, v)) missing.push(v);
  }
  return { files, missing };
}

export async function resolveHubModel(source: string, options: ResolveOptions = {}): Promise<ResolvedHubModel> {
  const ref: HubModelRef | undefined = parseHubRef(source);
  if (!ref) {
    throw new HubError('not-found', `${source} is neither a model directory nor a Hugging Face repo id (org/name, hf-hub:org/name[@revision])`, { subject: source });
  }
  if (ref.revision && options.revision && ref.revision !== options.revision) {
    throw new HubError('invalid', `${source} names revision ${ref.revision} but the revision option says ${options.revision}`, { subject: source });
  }
  const revision = ref.revision ?? options.revision ?? DEFAULT_REVISION;
  checkRevision(revision);
  const cacheDir = options.cacheDir ?? hubCacheDir();
  const cache = new RepoCache(cacheDir, ref.repoId);
  const commit = cache.resolveCommit(revision);
  const offline = options.offline ?? hubOffline();

  if (commit) {
    const cached = inspectSnapshot(cache, commit);
    const bad = cached.missing.length === 0 && options.verify ? await corruptBlobs(cache, commit, cached.files) : [];
    if (cached.missing.length === 0 && bad.length === 0) {
      return { dir: cache.snapshotDir(commit), repoId: ref.repoId, revision, commit, files: cached.files, downloaded: [] };
    }
    if (offline) {
      const what = bad.length ? `${bad.join(', ')} (corrupt)` : cached.missing.join(', ');
      throw new HubError(bad.length ? 'integrity' : 'offline', `offline mode (HF_HUB_OFFLINE) is on and the cache ${cache.snapshotDir(commit)} for ${ref.repoId}@${revision} lacks ${what}`, {
        subject: ref.repoId,
      });
    }
  } else if (offline) {
    throw new HubError('offline', `offline mode (HF_HUB_OFFLINE) is on and ${ref.repoId}@${revision} is not in the cache ${cacheDir} (no ${cache.root}/refs/${revision}): download it once online, or unset HF_HUB_OFFLINE`, {
      subject: ref.repoId,
    });
  }
  const ctx: HttpContext = {
    endpoint: (options.endpoint ?? hubEndpoint()).replace(/\/+$/, ''),
    repoId: ref.repoId,
    token: options.token ?? hubToken(),
    fetch: options.fetch ?? globalThis.fetch,
    etagTimeoutMs: envSeconds(process.env.HF_HUB_ETAG_TIMEOUT, 10),
    downloadTimeoutMs: envSeconds(process.env.HF_HUB_DOWNLOAD_TIMEOUT, 10),
    retries: options.retries ?? 5,
    retryBaseMs: options.retryBaseMs ?? 500,
  };
  return fetchSnapshot(ctx, cache, revision, options);
}

/** Files of a complete snapshot whose blob does not hash to its name; those blobs are deleted. */
async function corruptBlobs(cache: RepoCache, commit: string, files: Record<string, string>): Promise<string[]> {
  const bad: string[] = [];
  for (const file of Object.keys(files)) {
    const blob = cache.blobOf(commit, file);
    if (!blob) continue;
    if (!(await fileMatches(blob.path, blob.etag, statSync(blob.path).size))) {
      cache.removeBlob(blob.etag);
      bad.push(file);
    }
  }
  return bad;
}

async function fetchSnapshot(ctx: HttpContext, cache: RepoCache, revision: string, options: ResolveOptions): Promise<ResolvedHubModel> {
  const config = await headFile(ctx, revision, CONFIG_FILE);
  if ('missing' in config) {
    throw new HubError('not-found', `${ctx.repoId}@${revision} has no ${CONFIG_FILE}: is it an OpenCLIP model repo?`, { subject: ctx.repoId });
  }
  const commit = config.commit;
  cache.writeRef(revision, commit);
  // The other files are asked for at the commit, so a push in between cannot mix two versions.
  const head = async (file: string): Promise<HeadResult | 'cached'> => {
    if (cache.has(commit, file)) return 'cached';
    if (cache.isKnownMissing(commit, file)) return { missing: true, file };
    const result = await headFile(ctx, commit, file);
    if ('missing' in result) cache.markMissing(commit, file);
    return result;
  };
  const plan: Array<FileMetadata | string> = [config];
  // Weights already cached at this commit (say a .bin from open_clip) are used rather than fetching another format.
  let weights: FileMetadata | string | undefined = WEIGHT_FILES.find((w) => cache.has(commit, w));
  for (const file of weights ? [] : WEIGHT_FILES) {
    const result = await head(file);
    if (result === 'cached') weights = file;
    else if (!('missing' in result)) weights = result;
    if (weights) break;
  }
  if (!weights) throw new HubError('not-found', `${ctx.repoId}@${revision} has no weights (${WEIGHT_FILES.join(', ')})`, { subject: ctx.repoId });
  plan.push(weights);
  for (const file of VOCAB_FILES) {
    const result = await head(file);
    if (result === 'cached') plan.push(file);
    else if (!('missing' in result)) plan.push(result);
  }

  const files: Record<string, string> = {};
  const downloaded: string[] = [];
  for (const item of plan) {
    const file = typeof item === 'string' ? item : item.file;
    if (typeof item !== 'string' && !cache.has(commit, file)) {
      const outcome = await ensureBlob({ ctx, cache, meta: item, onProgress: options.onProgress, lockTimeoutMs: options.lockTimeoutMs ?? 600_000 });
      if (outcome === 'downloaded') downloaded.push(file);
      cache.link(item.etag, commit, file);
    }
    files[file] = cache.pointerPath(commit, file);
  }
  return { dir: cache.snapshotDir(commit), repoId: ctx.repoId, revision, commit, files, downloaded };
}
