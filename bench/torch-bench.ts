/**
 * Times the torch backend through Node: per batch size, the image and text towers (median of N calls after a
 * warm-up; the first call, which captures CUDA graphs, is reported apart). One JSON line per measurement.
 *   node --import tsx bench/torch-bench.ts MODEL_DIR [--device cuda] [--precision bf16] [--batches 1,8,64] [--iters 10] [--threads 0]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseModelConfig } from '../lib/architecture.js';
import { torchBackend } from '../lib/backends/torch.js';
import type { Device, Precision } from '../lib/backends/types.js';
import { readManifest } from '../lib/checkpoint/index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

async function median(iters: number, f: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const start = performance.now();
    await f();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

const dir = process.argv[2];
if (!dir || dir.startsWith('--')) throw new Error('usage: torch-bench.ts MODEL_DIR [--device cpu|cuda] [--precision fp32|bf16] [--batches 1,8] [--iters 10]');
const device = arg('device', 'cpu') as Device;
const precision = arg('precision', 'fp32') as Precision;
const batches = arg('batches', '1,8').split(',').map(Number);
const iters = Number(arg('iters', '10'));
const threads = Number(arg('threads', '0'));
const status = torchBackend.available(device);
if (!status.ok) throw new Error(status.reason);

const arch = parseModelConfig((JSON.parse(readFileSync(path.join(dir, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown }).model_cfg);
const manifest = await readManifest(path.join(dir, 'open_clip_model.safetensors'));
let start = performance.now();
const model = await torchBackend.load(arch, manifest, { device, precision, threads });
const tag = { impl: 'convnext-clip torch (node)', device, precision };
console.log(JSON.stringify({ ...tag, load_ms: Math.round(performance.now() - start) }));
const S = arch.vision.imageSize;
const ctx = arch.text.contextLength;
for (const n of batches) {
  const pixels = Float32Array.from({ length: n * 3 * S * S }, () => Math.random() * 2 - 1);
  start = performance.now();
  await model.encodeImage(pixels, n);
  const first = performance.now() - start;
  await model.encodeImage(pixels, n);
  const ms = await median(iters, () => model.encodeImage(pixels, n));
  console.log(JSON.stringify({ ...tag, tower: 'image', batch: n, ms: +ms.toFixed(3), per_s: +((n / ms) * 1e3).toFixed(1), first_ms: +first.toFixed(1) }));
  const tokens = new Int32Array(n * ctx);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < 20; j++) tokens[r * ctx + j] = 1 + Math.floor(Math.random() * 49000);
    tokens[r * ctx + 20] = 49407;
  }
  start = performance.now();
  await model.encodeText(tokens, n);
  const tfirst = performance.now() - start;
  await model.encodeText(tokens, n);
  const tms = await median(iters, () => model.encodeText(tokens, n));
  console.log(JSON.stringify({ ...tag, tower: 'text', eot: 20, batch: n, ms: +tms.toFixed(3), per_s: +((n / tms) * 1e3).toFixed(1), first_ms: +tfirst.toFixed(1) }));
}
model.dispose();
