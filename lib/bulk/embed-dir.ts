/**
 * Embeds every image under a folder into an .npy (or jsonl) file plus an index of file names. Batches are
 * fixed slices of the (sharded) sorted file list and each finished batch is journaled, so an interrupted run
 * resumes where it stopped and produces the same bytes as an uninterrupted one.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { Clip } from '../clip.js';
import { ClipError } from '../errors.js';
import { readRegularFileSync } from '../fs/read-file.js';
import type { ModelPaths } from '../model-dir.js';
import { invalid, is } from '../validate.js';
import { type FileEntry, IMAGE_EXTENSIONS, type Shard, type SkippedFolder, listHash, listImageFiles, selectShard } from './files.js';
import { type BatchItem, Journal } from './journal.js';
import { type OutputLock, lockOutput } from './lock.js';
import { type WeightsFingerprint, modelKey, weightsFingerprint, weightsFile } from './model-identity.js';
import { npyHeader, removeStaleTemporaries, rowBytes, writeAtomic } from './output.js';
import { checkOutputs, outputPaths } from './paths.js';
import { mapLimit } from '../map-limit.js';

export type EmbedDirFormat = 'npy' | 'jsonl';

export interface EmbedDirOptions {
  folder: string;
  /** The embeddings file; `<out>.journal` holds progress until it is written. */
  out: string;
  /** Default: jsonl when `out` ends in .jsonl, else npy. */
  format?: EmbedDirFormat;
  /** Default: `out` with .npy/.jsonl replaced by .index.json. */
  index?: string;
  /** Images per forward pass and per journal record (default 16). */
  batchSize?: number;
  shard?: Shard;
  extensions?: readonly string[];
  maxPixels?: number;
  /** Ignore an existing journal. */
  restart?: boolean;
  /**
   * The model's files as `clip` was loaded from them (a directory or explicit paths). The journal is keyed by
   * the weights' content (SHA-256), so a resume with other weights is refused whatever the path, and the same
   * weights under another spelling resume.
   */
  model: string | ModelPaths;
  /** Files decoded at once (default min(4, cores)). */
  concurrency?: number;
  /** Checked between batches; the journal keeps what is done. */
  signal?: AbortSignal;
  /** The lock of `out` (lockOutput), when the caller took it before loading the model; it stays the caller's to release. */
  lock?: OutputLock;
  onProgress?(progress: EmbedDirProgress): void;
  /** A file that could not be read or decoded (listed in the index as failed), or a folder that could not be listed. */
  onSkip?(item: BatchItem | SkippedFolder): void;
}

export interface EmbedDirProgress {
  done: number;
  failed: number;
  total: number;
  /** Files finished by an earlier, interrupted run. */
  resumed: number;
}

export interface EmbedDirResult {
  /** True when the output was already complete (same files and settings) and nothing ran. */
  complete?: boolean;
  total: number;
  embedded: number;
  failed: BatchItem[];
  /** Subfolders that could not be listed (their files are not in the run). */
  skippedFolders: SkippedFolder[];
  resumedBatches: number;
  out: string;
  index: string;
}

export function defaultIndexPath(out: string): string {
  return /\.(npy|jsonl)$/i.test(out) ? out.replace(/\.(npy|jsonl)$/i, '.index.json') : `${out}.index.json`;
}

interface Prepared {
  items: BatchItem[];
  pixels: Float32Array[];
}

interface IndexFile {
  run: unknown;
  weights?: WeightsFingerprint;
  skippedFolders?: SkippedFolder[];
  files: (BatchItem & { row: number | null })[];
}

/** The index of an earlier run, or undefined when there is none or it cannot be read (it is rewritten). */
function readIndex(file: string): IndexFile | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readRegularFileSync(file, { what: 'index', maxBytes: 2 ** 29 }).toString('utf8')) as IndexFile;
  } catch {
    return undefined;
  }
}

