/**
 * Brings the store up to date with folders: new and changed files are embedded, unchanged ones skipped (same
 * size and mtime; else same content hash: only the row's size/mtime change), removed ones dropped. Work is
 * written in batches, one commit each, so an interrupted run keeps what it finished and a rerun does the rest.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { IMAGE_EXTENSIONS, listImages } from '../bulk/files.js';
import type { Clip } from '../clip.js';
import { ClipError } from '../errors.js';
import type { ImageInfo, ImageRow, Store } from './store.js';

export interface IndexOptions {
  /** Images per forward pass and per commit (default 16). */
  batchSize?: number;
  extensions?: readonly string[];
  /** Stops after the current batch (what was written stays). */
  signal?: AbortSignal;
  onProgress?: (progress: IndexProgress) => void;
}

export interface IndexProgress {
  /** Files looked at so far, of `total` found. */
  done: number;
  total: number;
  added: number;
  updated: number;
  unchanged: number;
  removed: number;
  failed: number;
}

export interface IndexResult extends IndexProgress {
  /** Files that could not be read or decoded (not stored; retried on the next run). */
  failures: { path: string; message: string }[];
}

interface Found {
  path: string;
  root: string;
  size: number;
  mtimeMs: number;
}

/** The row key: 16 hex digits of sha256 of the absolute path. */
export function rowId(file: string): string {
  return createHash('sha256').update(file).digest('hex').slice(0, 16);
}

export async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const inside = (root: string, file: string) => file === root || file.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/** Image files under each root (real paths); symlinks that lead outside their root are left out. */
export async function scanFolders(folders: readonly string[], extensions: readonly string[] = IMAGE_EXTENSIONS): Promise<{ roots: string[]; files: Found[] }> {
  if (folders.length === 0) throw new ClipError('E_INVALID_ARGUMENT', 'give at least one folder to index');
  const roots: string[] = [];
  const files = new Map<string, Found>();
  for (const folder of folders) {
    const rel = await listImages(folder, extensions);
    const root = await realpath(folder);
    roots.push(root);
    for (const r of rel) {
      const file = path.join(root, ...r.split('/'));
      const real = await realpath(file).catch(() => undefined);
      if (!real || !inside(root, real)) continue;
      const st = await stat(real).catch(() => undefined);
      if (!st?.isFile() || files.has(real)) continue;
      files.set(real, { path: real, root, size: st.size, mtimeMs: st.mtimeMs });
    }
  }
  return { roots, files: [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) };
}

export async function indexFolders(clip: Clip, store: Store, folders: readonly string[], options: IndexOptions = {}): Promise<IndexResult> {
  const batchSize = options.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1024) throw new ClipError('E_INVALID_ARGUMENT', 'batchSize must be an integer in 1..1024');
  const { roots, files } = await scanFolders(folders, options.extensions);
  const existing = new Map<string, ImageInfo>();
  for (const row of await store.list()) existing.set(row.id, row);

  const progress: IndexProgress = { done: 0, total: files.length, added: 0, updated: 0, unchanged: 0, removed: 0, failed: 0 };
  const failures: IndexResult['failures'] = [];
  const report = () => options.onProgress?.({ ...progress });

  // Rows of the indexed roots whose file is gone (or now unreadable, or a symlink out) are dropped first.
  const present = new Set(files.map((f) => rowId(f.path)));
  const gone = [...existing.values()].filter((r) => roots.includes(r.root) && !present.has(r.id)).map((r) => r.id);
  await store.remove(gone);
  progress.removed = gone.length;
  report();

  const byHash = new Map<string, string>();
  for (const r of existing.values()) if (present.has(r.id)) byHash.set(r.hash, r.id);

  let toEmbed: (Found & { id: string; hash: string; isNew: boolean })[] = [];
  let toCopy: { file: Found & { id: string; hash: string }; from: string; isNew: boolean }[] = [];

  const flushEmbed = async () => {
    if (toEmbed.length === 0) return;
    const batch = toEmbed;
    toEmbed = [];
    const rows = await embedBatch(clip, batch, failures);
    await store.upsert(rows);
    for (const f of batch) if (rows.some((r) => r.id === f.id)) f.isNew ? progress.added++ : progress.updated++;
    progress.failed = failures.length;
  };
  const flushCopy = async () => {
    if (toCopy.length === 0) return;
    const batch = toCopy;
    toCopy = [];
    const sources = new Map((await store.rows([...new Set(batch.map((c) => c.from))])).map((r) => [r.id, r]));
    const rows: ImageRow[] = [];
    for (const c of batch) {
      const src = sources.get(c.from);
      if (src) rows.push({ id: c.file.id, path: c.file.path, root: c.file.root, size: c.file.size, mtimeMs: c.file.mtimeMs, hash: c.file.hash, vector: src.vector });
      else toEmbed.push({ ...c.file, isNew: c.isNew });
    }
    await store.upsert(rows);
    for (const c of batch) if (sources.has(c.from)) c.isNew ? progress.added++ : progress.updated++;
  };

  for (const file of files) {
    if (options.signal?.aborted) break;
    const id = rowId(file.path);
    const old = existing.get(id);
    progress.done++;
    if (old && old.size === file.size && old.mtimeMs === file.mtimeMs && old.root === file.root) {
      progress.unchanged++;
      continue;
    }
    let hash: string;
    try {
      hash = await hashFile(file.path);
    } catch (err) {
      failures.push({ path: file.path, message: (err as Error).message });
      progress.failed = failures.length;
      continue;
    }
    const from = old?.hash === hash ? id : byHash.get(hash);
    if (from) toCopy.push({ file: { ...file, id, hash }, from, isNew: !old });
    else toEmbed.push({ ...file, id, hash, isNew: !old });
    if (toCopy.length >= batchSize) await flushCopy();
    if (toEmbed.length >= batchSize) await flushEmbed();
    report();
  }
  await flushCopy();
  await flushEmbed();
  report();
  return { ...progress, failures };
}

const PER_FILE_ERRORS = new Set(['E_IMAGE_DECODE', 'E_IO', 'E_NOT_FOUND', 'E_INPUT_TOO_LARGE', 'E_INVALID_ARGUMENT']);

/** Embeds a batch; when it fails, each file alone, so one bad image costs only itself. */
async function embedBatch(clip: Clip, batch: (Found & { id: string; hash: string })[], failures: IndexResult['failures']): Promise<ImageRow[]> {
  const toRow = (f: Found & { id: string; hash: string }, vector: Float32Array): ImageRow => ({ id: f.id, path: f.path, root: f.root, size: f.size, mtimeMs: f.mtimeMs, hash: f.hash, vector });
  try {
    const e = await clip.embedImages(batch.map((f) => f.path), { batchSize: batch.length });
    return batch.map((f, i) => toRow(f, e.row(i).slice()));
  } catch (err) {
    if (!(err instanceof ClipError) || !PER_FILE_ERRORS.has(err.code)) throw err;
    if (batch.length === 1) {
      failures.push({ path: batch[0].path, message: (err as Error).message });
      return [];
    }
    const rows: ImageRow[] = [];
    for (const f of batch) rows.push(...(await embedBatch(clip, [f], failures)));
    return rows;
  }
}
