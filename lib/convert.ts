/**
 * convertModel: rewrites a model's weights as one safetensors file in bf16 (round-to-nearest-even from fp32)
 * or fp32, tensor by tensor (only one tensor in memory at a time), next to a copy of open_clip_config.json and
 * the vocabulary: a model directory that describeModel and the engines accept.
 */
import { copyFile, mkdir, open, rename, rm } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readTensor } from './checkpoint/index.js';
import { openFile, readExact } from './checkpoint/io.js';
import { ClipError } from './errors.js';
import { resolveModel, type ResolveOptions } from './hub/index.js';
import { DTYPE_BYTES, type TensorDType, type TensorEntry, isContiguous, numel } from './manifest.js';
import { describeModel, type ModelPaths } from './model-dir.js';
import { invalid, is, oneOf } from './validate.js';

export type ConvertPrecision = 'bf16' | 'fp32';

export interface ConvertOptions {
  /** A model directory, explicit file paths, or a Hub name (resolved with `hub`). */
  model: string | ModelPaths;
  /** Output directory (created if needed). */
  out: string;
  precision: ConvertPrecision;
  /** Bytes of tensor data written so far, of the total. */
  onProgress?: (written: number, total: number) => void;
  /** Options for resolving a Hub name (cache, token, offline, download progress). */
  hub?: ResolveOptions;
}

export interface ConvertResult {
  dir: string;
  weights: string;
  tensors: number;
  /** Size of the written safetensors file. */
  bytes: number;
}

export const CONVERTED_WEIGHTS = 'open_clip_model.safetensors';
const FLOAT_DTYPES = new Set<TensorDType>(['F32', 'F16', 'BF16', 'F64']);

/** fp32 -> bf16 bits, rounding to nearest even; NaN stays a (quiet) NaN of the same sign. */
export function float32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = (x >>> 16) | 0x0040;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

interface Planned {
  entry: TensorEntry;
  dtype: TensorDType;
  begin: number;
  end: number;
}

function plan(tensors: Iterable<TensorEntry>, precision: ConvertPrecision): Planned[] {
  const target: TensorDType = precision === 'bf16' ? 'BF16' : 'F32';
  let offset = 0;
  return [...tensors]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((entry) => {
      const dtype = FLOAT_DTYPES.has(entry.dtype) ? target : entry.dtype;
      const begin = offset;
      offset += numel(entry.shape) * DTYPE_BYTES[dtype];
      return { entry, dtype, begin, end: offset };
    });
}

/** The safetensors header: JSON padded with spaces to a multiple of 8 bytes, after its 8-byte length. */
function header(items: Planned[], precision: ConvertPrecision): Buffer {
  const json: Record<string, unknown> = { __metadata__: { format: 'pt', converted_by: 'convnext-clip', precision } };
  for (const p of items) json[p.entry.name] = { dtype: p.dtype, shape: p.entry.shape, data_offsets: [p.begin, p.end] };
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - ((Buffer.byteLength(text) + 8) % 8)) % 8);
  const body = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return out;
}

/** One tensor's output bytes. */
async function tensorBytes(p: Planned): Promise<Uint8Array> {
  const { entry } = p;
  if (!FLOAT_DTYPES.has(entry.dtype)) {
    if (!isContiguous(entry)) throw new ClipError('E_TENSOR_SHAPE', `tensor ${entry.name} (${entry.dtype}) is not contiguous; cannot copy it`, { subject: entry.name });
    const { handle } = await openFile(entry.file);
    try {
      return await readExact(handle, entry.file, entry.offset, entry.byteLength, `tensor ${entry.name}`);
    } finally {
      await handle.close();
    }
  }
  const values = await readTensor(entry, { maxBytes: Number.MAX_SAFE_INTEGER });
  const data = p.dtype === 'BF16' ? float32ToBf16(values) : values;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function sameDir(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

export async function convertModel(options: ConvertOptions): Promise<ConvertResult> {
  if (!is.plainObject(options)) throw invalid('an options object {model, out, precision}', 'options', options);
  oneOf(options.precision, 'options.precision', ['bf16', 'fp32'] as const);
  if (os.endianness() !== 'LE') throw new ClipError('E_INVALID_ARGUMENT', 'convertModel needs a little-endian machine');
  const source = typeof options.model === 'string' ? await resolveModel(options.model, options.hub) : options.model;
  const { files, manifest } = await describeModel(source);
  const out = path.resolve(options.out);
  if (sameDir(path.dirname(files.weights), out) || sameDir(path.dirname(files.config), out)) {
    throw new ClipError('E_INVALID_ARGUMENT', `--out ${out} is the source model's directory; choose another`, { subject: out });
  }
  await mkdir(out, { recursive: true });

  const items = plan(manifest.tensors.values(), options.precision);
  const total = items.length ? items[items.length - 1].end : 0;
  const head = header(items, options.precision);
  const weights = path.join(out, CONVERTED_WEIGHTS);
  const tmp = `${weights}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w');
  try {
    await handle.write(head, 0, head.length, 0);
    let written = 0;
    for (const p of items) {
      const bytes = await tensorBytes(p);
      await handle.write(bytes, 0, bytes.length, head.length + p.begin);
      written += bytes.length;
      options.onProgress?.(written, total);
    }
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(tmp, weights);

  await copyFile(files.config, path.join(out, 'open_clip_config.json'));
  for (const file of files.vocabulary ? Object.values(files.vocabulary) : []) {
    await copyFile(file, path.join(out, path.basename(file)));
  }
  return { dir: out, weights, tensors: items.length, bytes: head.length + total };
}