export async function embedDir(clip: Clip, options: EmbedDirOptions): Promise<EmbedDirResult> {
  if (typeof (clip as Partial<Clip> | null)?.embedImages !== 'function') throw invalid('a loaded Clip (from Clip.load)', 'clip', clip);
  if (!is.plainObject(options)) throw invalid('an options object {folder, out, ...}', 'options', options);
  const format = options.format ?? (/\.jsonl$/i.test(options.out) ? 'jsonl' : 'npy');
  if (format !== 'npy' && format !== 'jsonl') throw new ClipError('E_INVALID_ARGUMENT', `format must be npy or jsonl, got ${String(format)}`);
  const B = options.batchSize ?? 16;
  if (!Number.isInteger(B) || B < 1 || B > 4096) throw new ClipError('E_INVALID_ARGUMENT', `batch size must be an integer in 1..4096, got ${B}`);
  if (options.model === undefined || options.model === null) throw new ClipError('E_INVALID_ARGUMENT', 'embedDir needs `model`: the directory or files the Clip was loaded from (the journal is keyed by the weights)');
  const shard = options.shard ?? { index: 0, count: 1 };
  const concurrency = options.concurrency ?? Math.min(4, availableParallelism());
  const indexPath = options.index ?? defaultIndexPath(options.out);
  const journalPath = `${options.out}.journal`;
  const D = clip.embedDim;
  const extensions = options.extensions ?? IMAGE_EXTENSIONS;

  const listing = await listImageFiles(options.folder, extensions);
  const files = listing.files;
  checkOutputs(
    outputPaths(options.out, indexPath),
    { folder: options.folder, files, symlinks: listing.symlinks, extensions: new Set(extensions.map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase())) },
  );
  const entries = selectShard(files, shard);
  const batches: FileEntry[][] = [];
  for (let i = 0; i < entries.length; i += B) batches.push(entries.slice(i, i + B));

  if (options.lock !== undefined && options.lock.path !== `${options.out}.lock`) {
    throw new ClipError('E_INVALID_ARGUMENT', `the lock given is ${options.lock.path}, not the lock of ${options.out}`);
  }
  const lock = options.lock ?? (await lockOutput(options.out));
  let journal: Journal | undefined;
  try {
    removeStaleTemporaries(options.out);
    removeStaleTemporaries(indexPath);
    const previous = options.restart === true ? undefined : readIndex(indexPath);
    const header = options.restart === true ? undefined : Journal.peekHeader(journalPath);
    const weights = await weightsFingerprint(weightsFile(options.model), [header?.weights, previous?.weights]);
    const run = {
      files: listHash(files),
      count: files.length,
      shard: `${shard.index}/${shard.count}`,
      batch: B,
      format,
      ...modelKey(clip, weights),
      maxPixels: options.maxPixels ?? 0,
    };
    if (options.restart !== true && !existsSync(journalPath)) {
      const finished = finishedRun(options.out, previous, run);
      if (finished) return { ...finished, skippedFolders: listing.skippedFolders, out: options.out, index: indexPath };
    }
    for (const folder of listing.skippedFolders) options.onSkip?.(folder);
    journal = Journal.open(journalPath, run, options.restart === true, weights);
    const resumedBatches = journal.done.size;
    const progress: EmbedDirProgress = { done: 0, failed: 0, total: entries.length, resumed: 0 };
    for (const items of journal.done.values()) {
      progress.done += items.length;
      progress.failed += items.filter((it) => it.error !== undefined).length;
    }
    progress.resumed = progress.done;
    options.onProgress?.({ ...progress });

    const prepare = async (batch: FileEntry[]): Promise<Prepared> => {
      const results = await mapLimit(batch, concurrency, async (entry) => {
        const file = path.join(options.folder, entry.path);
        try {
          return await clip.preprocessImages([file], { maxPixels: options.maxPixels, concurrency: 1 });
        } catch (err) {
          const label = `input #0 (${file}): `;
          const message = err instanceof Error ? err.message : String(err);
          return { error: message.startsWith(label) ? message.slice(label.length) : message, code: err instanceof ClipError ? err.code : 'E_UNEXPECTED' };
        }
      });
      const items: BatchItem[] = [];
      const pixels: Float32Array[] = [];
      results.forEach((r, i) => {
        if (r instanceof Float32Array) {
          items.push({ index: batch[i].index, path: batch[i].path });
          pixels.push(r);
        } else {
          items.push({ index: batch[i].index, path: batch[i].path, ...r });
        }
      });
      return { items, pixels };
    };

    const finishedBatches = journal.done;
    const todo = batches.map((_, k) => k).filter((k) => !finishedBatches.has(k));
    let next = todo.length > 0 ? prepare(batches[todo[0]]) : undefined;
    for (let t = 0; t < todo.length; t++) {
      if (options.signal?.aborted) throw options.signal.reason;
      const { items, pixels } = await next!;
      next = t + 1 < todo.length ? prepare(batches[todo[t + 1]]) : undefined; // decode the next batch meanwhile
      let rows: Float32Array = new Float32Array(0);
      if (pixels.length > 0) {
        const data = new Float32Array(pixels.reduce((n, p) => n + p.length, 0));
        pixels.reduce((off, p) => (data.set(p, off), off + p.length), 0);
        rows = (await clip.embedImages({ data, n: pixels.length }, { batchSize: B })).data;
      }
      lock.check();
      journal.append(todo[t], items, rows);
      for (const item of items) if (item.error !== undefined) options.onSkip?.(item);
      progress.done += items.length;
      progress.failed += items.filter((it) => it.error !== undefined).length;
      options.onProgress?.({ ...progress });
    }
    if (options.signal?.aborted) throw options.signal.reason;

    const all = batches.flatMap((_, k) => finishedBatches.get(k)!);
    const embedded = all.filter((it) => it.error === undefined);
    lock.check();
    writeOutput(journal, batches.length, options.out, format, D, embedded);
    writeIndex(indexPath, { root: path.resolve(options.folder), run, weights, skippedFolders: listing.skippedFolders, items: all });
    journal.remove();
    return { total: entries.length, embedded: embedded.length, failed: all.filter((it) => it.error !== undefined), skippedFolders: listing.skippedFolders, resumedBatches, out: options.out, index: indexPath };
  } finally {
    journal?.close();
    if (options.lock === undefined) await lock.release();
  }
}

