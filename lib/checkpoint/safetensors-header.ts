/**
 * The one safetensors header parser, for Node (lib/checkpoint/safetensors.ts) and the browser entry alike (no
 * Node imports). Layout: an 8-byte little-endian header length, a JSON header {name: {dtype, shape,
 * data_offsets}, __metadata__?}, then the data section. Everything is validated before any tensor byte is read:
 * size bound, UTF-8 JSON object, no duplicate keys, known dtypes, integer shapes and offsets (safe integers only:
 * no 2^53 rounding), byte counts = dtype size x shape product, ranges inside the data section, and no two tensors
 * sharing a byte (sorted by begin, each range starts at or after the end of every earlier one).
 */
import { ClipError } from '../errors.js';
import { DTYPE_BYTES, type TensorDType, type TensorEntry, type TensorManifest, contiguousStrides } from '../manifest.js';

/** A header larger than this is refused (the real XXLarge header is about 100 KB). */
export const MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024;
const MAX_RANK = 8;

/** Random access to a file's bytes: `read` fills `into` from `offset` or rejects. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, into: Uint8Array): Promise<void>;
}

function corrupt(file: string, why: string): ClipError {
  return new ClipError('E_CHECKPOINT_CORRUPT', `${file}: invalid safetensors file: ${why}`, { subject: file });
}

/** The manifest of a safetensors file; every entry's `file` is `name`. */
export async function readSafetensorsHeader(source: ByteSource, name: string): Promise<TensorManifest> {
  const size = source.size;
  if (!Number.isSafeInteger(size) || size < 8) throw corrupt(name, `file is ${size} bytes, shorter than the 8-byte header length`);
  const lengthBytes = new Uint8Array(8);
  await source.read(0, lengthBytes);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength < 2n || headerLength > BigInt(MAX_SAFETENSORS_HEADER)) throw corrupt(name, `header length ${headerLength} is outside 2..${MAX_SAFETENSORS_HEADER}`);
  const n = Number(headerLength);
  if (8 + n > size) throw corrupt(name, `header of ${n} bytes runs past the end of the ${size}-byte file (truncated?)`);
  const headerBytes = new Uint8Array(n);
  await source.read(8, headerBytes);
  return { format: 'safetensors', files: [name], tensors: parseSafetensorsHeader(name, headerBytes, 8 + n, size) };
}

/** Header bytes -> entries whose `offset` is absolute in a file of `fileSize` bytes whose data starts at `dataStart`. */
export function parseSafetensorsHeader(file: string, headerBytes: Uint8Array, dataStart: number, fileSize: number): Map<string, TensorEntry> {
  let text: string;
  let header: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
    header = JSON.parse(text);
  } catch (err) {
    throw corrupt(file, `header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw corrupt(file, 'header is not a JSON object');
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw corrupt(file, `key ${JSON.stringify(duplicate)} appears twice in the header`);

  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorEntry>();
  const ranges: Array<{ begin: number; end: number; name: string }> = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof info !== 'object' || info === null || Array.isArray(info)) throw corrupt(file, '__metadata__ is not an object');
      continue;
    }
    if (typeof info !== 'object' || info === null || Array.isArray(info)) throw corrupt(file, `entry ${JSON.stringify(name)} is not an object`);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) throw corrupt(file, `tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw corrupt(file, `tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      throw corrupt(file, `tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const bytes = byteCount(shape as number[], DTYPE_BYTES[dtype as TensorDType]);
    if (bytes === undefined) throw corrupt(file, `tensor ${name} has a shape [${shape}] too large to address`);
    if (end - begin !== bytes) throw corrupt(file, `tensor ${name} spans ${end - begin} bytes but its shape [${shape}] of ${dtype} needs ${bytes}`);
    if (end > dataSize) throw corrupt(file, `tensor ${name} ends at byte ${dataStart + end}, past the end of the ${fileSize}-byte file (truncated?)`);
    ranges.push({ begin, end, name });
    tensors.set(name, { name, dtype: dtype as TensorDType, shape: shape as number[], strides: contiguousStrides(shape as number[]), file, offset: dataStart + begin, byteLength: bytes });
  }
  // No shared bytes: sorted by begin, each range starts at or after the furthest end so far (empty ones too).
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let furthest = { end: 0, name: '' };
  for (const r of ranges) {
    if (r.begin < furthest.end) throw corrupt(file, `tensors ${furthest.name} and ${r.name} overlap`);
    if (r.end >= furthest.end) furthest = r;
  }
  return tensors;
}

/** dtype size x shape product, or undefined past 2^53 (never a rounded count). */
function byteCount(shape: readonly number[], itemsize: number): number | undefined {
  let n = itemsize;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

/** The first object key (at any depth) that appears twice in valid JSON text; JSON.parse would keep the last. */
function firstDuplicateKey(text: string): string | undefined {
  const stack: Array<Set<string> | null> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') stack.push(new Set());
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const keys = stack[stack.length - 1];
      if (keys) {
        let k = j + 1;
        while (text[k] === ' ' || text[k] === '\t' || text[k] === '\n' || text[k] === '\r') k++;
        if (text[k] === ':') {
          const key = JSON.parse(text.slice(i, j + 1)) as string;
          if (keys.has(key)) return key;
          keys.add(key);
        }
      }
      i = j;
    }
  }
  return undefined;
}
