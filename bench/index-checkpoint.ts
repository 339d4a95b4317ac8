/**
 * How long does indexing a full ConvNeXt-XXLarge checkpoint take? Writes a ~4.8 GB torch.save-layout zip
 * (ZIP64, 64-byte aligned storages, a torch-like data.pkl with _metadata) and a full-size safetensors file,
 * both sparse (headers only), times `readManifest` on each, checks the result and deletes the files.
 *
 *   node --import tsx bench/index-checkpoint.ts [runs=7]      (BENCH_KEEP=1 keeps the files and prints where)
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expectedTensors, parseModelConfig } from '../lib/architecture.js';
import { crc32 } from '../lib/checkpoint/io.js';
import { readManifest } from '../lib/checkpoint/index.js';
import { type TensorManifest, numel } from '../lib/manifest.js';
import { type PickledTensor, layoutZip, statePickle } from '../test/helpers/torch-zip-writer.js';

const RUNS = Number(process.argv[2] ?? 7);
const MODEL_CFG = {
  embed_dim: 1024,
  vision_cfg: { timm_model_name: 'convnext_xxlarge', timm_proj: 'linear', image_size: 256 },
  text_cfg: { width: 1024, heads: 16, layers: 24 },
};

const tensors = [...expectedTensors(parseModelConfig(MODEL_CFG))].map(([name, shape]) => ({ name, shape, bytes: numel(shape) * 4 }));
const totalBytes = tensors.reduce((a, t) => a + t.bytes, 0);

/** Every module path above a tensor name, like state_dict()._metadata. */
function modulePaths(names: string[]): string[] {
  const out = new Set<string>(['']);
  for (const n of names) {
    const parts = n.split('.').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) out.add(parts.slice(0, i).join('.'));
  }
  return [...out];
}

function writeTorchZip(file: string): { size: number; pickleBytes: number; zip64: boolean } {
  const archive = 'open_clip_pytorch_model';
  const pickled: PickledTensor[] = tensors.map((t, i) => ({ name: t.name, dtype: 'F32', shape: t.shape, storageKey: String(i), storageNumel: numel(t.shape) }));
  const pkl = statePickle(pickled, { metadata: modulePaths(tensors.map((t) => t.name)) });
  const version = Buffer.from('3\n');
  const layout = layoutZip([
    { name: `${archive}/data.pkl`, size: pkl.length, compressedSize: pkl.length, crc: crc32(pkl), method: 0 },
    ...tensors.map((t, i) => ({ name: `${archive}/data/${i}`, size: t.bytes, compressedSize: t.bytes, crc: 0, method: 0 as const })),
    { name: `${archive}/version`, size: 2, compressedSize: 2, crc: crc32(version), method: 0 },
  ]);
  const fd = openSync(file, 'w');
  try {
    for (const c of layout.chunks) writeSync(fd, c.bytes, 0, c.bytes.length, c.offset);
    writeSync(fd, pkl, 0, pkl.length, layout.dataOffsets[0]);
    writeSync(fd, version, 0, 2, layout.dataOffsets[layout.dataOffsets.length - 1]);
    ftruncateSync(fd, layout.totalSize); // tensor data: holes
  } finally {
    closeSync(fd);
  }
  return { size: layout.totalSize, pickleBytes: pkl.length, zip64: layout.centralDirectoryOffset >= 0xffffffff };
}

function writeSafetensors(file: string): { size: number; headerBytes: number } {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + t.bytes] };
    at += t.bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, json, 0, json.length, 8);
    ftruncateSync(fd, 8 + json.length + at);
  } finally {
    closeSync(fd);
  }
  return { size: 8 + json.length + at, headerBytes: json.length };
}

function check(m: TensorManifest, size: number): void {
  if (m.tensors.size !== tensors.length) throw new Error(`expected ${tensors.length} tensors, got ${m.tensors.size}`);
  for (const t of tensors) {
    const e = m.tensors.get(t.name);
    if (!e || e.byteLength !== t.bytes || JSON.stringify(e.shape) !== JSON.stringify(t.shape) || e.offset + e.byteLength > size) {
      throw new Error(`tensor ${t.name} is wrong in the manifest`);
    }
  }
}

interface Timing {
  first: number;
  firstCpu: number;
  median: number;
  min: number;
  medianCpu: number;
}

/** Wall and CPU (user + system, all threads) time of readManifest: the first call (cold JIT), then RUNS more. */
async function time(file: string, size: number): Promise<Timing> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const m = await readManifest(file);
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    if (i === 0) check(m, size);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rest = wall.slice(1);
  return { first: wall[0], firstCpu: cpu[0], median: median(rest), min: Math.min(...rest), medianCpu: median(cpu.slice(1)) };
}

const dir = mkdtempSync(path.join(tmpdir(), 'convnext-clip-bench-'));
try {
  const gb = (n: number): string => `${(n / 1e9).toFixed(2)} GB`;
  console.log(`ConvNeXt-XXLarge checkpoint: ${tensors.length} tensors, ${(totalBytes / 4 / 1e9).toFixed(3)} B parameters, ${gb(totalBytes)} float32`);

  let t0 = performance.now();
  const bin = path.join(dir, 'open_clip_pytorch_model.bin');
  const z = writeTorchZip(bin);
  console.log(`wrote sparse torch zip: ${gb(z.size)} (ZIP64 ${z.zip64}, data.pkl ${(z.pickleBytes / 1024).toFixed(0)} KB, on disk ${(statSync(bin).blocks * 512 / 1024).toFixed(0)} KB) in ${(performance.now() - t0).toFixed(0)} ms`);
  t0 = performance.now();
  const st = path.join(dir, 'open_clip_model.safetensors');
  const s = writeSafetensors(st);
  console.log(`wrote sparse safetensors: ${gb(s.size)} (header ${(s.headerBytes / 1024).toFixed(0)} KB) in ${(performance.now() - t0).toFixed(0)} ms`);

  const fmt = (r: Timing): string =>
    `median ${r.median.toFixed(1)} ms (CPU ${r.medianCpu.toFixed(1)} ms), min ${r.min.toFixed(1)} ms; first call ${r.first.toFixed(1)} ms (CPU ${r.firstCpu.toFixed(1)} ms); ${RUNS} runs after the first`;
  console.log(`readManifest(torch zip):   ${fmt(await time(bin, z.size))}`);
  console.log(`readManifest(safetensors): ${fmt(await time(st, s.size))}`);
} finally {
  if (process.env.BENCH_KEEP) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
