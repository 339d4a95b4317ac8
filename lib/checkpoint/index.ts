/**
 * Checkpoint entry points: `readManifest` picks the reader by content (zip magic -> torch.save archive,
 * otherwise safetensors) and normalizes names; `readTensor` reads one small tensor as float32.
 */
import path from 'node:path';
import type { TensorEntry, TensorManifest } from '../manifest.js';
import { corrupt, ioError, openFile } from './io.js';
import { readSafetensorsManifest } from './safetensors.js';
import { readTorchZipManifest } from './torch-zip.js';
import { invalid } from '../validate.js';

export { readSafetensorsManifest } from './safetensors.js';
export { readTorchZipManifest } from './torch-zip.js';
export { readTensor, MAX_READ_TENSOR_BYTES } from './read-tensor.js';

export type CheckpointFormat = TensorManifest['format'];

/** Which reader a file needs, from its first bytes. */
export async function detectFormat(file: string): Promise<CheckpointFormat> {
  const { handle } = await openFile(file);
  const head = Buffer.alloc(9);
  let n: number;
  try {
    ({ bytesRead: n } = await handle.read(head, 0, 9, 0));
  } catch (err) {
    throw ioError(file, err);
  } finally {
    await handle.close();
  }
  if (n === 9 && head[8] === 0x7b) return 'safetensors'; // 8-byte length, then '{' (a zip has its method here)
  if (n >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'torch-zip';
  if (n >= 4 && head.readUInt32LE(0) === 0x06054b50) return 'torch-zip'; // empty zip: the zip reader explains
  if (n >= 2 && head[0] === 0x80 && head[1] <= 5) {
    throw corrupt(file, 'this is a legacy (PyTorch < 1.6) torch.save file, which is not supported: re-save it with a current PyTorch or convert it to safetensors');
  }
  return 'safetensors'; // its reader reports what is wrong
}

/** Reads a checkpoint's tensor manifest (safetensors or torch.save zip) without reading tensor data. */
export async function readManifest(file: string): Promise<TensorManifest> {
  if (!(typeof file === 'string' && file.length > 0)) throw invalid('a path', 'file', file);
  const abs = path.resolve(file);
  const format = await detectFormat(abs);
  const manifest = format === 'torch-zip' ? await readTorchZipManifest(abs) : await readSafetensorsManifest(abs);
  return stripModulePrefix(manifest);
}

/** DistributedDataParallel checkpoints prefix every name with `module.`; drop it when all names have it. */
export function stripModulePrefix(manifest: TensorManifest): TensorManifest {
  const names = [...manifest.tensors.keys()];
  if (!names.length || !names.every((n) => n.startsWith('module.'))) return manifest;
  const tensors = new Map<string, TensorEntry>();
  for (const [name, entry] of manifest.tensors) {
    const short = name.slice('module.'.length);
    tensors.set(short, { ...entry, name: short });
  }
  return { ...manifest, tensors };
}
