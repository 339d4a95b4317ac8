/** Shared by the native-*.test.ts files: fixture models, expected tensors, comparisons. */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { type ClipArchitecture, parseModelConfig } from '../lib/architecture.js';
import { nativeBackend } from '../lib/backends/native.js';
import type { BackendModel, Precision } from '../lib/backends/types.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import type { TensorManifest } from '../lib/manifest.js';
import { fixture } from './helpers/fixtures.js';

export interface FixtureModel {
  dir: string;
  arch: ClipArchitecture;
  manifest: TensorManifest;
}

export async function fixtureModel(name: string): Promise<FixtureModel> {
  const dir = fixture('models', name);
  const config = JSON.parse(readFileSync(path.join(dir, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown };
  const arch = parseModelConfig(config.model_cfg);
  const manifest = await readSafetensorsManifest(path.join(dir, 'open_clip_model.safetensors'));
  return { dir, arch, manifest };
}

export async function loadNative(model: FixtureModel, precision: Precision, threads = 2): Promise<BackendModel> {
  return nativeBackend.load(model.arch, model.manifest, { precision, device: 'cpu', threads });
}

export interface ExpectedTensor {
  shape: number[];
  data: Float32Array | BigInt64Array;
}

/** Every tensor of a (small) safetensors file, F32 and I64 only. */
export async function readExpected(file: string): Promise<Map<string, ExpectedTensor>> {
  const manifest = await readSafetensorsManifest(file);
  const handle = await open(file, 'r');
  try {
    const out = new Map<string, ExpectedTensor>();
    for (const [name, entry] of manifest.tensors) {
      const bytes = Buffer.alloc(entry.byteLength);
      await handle.read(bytes, 0, entry.byteLength, entry.offset);
      const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      if (entry.dtype === 'F32') out.set(name, { shape: entry.shape, data: new Float32Array(buffer) });
      else if (entry.dtype === 'I64') out.set(name, { shape: entry.shape, data: new BigInt64Array(buffer) });
    }
    return out;
  } finally {
    await handle.close();
  }
}

export function floats(t: ExpectedTensor | undefined, name: string): Float32Array {
  if (!t || !(t.data instanceof Float32Array)) throw new Error(`expected tensor ${name} is missing or not F32`);
  return t.data;
}

export function tokensOf(t: ExpectedTensor | undefined): Int32Array {
  if (!t || !(t.data instanceof BigInt64Array)) throw new Error('expected tokens missing');
  return Int32Array.from(t.data, (v) => Number(v));
}

export { maxRelativeDiff, minRowCosine } from './helpers/compare.js';
