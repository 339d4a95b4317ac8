/**
 * safetensors headers read from a WeightSource (no Node APIs), for the browser entry: the same checks as
 * lib/checkpoint/safetensors.ts (size bound, known dtypes, sizes that match shapes, offsets inside the file).
 */
import { ClipError } from '../errors.js';
import { DTYPE_BYTES, type TensorDType, type TensorEntry, type TensorManifest, contiguousStrides, numel } from '../manifest.js';
import type { WeightSource } from './wasm-core.js';

const MAX_HEADER = 100 * 1024 * 1024;

function corrupt(name: string, why: string): ClipError {
  return new ClipError('E_CHECKPOINT_CORRUPT', `${name}: invalid safetensors file: ${why}`, { subject: name });
}

/** The manifest of a safetensors file; every entry's `file` is `name`. */
export async function readSafetensorsHeader(source: WeightSource, name: string): Promise<TensorManifest> {
  if (source.size < 8) throw corrupt(name, `file is ${source.size} bytes, shorter than the 8-byte header length`);
  const lengthBytes = new Uint8Array(8);
  await source.read(0, lengthBytes);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength < 2n || headerLength > BigInt(MAX_HEADER)) throw corrupt(name, `header length ${headerLength} is outside 2..${MAX_HEADER}`);
  const n = Number(headerLength);
  if (8 + n > source.size) throw corrupt(name, `header of ${n} bytes runs past the end of the ${source.size}-byte file (truncated?)`);
  const headerBytes = new Uint8Array(n);
  await source.read(8, headerBytes);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw corrupt(name, `header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw corrupt(name, 'header is not a JSON object');
  const tensors = new Map<string, TensorEntry>();
  for (const [key, info] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') continue;
    const { dtype, shape, data_offsets: offsets } = (info ?? {}) as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) throw corrupt(name, `tensor ${key} has unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw corrupt(name, `tensor ${key} has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      throw corrupt(name, `tensor ${key} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const bytes = numel(shape) * DTYPE_BYTES[dtype as TensorDType];
    if (end - begin !== bytes) throw corrupt(name, `tensor ${key} spans ${end - begin} bytes but its shape [${shape}] of ${dtype} needs ${bytes}`);
    if (8 + n + end > source.size) throw corrupt(name, `tensor ${key} ends past the end of the ${source.size}-byte file (truncated?)`);
    tensors.set(key, { name: key, dtype: dtype as TensorDType, shape, strides: contiguousStrides(shape), file: name, offset: 8 + n + begin, byteLength: bytes });
  }
  return { format: 'safetensors', files: [name], tensors };
}
