/** Reads one (small) tensor from disk into a Float32Array, converting F32/F16/BF16/F64 and honouring strides. */
import { ClipError } from '../errors.js';
import { DTYPE_BYTES, type TensorEntry, numel } from '../manifest.js';
import { openFile, readExact } from './io.js';
import { invalid, is, optionsObject } from '../validate.js';

/** readTensor refuses tensors whose bytes on disk, or float32 result, exceed this. */
export const MAX_READ_TENSOR_BYTES = 256 * 1024 * 1024;

export async function readTensor(entry: TensorEntry, options: { maxBytes?: number } = {}): Promise<Float32Array> {
  if (!is.plainObject(entry) || !Array.isArray(entry.shape) || !Array.isArray(entry.strides)) throw invalid('a tensor manifest entry', 'entry', entry);
  const maxBytes = optionsObject(options, 'options').maxBytes ?? MAX_READ_TENSOR_BYTES;
  const { name, dtype, shape, strides } = entry;
  const read = elementReader(dtype);
  if (!read) throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has dtype ${dtype}; readTensor reads float tensors only`, { subject: name });
  const count = numel(shape);
  if (count * 4 > maxBytes || entry.byteLength > maxBytes) {
    throw new ClipError('E_INPUT_TOO_LARGE', `tensor ${name} (${entry.byteLength} bytes) exceeds the ${maxBytes}-byte readTensor limit`, { subject: name });
  }
  const out = new Float32Array(count);
  if (count === 0) return out;
  const { handle } = await openFile(entry.file);
  let bytes: Buffer;
  try {
    bytes = await readExact(handle, entry.file, entry.offset, entry.byteLength, `tensor ${name}`);
  } finally {
    await handle.close();
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const itemsize = DTYPE_BYTES[dtype];
  // Walk the index space in row-major order, tracking the element offset of the strided view.
  const index = new Array<number>(shape.length).fill(0);
  let element = 0;
  for (let i = 0; i < count; i++) {
    out[i] = read(view, element * itemsize);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) {
        element += strides[d];
        break;
      }
      element -= (shape[d] - 1) * strides[d];
      index[d] = 0;
    }
  }
  return out;
}

function elementReader(dtype: TensorEntry['dtype']): ((view: DataView, at: number) => number) | undefined {
  switch (dtype) {
    case 'F32':
      return (v, at) => v.getFloat32(at, true);
    case 'F64':
      return (v, at) => v.getFloat64(at, true);
    case 'F16':
      return (v, at) => halfToFloat(v.getUint16(at, true));
    case 'BF16':
      return (v, at) => bf16ToFloat(v.getUint16(at, true));
    default:
      return undefined;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bf16ToFloat(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
