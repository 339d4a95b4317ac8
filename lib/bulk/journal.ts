/**
 * The append-only journal beside an embed-dir output (`<out>.journal`): a header line describing the run, then
 * one JSON line per finished batch (its files, and its rows as base64 little-endian float32), fsynced per batch.
 * A torn last line (the process was killed mid-write) is cut off when the journal is reopened. Only the file
 * lists stay in memory; rows are streamed back from the file when the output is assembled.
 */
import { closeSync, existsSync, fsyncSync, openSync, readSync, statSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { ClipError } from '../errors.js';
import type { WeightsFingerprint } from './model-identity.js';

export interface JournalHeader {
  type: 'header';
  version: 2;
  /** Everything that must match for a resume to produce the same bytes. */
  run: Record<string, string | number>;
  /** The checkpoint's hash with the stat it was computed for (a resume whose stat matches skips rehashing). */
  weights?: WeightsFingerprint;
}

export interface BatchItem {
  index: number;
  path: string;
  /** Set when the file could not be read or decoded. */
  error?: string;
  code?: string;
}

export interface BatchRecord {
  type: 'batch';
  batch: number;
  items: BatchItem[];
  /** Rows of the items without an error, in order: base64 of float32 little-endian. */
  data: string;
}

/** Complete lines of a file with the byte offset just past each; a last line without '\n' is not given. */
export function* readLines(file: string): Generator<{ line: string; end: number }> {
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(1 << 20);
    let pending: Buffer[] = [];
    for (let base = 0; ; ) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return;
      let start = 0;
      for (let nl = chunk.indexOf(10, 0); nl >= 0 && nl < n; nl = chunk.indexOf(10, start)) {
        const piece = chunk.subarray(start, nl);
        const line = pending.length > 0 ? Buffer.concat([...pending, piece]).toString('utf8') : piece.toString('utf8');
        pending = [];
        start = nl + 1;
        yield { line, end: base + start };
      }
      if (start < n) pending.push(Buffer.from(chunk.subarray(start, n)));
      base += n;
    }
  } finally {
    closeSync(fd);
  }
}

function parse(line: string): JournalHeader | BatchRecord | undefined {
  try {
    return JSON.parse(line) as JournalHeader | BatchRecord;
  } catch {
    return undefined;
  }
}

export class Journal {
  private constructor(
    readonly file: string,
    private fd: number,
    /** Files of each finished batch (earlier runs' and this one's), by batch number. */
    readonly done: Map<number, BatchItem[]>,
  ) {}

  /** The header of an existing journal, or undefined (none, or unreadable: Journal.open decides). */
  static peekHeader(file: string): JournalHeader | undefined {
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) return undefined;
    for (const { line } of readLines(file)) {
      const record = parse(line);
      return record?.type === 'header' ? record : undefined;
    }
    return undefined;
  }

  /** Opens the journal, resuming when its header matches `run`; a different run is refused unless `restart`. */
  static open(file: string, run: JournalHeader['run'], restart = false, weights?: WeightsFingerprint): Journal {
    const done = new Map<number, BatchItem[]>();
    if (existsSync(file) && !restart) {
      let good = 0;
      let header = false;
      for (const { line, end } of readLines(file)) {
        const record = parse(line);
        if (!record) break; // a torn write: everything after it is dropped
        if (!header) {
          if (record.type !== 'header' || record.version !== 2 || JSON.stringify(record.run) !== JSON.stringify(run)) {
            const why = record.type !== 'header' || record.version !== 2 ? 'an older journal format' : differences(record.run, run);
            throw new ClipError('E_INVALID_ARGUMENT', `${file} is the journal of a different run (${why}); remove it or pass --restart`, { subject: file });
          }
          header = true;
        } else if (record.type === 'batch') {
          done.set(record.batch, record.items);
        }
        good = end;
      }
      if (header) {
        truncateSync(file, good);
        return new Journal(file, openSync(file, 'a'), done);
      }
    }
    const journal = new Journal(file, openSync(file, 'w'), done);
    journal.write({ type: 'header', version: 2, run, weights });
    return journal;
  }

  /** Appends a finished batch and forces it to disk. */
  append(batch: number, items: BatchItem[], rows: Float32Array): void {
    this.write({ type: 'batch', batch, items, data: encodeRows(rows) });
    this.done.set(batch, items);
  }

  /** Rows of each batch, as stored (file order). */
  *rows(): Generator<{ batch: number; rows: Float32Array }> {
    for (const { line } of readLines(this.file)) {
      const record = parse(line);
      if (record?.type === 'batch') yield { batch: record.batch, rows: decodeRows(record.data) };
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  remove(): void {
    this.close();
    unlinkSync(this.file);
  }

  private write(record: JournalHeader | BatchRecord): void {
    writeSync(this.fd, `${JSON.stringify(record)}\n`);
    fsyncSync(this.fd);
  }
}

const WHAT: Record<string, string> = {
  files: 'other files in the folder',
  arch: 'another architecture',
  preprocess: 'other preprocessing',
  library: 'another convnext-clip version',
  maxPixels: 'another --max-pixels',
};

/** What differs between a journal's run and this one, in words. */
export function differences(old: JournalHeader['run'], run: JournalHeader['run']): string {
  if (!old || typeof old !== 'object') return 'an unreadable header';
  const keys = [...new Set([...Object.keys(old), ...Object.keys(run)])].filter((k) => JSON.stringify(old[k]) !== JSON.stringify(run[k]));
  const hashes = (k: string) => `${String(old[k]).slice(0, 12)}... then, ${String(run[k]).slice(0, 12)}... now`;
  return keys.map((k) => (k === 'weights' ? `other weights (sha256 ${hashes(k)})` : WHAT[k]) ?? `another ${k}: ${JSON.stringify(old[k])} then, ${JSON.stringify(run[k])} now`).join(', ') || 'another key order';
}

export function encodeRows(rows: Float32Array): string {
  return Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength).toString('base64');
}

export function decodeRows(data: string): Float32Array {
  const bytes = Buffer.from(data, 'base64');
  const out = new Float32Array(bytes.length / 4);
  Buffer.from(out.buffer).set(bytes);
  return out;
}