/** The result of an earlier run that finished with the same settings, from its index; else undefined. */
function finishedRun(out: string, index: IndexFile | undefined, run: Record<string, string | number>): Omit<EmbedDirResult, 'out' | 'index' | 'skippedFolders'> | undefined {
  if (!index || !existsSync(out) || JSON.stringify(index.run) !== JSON.stringify(run) || !Array.isArray(index.files)) return undefined;
  const failed = index.files.filter((f) => f.row === null).map(({ row: _row, ...item }) => item);
  return { complete: true, total: index.files.length, embedded: index.files.length - failed.length, failed, resumedBatches: 0 };
}

/** Streams the journal's rows (in batch order) into the output file. */
function writeOutput(journal: Journal, batchCount: number, out: string, format: EmbedDirFormat, D: number, embedded: BatchItem[]): void {
  writeAtomic(out, (write) => {
    if (format === 'npy') write(npyHeader(embedded.length, D));
    let expected = 0;
    let row = 0;
    for (const { batch, rows } of journal.rows()) {
      if (batch !== expected) throw new ClipError('E_CHECKPOINT_CORRUPT', `${journal.file}: batch ${batch} found where batch ${expected} was expected`, { subject: journal.file });
      expected++;
      if (format === 'npy') {
        write(rowBytes(rows));
        row += rows.length / D;
        continue;
      }
      const lines: string[] = [];
      for (let r = 0; r < rows.length / D; r++, row++) {
        const item = embedded[row];
        lines.push(`${JSON.stringify({ path: item.path, index: item.index, embedding: Array.from(rows.subarray(r * D, (r + 1) * D)) })}\n`);
      }
      write(lines.join(''));
    }
    if (expected !== batchCount || row !== embedded.length) {
      throw new ClipError('E_CHECKPOINT_CORRUPT', `${journal.file}: holds ${expected} of ${batchCount} batches and ${row} of ${embedded.length} rows`, { subject: journal.file });
    }
  });
}

/** The index: run settings, then one line per file (`row` in the output, or null and the error). */
function writeIndex(file: string, info: { root: string; run: Record<string, string | number>; weights: WeightsFingerprint; skippedFolders: SkippedFolder[]; items: BatchItem[] }): void {
  writeAtomic(file, (write) => {
    const run = info.run;
    const embedded = info.items.filter((it) => it.error === undefined).length;
    const head = { version: 2, root: info.root, run, weights: info.weights, skippedFolders: info.skippedFolders, embedded, failed: info.items.length - embedded };
    write(`${JSON.stringify(head).slice(0, -1)},"files":[\n`);
    let row = 0;
    info.items.forEach((it, i) => {
      const entry = it.error === undefined ? { path: it.path, index: it.index, row: row++ } : { path: it.path, index: it.index, row: null, error: it.error, code: it.code };
      write(`${JSON.stringify(entry)}${i + 1 < info.items.length ? ',' : ''}\n`);
    });
    write(']}\n');
  });
}
