/**
 * Bounded reads of regular files. Files are opened with O_NONBLOCK (opening a FIFO never waits for a writer)
 * and checked with fstat on the open descriptor (no race with a rename), so FIFOs, devices, sockets and
 * directories are refused with a typed error before a byte is read; a file over its kind's size limit is
 * refused from its size, so nothing is read without bound.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { ClipError } from '../errors.js';

const MiB = 1024 * 1024;

/** Size limits by kind of file (the real files are far smaller: a config is ~1 KB, vocab.json ~1 MB). */
export const FILE_LIMITS = {
  /** open_clip_config.json and other JSON settings. */
  config: 4 * MiB,
  /** vocab.json, merges.txt, a .gz vocabulary, and the gunzipped text of one (3.2 MB for open_clip's). */
  vocabulary: 32 * MiB,
} as const;

/** O_NONBLOCK where the platform has it (not on Windows, which has no FIFOs to block on). */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

export interface ReadLimit {
  /** Names the file in messages: "image", "vocab.json", ... */
  what: string;
  maxBytes: number;
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

function openError(file: string, what: string, err: unknown): ClipError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new ClipError('E_NOT_FOUND', `${what} not found: ${file}`, { subject: file, cause: err });
  return new ClipError('E_IO', `cannot open ${what} ${file}: ${(err as Error).message}`, { subject: file, cause: err });
}

/** E_IO for a FIFO, device, socket or directory where a regular file is needed. */
export function notRegular(file: string, what: string, stats: Stats): ClipError {
  return new ClipError('E_IO', `${what} ${file} is ${kindOf(stats)}, not a regular file`, { subject: file });
}

export function tooLarge(file: string, what: string, size: number, maxBytes: number): ClipError {
  return new ClipError('E_INPUT_TOO_LARGE', `${what} ${file} is ${size} bytes, over the limit of ${maxBytes} bytes for this kind of file`, { subject: file });
}

/** Opens a regular file for reading without blocking; E_NOT_FOUND, or E_IO for anything else. */
export async function openRegularFile(file: string, what = 'file'): Promise<{ handle: FileHandle; size: number; stats: Stats }> {
  let handle: FileHandle;
  try {
    handle = await open(file, READ_FLAGS);
  } catch (err) {
    throw openError(file, what, err);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw notRegular(file, what, stats);
    return { handle, size: stats.size, stats };
  } catch (err) {
    await handle.close();
    if (err instanceof ClipError) throw err;
    throw new ClipError('E_IO', `cannot read ${what} ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
}

/** The whole of a regular file of at most `maxBytes` (refused from its size, before reading). */
export async function readRegularFile(file: string, limit: ReadLimit): Promise<Buffer> {
  const { handle, size } = await openRegularFile(file, limit.what);
  try {
    if (size > limit.maxBytes) throw tooLarge(file, limit.what, size, limit.maxBytes);
    const buf = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(buf, done, size - done, done);
      if (bytesRead === 0) break; // it shrank meanwhile
      done += bytesRead;
    }
    return buf.subarray(0, done);
  } catch (err) {
    if (err instanceof ClipError) throw err;
    throw new ClipError('E_IO', `cannot read ${limit.what} ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  } finally {
    await handle.close();
  }
}

/** readRegularFile, synchronously (small files read between batches). */
export function readRegularFileSync(file: string, limit: ReadLimit): Buffer {
  let fd: number;
  try {
    fd = openSync(file, READ_FLAGS);
  } catch (err) {
    throw openError(file, limit.what, err);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw notRegular(file, limit.what, stats);
    if (stats.size > limit.maxBytes) throw tooLarge(file, limit.what, stats.size, limit.maxBytes);
    const buf = Buffer.allocUnsafe(stats.size);
    let done = 0;
    while (done < stats.size) {
      const n = readSync(fd, buf, done, stats.size - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } catch (err) {
    if (err instanceof ClipError) throw err;
    throw new ClipError('E_IO', `cannot read ${limit.what} ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  } finally {
    closeSync(fd);
  }
}
