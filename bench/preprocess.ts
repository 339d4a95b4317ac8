/**
 * Preprocessing throughput on a 12-megapixel JPEG (4000x3000, made here with sharp) at 256 px, beside Pillow
 * (bench/preprocess_pillow.py, same machine, interleaved rounds) and checked against Pillow's 8-bit result.
 * Run: node --import tsx bench/preprocess.ts [rounds=5]   (needs /usr/bin/python3 with PIL and numpy)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { decodeImage, preprocessImages, transformDecoded } from '../lib/image/index.js';
import { OPENAI_MEAN, OPENAI_STD, type PreprocessConfig } from '../lib/model-dir.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = process.env.CONVNEXT_CLIP_FIXTURES ? path.resolve(process.env.CONVNEXT_CLIP_FIXTURES) : path.resolve(root, '..', 'shared', 'fixtures');
const tmp = path.join(root, '.bench-tmp');
const python = process.env.PYTHON ?? '/usr/bin/python3';
const rounds = Number(process.argv[2] ?? 5);
const S = 256;
const cfg: PreprocessConfig = { size: S, mean: OPENAI_MEAN, std: OPENAI_STD, interpolation: 'bicubic', resizeMode: 'shortest', fillColor: 0 };

mkdirSync(tmp, { recursive: true });
const jpeg = path.join(tmp, 'photo-12mp.jpg');
// A photo upscaled to 4000x3000 with grain, so the JPEG has real detail (about 12 megapixels, quality 90).
const grain = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 24 } } }).png().toBuffer();
await sharp(path.join(fixtures, 'images', 'astronaut.png'))
  .resize(4000, 3000, { fit: 'fill' })
  .composite([{ input: grain, blend: 'overlay' }])
  .jpeg({ quality: 90 })
  .toFile(jpeg);
const meta = await sharp(jpeg).metadata();

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function ms(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
/** Wall and CPU (all threads of this process) milliseconds. */
async function wallCpu(fn: () => Promise<unknown>): Promise<[number, number]> {
  const c0 = process.cpuUsage();
  const wall = await ms(fn);
  const c = process.cpuUsage(c0);
  return [wall, (c.user + c.system) / 1000];
}

const ours = { total: [] as number[], cpu: [] as number[], decode: [] as number[], transform: [] as number[], batch: [] as number[] };
const pillow = { total: [] as number[], cpu: [] as number[], decode: [] as number[], transform: [] as number[] };
const pillowOut = path.join(tmp, 'pillow-12mp.u8');
let result: Float32Array = new Float32Array(0);
await preprocessImages([jpeg], cfg); // warm-up: addon load, thread pool, sharp
for (let round = 0; round < rounds; round++) {
  const [wall, cpu] = await wallCpu(async () => (result = await preprocessImages([jpeg], cfg)));
  ours.total.push(wall);
  ours.cpu.push(cpu);
  let decoded = await decodeImage(jpeg, 'bench');
  ours.decode.push(await ms(async () => (decoded = await decodeImage(jpeg, 'bench'))));
  ours.transform.push(await ms(() => transformDecoded(decoded, cfg, new Float32Array(3 * S * S))));
  ours.batch.push((await ms(() => preprocessImages(new Array(8).fill(jpeg), cfg))) / 8);
  const peer = JSON.parse(execFileSync(python, [path.join(root, 'bench', 'preprocess_pillow.py'), jpeg, String(S), '3', pillowOut], { encoding: 'utf8' })) as Record<string, number[]>;
  pillow.total.push(median(peer.total_ms));
  pillow.cpu.push(median(peer.cpu_ms));
  pillow.decode.push(median(peer.decode_ms));
  pillow.transform.push(median(peer.transform_ms));
}

// Same 8-bit pixels as Pillow? (ours back to levels: x * std + mean, * 255)
const reference = new Uint8Array(readFileSync(pillowOut));
let differing = 0;
for (let i = 0; i < reference.length; i++) {
  const c = Math.floor(i / (S * S));
  differing += Math.round((result[i] * OPENAI_STD[c] + OPENAI_MEAN[c]) * 255) !== reference[i] ? 1 : 0;
}

const f = (x: number): string => `${x.toFixed(1).padStart(7)} ms`;
console.log(`image: ${meta.width}x${meta.height} JPEG (${(meta.width! * meta.height! / 1e6).toFixed(1)} MP), -> [3, ${S}, ${S}]; ${rounds} rounds, medians`);
console.log(`8-bit values differing from Pillow: ${differing} of ${reference.length}`);
console.log(`                  total wall   decode    transform   total CPU`);
console.log(`convnext-clip     ${f(median(ours.total))} ${f(median(ours.decode))} ${f(median(ours.transform))} ${f(median(ours.cpu))}   (one image at a time)`);
console.log(`convnext-clip x8  ${f(median(ours.batch))}                                   (per image, batch of 8, default concurrency)`);
console.log(`Pillow            ${f(median(pillow.total))} ${f(median(pillow.decode))} ${f(median(pillow.transform))} ${f(median(pillow.cpu))}   (open + load, resize/crop/convert/normalize)`);
console.log(`ratio Pillow / convnext-clip: ${(median(pillow.total) / median(ours.total)).toFixed(2)}x single, ${(median(pillow.total) / median(ours.batch)).toFixed(2)}x batched; transform alone ${(median(pillow.transform) / median(ours.transform)).toFixed(2)}x; CPU ${(median(pillow.cpu) / median(ours.cpu)).toFixed(2)}x`);
console.log(`machine: ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
