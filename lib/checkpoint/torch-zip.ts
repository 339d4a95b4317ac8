/**
 * torch.save zip checkpoints (.bin/.pt/.pth, PyTorch >= 1.6): `<archive>/data.pkl` describes the object and
 * `<archive>/data/<key>` holds each storage's raw little-endian bytes, STORED. We read the zip directory, the
 * pickle (through the restricted unpickler) and each used storage's local header; tensor bytes stay on disk.
 */
import type { FileHandle } from 'node:fs/promises';
import { DTYPE_BYTES, type TensorEntry, type TensorManifest } from '../manifest.js';
import { corrupt, openFile } from './io.js';
import { PyDict, unpickle } from './pickle.js';
import { TensorRef, torchHooks } from './torch-pickle.js';
import { type ZipDirectory, type ZipEntry, entryDataOffset, readZipDirectory, readZipEntry } from './zip.js';

/** data.pkl larger than this is refused (XXLarge's is ~150 KB; a training checkpoint's a few MB). */
export const MAX_DATA_PKL = 64 * 1024 * 1024;

export async function readTorchZipManifest(file: string): Promise<TensorManifest> {
  const { handle, size } = await openFile(file);
  try {
    const dir = await readZipDirectory(handle, file, size);
    const archive = findArchive(file, dir);
    await checkByteOrder(handle, file, dir, archive);
    const pkl = await readZipEntry(handle, file, dir, dir.entries.get(`${archive}/data.pkl`)!, MAX_DATA_PKL);
    const root = unpickle(pkl, torchHooks(`${file} (data.pkl)`), `${file} (data.pkl)`);
    const tensors = resolveTensors(handle.fd, file, dir, archive, stateDict(file, root));
    return { format: 'torch-zip', files: [file], tensors };
  } finally {
    await handle.close();
  }
}

/** The archive folder: the one top-level folder holding data.pkl. */
function findArchive(file: string, dir: ZipDirectory): string {
  const archives = [...dir.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n)).map((n) => n.slice(0, -'/data.pkl'.length));
  if (archives.length === 0) throw corrupt(file, 'zip has no <archive>/data.pkl: not a torch.save checkpoint');
  if (archives.length > 1) throw corrupt(file, `zip has several data.pkl files (${archives.slice(0, 3).join(', ')}): ambiguous checkpoint`);
  return archives[0];
}

async function checkByteOrder(handle: FileHandle, file: string, dir: ZipDirectory, archive: string): Promise<void> {
  const entry = dir.entries.get(`${archive}/byteorder`);
  if (!entry) return; // older writers: little-endian
  const order = (await readZipEntry(handle, file, dir, entry, 64)).toString('latin1');
  if (order !== 'little') throw corrupt(file, `checkpoint byte order is ${JSON.stringify(order)}; only little-endian is supported`);
}

/** The top-level dict, or its `state_dict` entry when it is a training checkpoint wrapper. */
function stateDict(file: string, root: unknown): PyDict {
  if (!(root instanceof PyDict)) throw corrupt(file, 'checkpoint is not a dict of tensors (save model.state_dict(), not the model)');
  const inner = root.map.get('state_dict');
  return inner instanceof PyDict ? inner : root;
}

/** Tensor entries of the state dict; each used storage's local header is read once (synchronously: see zip.ts). */
function resolveTensors(fd: number, file: string, dir: ZipDirectory, archive: string, dict: PyDict): Map<string, TensorEntry> {
  const storages = new Map<string, { entry: ZipEntry; offset: number }>();
  const tensors = new Map<string, TensorEntry>();
  for (const [name, ref] of dict.map) {
    if (!(ref instanceof TensorRef)) continue; // non-tensor state (numbers, nested dicts) is not ours
    if (typeof name !== 'string') throw corrupt(file, 'a tensor is keyed by something other than a string');
    const key = ref.storage.key;
    let storage = storages.get(key);
    if (!storage) {
      const entry = dir.entries.get(`${archive}/data/${key}`);
      if (!entry) throw corrupt(file, `storage ${key} is referenced but ${archive}/data/${key} is missing`);
      if (entry.method !== 0) throw corrupt(file, `storage ${entry.name} is compressed (method ${entry.method}); tensor data must be stored uncompressed`);
      storage = { entry, offset: entryDataOffset(fd, file, dir, entry) };
      storages.set(key, storage);
    }
    tensors.set(name, tensorEntry(file, name, ref, storage.entry, storage.offset));
  }
  return tensors;
}

function tensorEntry(file: string, name: string, ref: TensorRef, entry: ZipEntry, dataOffset: number): TensorEntry {
  const { storage, shape, strides, storageOffset } = ref;
  const itemsize = DTYPE_BYTES[storage.dtype];
  if (storage.numel * itemsize > entry.uncompressedSize) {
    throw corrupt(file, `tensor ${name}: storage ${storage.key} claims ${storage.numel} ${storage.dtype} elements but ${entry.name} holds ${entry.uncompressedSize} bytes`);
  }
  // Elements spanned by the strided view: 1 + sum((size - 1) * stride), or 0 when empty.
  let span = shape.some((d) => d === 0) ? 0 : 1;
  for (let i = 0; span && i < shape.length; i++) span += (shape[i] - 1) * strides[i];
  if (!Number.isSafeInteger(span) || storageOffset + span > storage.numel) {
    throw corrupt(file, `tensor ${name} (size [${shape}], stride [${strides}], offset ${storageOffset}) reaches past its ${storage.numel}-element storage ${storage.key}`);
  }
  return {
    name,
    dtype: storage.dtype,
    shape,
    strides,
    file,
    offset: dataOffset + storageOffset * itemsize,
    byteLength: span * itemsize,
  };
}
