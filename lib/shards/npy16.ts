/**
 * A streaming writer of NumPy .npy v1.0 float16 (`<f2`) [rows, cols] arrays: a fixed-size header is written
 * first with room for any row count, rows are appended as they come, and the header is rewritten with the
 * final shape on close. Memory stays constant whatever the row count.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { ClipError } from '../errors.js';

/** Header bytes: a multiple of 64 with room for shape (2**53 - 1, 99999999). */
const HEADER_BYTES = 128;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of a number, rounded to nearest, ties to even (overflow gives infinity). */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // inf, nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let sub = mant >>> shift;
    if (rest > half || (rest === half && (sub & 1) === 1)) sub++;
    return sign | sub;
  }
  let bits = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (bits & 1) === 1)) bits++; // may carry into the exponent: still right
  return sign | bits;
}

/** The number a binary16 bit pattern stands for. */
export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Little-endian float16 bytes of float32 values. */
export function float16Bytes(values: Float32Array): Buffer {
  const out = Buffer.alloc(values.length * 2);
  for (let i = 0; i < values.length; i++) out.writeUInt16LE(toFloat16Bits(values[i]), i * 2);
  return out;
}

/** The .npy header of a C-order float16 [rows, cols] array, padded to HEADER_BYTES. */
export function npy16Header(rows: number, cols: number): Buffer {
  const dict = `{'descr': '<f2', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  if (10 + dict.length + 1 > HEADER_BYTES) throw new ClipError('E_INVALID_ARGUMENT', `npy shape (${rows}, ${cols}) does not fit the header`);
  const header = Buffer.alloc(HEADER_BYTES, 0x20);
  Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0]).copy(header, 0);
  header.writeUInt16LE(HEADER_BYTES - 10, 8);
  header.write(dict, 10, 'latin1');
  header[HEADER_BYTES - 1] = 0x0a;
  return header;
}

export class Npy16Writer {
  private rows = 0;
  private position = HEADER_BYTES;

  private constructor(
    private readonly handle: FileHandle,
    readonly file: string,
    readonly cols: number,
  ) {}

  static async create(file: string, cols: number): Promise<Npy16Writer> {
    if (!Number.isInteger(cols) || cols < 1 || cols > 99_999_999) throw new ClipError('E_INVALID_ARGUMENT', `npy columns must be 1..99999999, got ${cols}`);
    const handle = await open(file, 'w');
    try {
      await handle.write(npy16Header(0, cols), 0, HEADER_BYTES, 0);
    } catch (err) {
      await handle.close();
      throw err;
    }
    return new Npy16Writer(handle, file, cols);
  }

  get rowCount(): number {
    return this.rows;
  }

  /** Appends rows (float32, rows * cols values), converted to float16. */
  async append(values: Float32Array): Promise<void> {
    if (values.length % this.cols !== 0) throw new ClipError('E_INVALID_ARGUMENT', `${values.length} values are not whole rows of ${this.cols}`);
    const bytes = float16Bytes(values);
    for (let off = 0; off < bytes.length; ) {
      const { bytesWritten } = await this.handle.write(bytes, off, bytes.length - off, this.position);
      off += bytesWritten;
      this.position += bytesWritten;
    }
    this.rows += values.length / this.cols;
  }

  /** Writes the final shape into the header, flushes to disk and closes. */
  async close(): Promise<void> {
    try {
      await this.handle.write(npy16Header(this.rows, this.cols), 0, HEADER_BYTES, 0);
      await this.handle.sync();
    } finally {
      await this.handle.close();
    }
  }

  /** Closes without finishing (the file is to be removed). */
  async abandon(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}
