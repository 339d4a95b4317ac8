/**
 * Embeds every image under a folder into an .npy (or jsonl) file plus an index of file names. Batches are
 * fixed slices of the (sharded) sorted file list and each finished batch is journaled, so an interrupted run
 * resumes where it stopped and produces the same bytes as an uninterrupted one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { Clip } from '../clip.js';
import { ClipError } from '../errors.js';
import { type FileEntry, IMAGE_EXTENSIONS, type Shard, listHash, listImages, selectShard } from './files.js';
import { type BatchItem, Journal } from './journal.js';
import { npyHeader, rowBytes, writeAtomic } from './output.js';
import { invalid, is } from '../validate.js';

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
  /** Names the model in the journal (a resume with another model is refused). */
  modelId?: string;
  /** Files decoded at once (default min(4, cores)). */
  concurrency?: number;
  /** Checked between batches; the journal keeps what is done. */
  signal?: AbortSignal;
  onProgress?(progress: EmbedDirProgress): void;
  /** A file that could not be read or decoded (it is listed in the index as failed). */
  onSkip?(item: BatchItem): void;
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
  resumedBatches: number;
  out: string;
  index: string;
}

export function defaultIndexPath(out: string): string {
  return /\.(npy|jsonl)$/i.test(out) ? out.replace(/\.(npy|jsonl)$/i, '.index.json') : `${out}.index.json`;
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

interface Prepared {
  items: BatchItem[];
  pixels: Float32Array[];
}

export async function embedDir(clip: Clip, options: EmbedDirOptions): Promise<EmbedDirResult> {
  if (typeof (clip as Partial<Clip> | null)?.embedImages !== 'function') throw invalid('a loaded Clip (from Clip.load)', 'clip', clip);
  if (!is.plainObject(options)) throw invalid('an options object {folder, out, ...}', 'options', options);
  const format = options.format ?? (/\.jsonl$/i.test(options.out) ? 'jsonl' : 'npy');
  if (format !== 'npy' && format !== 'jsonl') throw new ClipError('E_INVALID_ARGUMENT', `format must be npy or jsonl, got ${String(format)}`);
  const B = options.batchSize ?? 16;
  if (!Number.isInteger(B) || B < 1 || B > 4096) throw new ClipError('E_INVALID_ARGUMENT', `batch size must be an integer in 1..4096, got ${B}`);
  const shard = options.shard ?? { index: 0, count: 1 };
  const concurrency = options.concurrency ?? Math.min(4, availableParallelism());
  const indexPath = options.index ?? defaultIndexPath(options.out);
  const D = clip.embedDim;

  const files = await listImages(options.folder, options.extensions ?? IMAGE_EXTENSIONS);
  const entries = selectShard(files, shard);
  const batches: FileEntry[][] = [];
  for (let i = 0; i < entries.length; i += B) batches.push(entries.slice(i, i + B));

  const run = {
    files: listHash(files),
    count: files.length,
    shard: `${shard.index}/${shard.count}`,
    batch: B,
    format,
    model: options.modelId ?? '',
    backend: clip.backend,
    precision: clip.precision,
    dim: D,
    maxPixels: options.maxPixels ?? 0,
  };
  const journalPath = `${options.out}.journal`;
  if (options.restart !== true && !existsSync(journalPath)) {
    const finished = finishedRun(options.out, indexPath, run);
    if (finished) return { ...finished, out: options.out, index: indexPath };
  }
  const journal = Journal.open(journalPath, run, options.restart === true);
  try {
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

    const todo = batches.map((_, k) => k).filter((k) => !journal.done.has(k));
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
      journal.append(todo[t], items, rows);
      for (const item of items) if (item.error !== undefined) options.onSkip?.(item);
      progress.done += items.length;
      progress.failed += items.filter((it) => it.error !== undefined).length;
      options.onProgress?.({ ...progress });
    }
    if (options.signal?.aborted) throw options.signal.reason;

    const all = batches.flatMap((_, k) => journal.done.get(k)!);
    const embedded = all.filter((it) => it.error === undefined);
    writeOutput(journal, batches.length, options.out, format, D, embedded);
    writeIndex(indexPath, { root: path.resolve(options.folder), run, items: all });
    journal.remove();
    return { total: entries.length, embedded: embedded.length, failed: all.filter((it) => it.error !== undefined), resumedBatches, out: options.out, index: indexPath };
  } finally {
    journal.close();
  }
}

/** The result of an earlier run that finished with the same settings, read from its index; else undefined. */
function finishedRun(out: string, indexPath: string, run: Record<string, string | number>): Omit<EmbedDirResult, 'out' | 'index'> | undefined {
  if (!existsSync(out) || !existsSync(indexPath)) return undefined;
  try {
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { run: unknown; files: (BatchItem & { row: number | null })[] };
    if (JSON.stringify(index.run) !== JSON.stringify(run)) return undefined;
    const failed = index.files.filter((f) => f.row === null).map(({ row: _row, ...item }) => item);
    return { complete: true, total: index.files.length, embedded: index.files.length - failed.length, failed, resumedBatches: 0 };
  } catch {
    return undefined;
  }
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
function writeIndex(file: string, info: { root: string; run: Record<string, string | number>; items: BatchItem[] }): void {
  writeAtomic(file, (write) => {
    const run = info.run;
    const embedded = info.items.filter((it) => it.error === undefined).length;
    write(`{"version":1,"root":${JSON.stringify(info.root)},"run":${JSON.stringify(run)},"embedded":${embedded},"failed":${info.items.length - embedded},"files":[\n`);
    let row = 0;
    info.items.forEach((it, i) => {
      const entry = it.error === undefined ? { path: it.path, index: it.index, row: row++ } : { path: it.path, index: it.index, row: null, error: it.error, code: it.code };
      write(`${JSON.stringify(entry)}${i + 1 < info.items.length ? ',' : ''}\n`);
    });
    write(']}\n');
  });
}
