/**
 * safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
 * then the data. We validate the header fully (size bound, known dtypes, sizes that match shapes, offsets
 * inside the file, no overlaps) and return a manifest; tensor bytes are never read here.
 */
import { ClipError } from '../errors.js';
import { openFile, readExact } from './io.js';
import { DTYPE_BYTES, type TensorDType, type TensorEntry, type TensorManifest, contiguousStrides, numel } from '../manifest.js';

/** A header larger than this is refused (the real XXLarge header is about 100 KB). */
export const MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024;

function corrupt(file: string, why: string): ClipError {
  return new ClipError('E_CHECKPOINT_CORRUPT', `${file}: invalid safetensors file: ${why}`, { subject: file });
}

export async function readSafetensorsManifest(file: string): Promise<TensorManifest> {
  const { handle, size } = await openFile(file);
  try {
    if (size < 8) throw corrupt(file, `file is ${size} bytes, shorter than the 8-byte header length`);
    const headerLength = (await readExact(handle, file, 0, 8, 'header length')).readBigUInt64LE(0);
    if (headerLength < 2n || headerLength > BigInt(MAX_SAFETENSORS_HEADER)) {
      throw corrupt(file, `header length ${headerLength} is outside 2..${MAX_SAFETENSORS_HEADER}`);
    }
    const n = Number(headerLength);
    if (8 + n > size) throw corrupt(file, `header of ${n} bytes runs past the end of the ${size}-byte file (truncated?)`);
    const headerBytes = await readExact(handle, file, 8, n, 'header');
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
    } catch (err) {
      throw corrupt(file, `header is not valid UTF-8 JSON (${(err as Error).message})`);
    }
    return { format: 'safetensors', files: [file], tensors: parseHeader(file, header, 8 + n, size) };
  } finally {
    await handle.close();
  }
}

function parseHeader(file: string, header: unknown, dataStart: number, fileSize: number): Map<string, TensorEntry> {
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw corrupt(file, 'header is not a JSON object');
  const tensors = new Map<string, TensorEntry>();
  const ranges: Array<[number, number, string]> = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    if (typeof info !== 'object' || info === null) throw corrupt(file, `entry ${JSON.stringify(name)} is not an object`);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) throw corrupt(file, `tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw corrupt(file, `tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      throw corrupt(file, `tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const bytes = numel(shape) * DTYPE_BYTES[dtype as TensorDType];
    if (end - begin !== bytes) throw corrupt(file, `tensor ${name} spans ${end - begin} bytes but its shape [${shape}] of ${dtype} needs ${bytes}`);
    if (dataStart + end > fileSize) throw corrupt(file, `tensor ${name} ends at byte ${dataStart + end}, past the end of the ${fileSize}-byte file (truncated?)`);
    ranges.push([begin, end, name]);
    tensors.set(name, {
      name,
      dtype: dtype as TensorDType,
      shape: shape as number[],
      strides: contiguousStrides(shape as number[]),
      file,
      offset: dataStart + begin,
      byteLength: bytes,
    });
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < ranges.length; i++) {
    const [prevBegin, prevEnd, prevName] = ranges[i - 1];
    const [begin, end, name] = ranges[i];
    if (begin < prevEnd && end > begin && prevEnd > prevBegin) throw corrupt(file, `tensors ${prevName} and ${name} overlap`);
  }
  return tensors;
}
