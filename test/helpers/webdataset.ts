/** Builds webdataset tar shards for tests (tar-stream's packer) and reads .npy float16 files independently. */
import { createWriteStream, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

export interface TarMember {
  name: string;
  data: Buffer | string;
  type?: 'file' | 'directory';
}

export async function writeTar(file: string, members: readonly TarMember[]): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(file));
  for (const m of members) {
    await new Promise<void>((resolve, reject) => {
      if (m.type === 'directory') pack.entry({ name: m.name, type: 'directory' }, (err) => (err ? reject(err) : resolve()));
      else pack.entry({ name: m.name, mtime: new Date(0) }, typeof m.data === 'string' ? Buffer.from(m.data) : m.data, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
}

export interface ShardSample {
  key: string;
  /** field (the part after the first dot) -> bytes */
  members: Record<string, Buffer | string>;
}

export async function writeShard(file: string, samples: readonly ShardSample[]): Promise<void> {
  await writeTar(file, samples.flatMap((s) => Object.entries(s.members).map(([field, data]) => ({ name: `${s.key}.${field}`, data }))));
}

/** A .npy file as [descr, shape, values]; float16 decoded here with its own arithmetic (not the library's). */
export function readNpy(file: string): { descr: string; shape: number[]; values: Float64Array } {
  const bytes = readFileSync(file);
  if (bytes.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw new Error(`${file}: not an npy file`);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  const descr = /'descr': '([^']+)'/.exec(header)?.[1] ?? '';
  const shape = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const data = bytes.subarray(10 + headerLength);
  if (descr !== '<f2') return { descr, shape, values: new Float64Array(0) };
  const values = new Float64Array(data.length / 2);
  for (let i = 0; i < values.length; i++) {
    const h = data.readUInt16LE(i * 2);
    const exponent = (h >> 10) & 31;
    const fraction = h & 1023;
    const magnitude = exponent === 0 ? fraction / 1024 / 16384 : exponent === 31 ? (fraction ? Number.NaN : Infinity) : Math.pow(2, exponent - 15) * (1 + fraction / 1024);
    values[i] = h & 0x8000 ? -magnitude : magnitude;
  }
  return { descr, shape, values };
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}
