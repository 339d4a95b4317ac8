/** Row-major [rows, dim] float32 matrices and the vector math CLIP needs. */
import { invalid, mismatch } from './validate.js';

export class Embeddings {
  constructor(
    readonly data: Float32Array,
    readonly rows: number,
    readonly dim: number,
  ) {
    if (!(data instanceof Float32Array)) throw invalid('a Float32Array', 'data', data);
    if (!Number.isSafeInteger(rows) || rows < 0) throw invalid('a non-negative integer', 'rows', rows);
    if (!Number.isSafeInteger(dim) || dim < 0) throw invalid('a non-negative integer', 'dim', dim);
    if (data.length !== rows * dim) throw mismatch(`${rows} x ${dim} values`, 'data', `${data.length}`);
  }

  row(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) throw invalid(`a row index between 0 and ${this.rows - 1}`, 'i', i);
    return this.data.subarray(i * this.dim, (i + 1) * this.dim);
  }

  toArray(): number[][] {
    return Array.from({ length: this.rows }, (_, i) => Array.from(this.row(i)));
  }

  /** A copy with every row scaled to unit L2 norm (a zero row stays zero). */
  normalized(): Embeddings {
    const out = new Float32Array(this.data);
    for (let r = 0; r < this.rows; r++) normalizeInPlace(out.subarray(r * this.dim, (r + 1) * this.dim));
    return new Embeddings(out, this.rows, this.dim);
  }
}

export function normalizeInPlace(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  for (let i = 0; i < v.length; i++) v[i] *= scale;
  return v;
}

export function softmaxInPlace(v: Float32Array): Float32Array {
  let max = -Infinity;
  for (const x of v) max = Math.max(max, x);
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] = Math.exp(v[i] - max);
  for (let i = 0; i < v.length; i++) v[i] /= sum;
  return v;
}
