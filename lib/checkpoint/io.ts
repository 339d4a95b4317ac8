/** Small file helpers shared by the checkpoint readers: typed open errors and exact positional reads. */
import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ClipError } from '../errors.js';
import { openRegularFile } from '../fs/read-file.js';

export function corrupt(file: string, why: string, cause?: unknown): ClipError {
  return new ClipError('E_CHECKPOINT_CORRUPT', `${file}: ${why}`, { subject: file, cause });
}

/**
 * Opens a regular file for reading without blocking (a FIFO is refused, never waited on); a missing file is
 * E_NOT_FOUND, a FIFO, device or directory E_IO.
 */
export async function openFile(file: string): Promise<{ handle: FileHandle; size: number }> {
  const { handle, size } = await openRegularFile(file, 'checkpoint');
  return { handle, size };
}

export function ioError(file: string, err: unknown): ClipError {
  return new ClipError('E_IO', `cannot read ${file}: ${(err as Error).message}`, { subject: file, cause: err });
}

/** Reads exactly `length` bytes at `position`; a short read (file ended) is E_CHECKPOINT_CORRUPT. */
export async function readExact(handle: FileHandle, file: string, position: number, length: number, what: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await handle.read(buf, done, length - done, position + done));
    } catch (err) {
      throw ioError(file, err);
    }
    if (n === 0) throw corrupt(file, `${what} at byte ${position} runs past the end of the file (truncated?)`);
    done += n;
  }
  return buf;
}

/** readExact with a synchronous pread, for many tiny reads. */
export function readExactSync(fd: number, file: string, position: number, length: number, what: string): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = readSync(fd, buf, done, length - done, position + done);
    } catch (err) {
      throw ioError(file, err);
    }
    if (n === 0) throw corrupt(file, `${what} at byte ${position} runs past the end of the file (truncated?)`);
    done += n;
  }
  return buf;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (the zip polynomial). */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
