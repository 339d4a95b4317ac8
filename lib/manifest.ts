/**
 * A tensor manifest says where each tensor's bytes live, so a backend reads them itself (pread/mmap) and no
 * JavaScript buffer ever holds the whole model.
 */
export type TensorDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<TensorDType, number> = {
  F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/**
 * The one weight dtype policy of every backend: F32, F16 and BF16 are read; F64 (and integer) weights are refused
 * with E_TENSOR_SHAPE (convert them first: `convnext-clip convert`). See docs/validation.md.
 */
export const WEIGHT_DTYPES: ReadonlySet<TensorDType> = new Set<TensorDType>(['F32', 'F16', 'BF16']);

export interface TensorEntry {
  name: string;
  dtype: TensorDType;
  shape: number[];
  /** Element strides (row-major contiguous for safetensors; whatever torch saved for .bin). */
  strides: number[];
  /** Absolute path of the file holding the bytes. */
  file: string;
  /** Byte offset, in `file`, of element [0, 0, ...]. */
  offset: number;
  /** Bytes spanned from `offset` to one past the last element (numel * itemsize when contiguous). */
  byteLength: number;
}

export interface TensorManifest {
  format: 'safetensors' | 'torch-zip';
  files: string[];
  tensors: Map<string, TensorEntry>;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function isContiguous(entry: Pick<TensorEntry, 'shape' | 'strides'>): boolean {
  const expected = contiguousStrides(entry.shape);
  return entry.shape.every((d, i) => d === 1 || entry.strides[i] === expected[i]);
}
