/** Output files written atomically (a temporary beside the target, fsynced, then renamed): .npy and jsonl. */
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

/** NumPy .npy v1.0 header of a C-order little-endian float32 [rows, cols] array. */
export function npyHeader(rows: number, cols: number): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const unpadded = 10 + dict.length + 1;
  const padded = Math.ceil(unpadded / 64) * 64;
  const header = Buffer.alloc(padded, 0x20);
  Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0]).copy(header, 0);
  header.writeUInt16LE(padded - 10, 8);
  header.write(dict, 10, 'latin1');
  header[padded - 1] = 0x0a;
  return header;
}

/**
 * Removes `<file>.tmp-<pid>` files that a killed run left behind; returns their names. Call it only while
 * holding the output's lock: then no live run is writing any of them, whichever host or pid made them.
 */
export function removeStaleTemporaries(file: string): string[] {
  const dir = path.dirname(path.resolve(file));
  const prefix = `${path.basename(file)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)));
  } catch {
    return [];
  }
  for (const name of names) rmSync(path.join(dir, name), { force: true });
  return names;
}

/** Writes through `fill` into a temporary file (`<file>.tmp-<pid>`), then renames it over `file`. */
export function writeAtomic(file: string, fill: (write: (data: string | Uint8Array) => void) => void): void {
  const tmp = `${file}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx'); // never through a link or FIFO planted under that name
  try {
    fill((data) => {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    });
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/** The bytes of float32 rows, little-endian (the platform order on every machine Node supports here). */
export function rowBytes(rows: Float32Array): Uint8Array {
  return new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
}
