/** A fixture model copied to a temp folder with some tensors rewritten (dtype or values), for hostile-load tests. */
import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { tempFolder } from './checkpoint-tmp.js';
import { safetensorsBytes } from './safetensors-writer.js';

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** `rewrite(name, dtype, bytes)` returns a replacement {dtype, bytes} or undefined to keep the tensor. */
export function copyModelWith(dir: string, rewrite: (name: string, dtype: string, bytes: Buffer) => { dtype: string; bytes: Uint8Array } | undefined): string {
  const out = tempFolder('model-copy');
  for (const file of readdirSync(dir)) {
    if (file === 'open_clip_config.json' || file === 'vocab.json' || file === 'merges.txt') copyFileSync(path.join(dir, file), path.join(out.dir, file));
  }
  const raw = readFileSync(path.join(dir, 'open_clip_model.safetensors'));
  const n = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, HeaderEntry>;
  const parts: Uint8Array[] = [];
  const next: Record<string, unknown> = {};
  let at = 0;
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = raw.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    const replaced = rewrite(name, e.dtype, bytes) ?? { dtype: e.dtype, bytes };
    next[name] = { dtype: replaced.dtype, shape: e.shape, data_offsets: [at, at + replaced.bytes.length] };
    parts.push(replaced.bytes);
    at += replaced.bytes.length;
  }
  out.write('open_clip_model.safetensors', safetensorsBytes(next, Buffer.concat(parts)));
  return out.dir;
}

/** F32 bytes -> the same values as F64 bytes. */
export function f32ToF64(bytes: Buffer): Uint8Array {
  const f32 = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return new Uint8Array(Float64Array.from(f32).buffer);
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
