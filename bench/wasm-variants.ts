/**
 * A/B of wasm builds in one process: each directory (a wasm/prebuilt-like folder: cclip.js + cclip.wasm) gets its
 * own module instance of the same model, and the image and 77-token text forwards are timed in interleaved rounds,
 * so a busy machine slows every build alike. Reports min and median wall ms and the median process CPU ms.
 * CCLIP_PROFILE=1 passes through to the modules (per-op times on stderr).
 *
 *   node [--experimental-wasm-relaxed-simd] --import tsx bench/wasm-variants.ts --model /tmp/base_w \
 *     [--threads 2] [--precision fp32] [--rounds 7] [--work image,text77] DIR...
 */
import { open, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseModelConfig } from '../lib/architecture.js';
import type { Precision } from '../lib/backends/types.js';
import type { CclipModuleFactory, WeightSource } from '../lib/backends/wasm-core.js';
import { loadWasmModel, type WasmClipModel } from '../lib/backends/wasm-model.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const [v] = argv.splice(i, 2).slice(1);
  return v;
};
const model = opt('--model', '/tmp/base_w');
const threads = Number(opt('--threads', '2'));
const precision = opt('--precision', 'fp32') as Precision;
const rounds = Number(opt('--rounds', '7'));
const only = opt('--work', 'image,text77').split(','); // which forwards to time
const dirs = argv;
if (!dirs.length) throw new Error('give one or more wasm build directories');

const arch = parseModelConfig((JSON.parse(await readFile(path.join(model, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown }).model_cfg);
const manifest = await readSafetensorsManifest(path.join(model, 'open_clip_model.safetensors'));

async function load(dir: string): Promise<WasmClipModel> {
  const factory = createRequire(import.meta.url)(path.resolve(dir, 'cclip.js')) as CclipModuleFactory;
  const wasmModule = await WebAssembly.compile(await readFile(path.join(dir, 'cclip.wasm')));
  const sources = new Map<string, WeightSource>();
  const handles = [];
  for (const file of new Set([...manifest.tensors.values()].map((e) => e.file))) {
    const h = await open(file, 'r');
    handles.push(h);
    const { size } = await h.stat();
    sources.set(file, { size, read: async (offset, into) => void (await h.read(into, 0, into.length, offset)) });
  }
  const env = process.env.CCLIP_PROFILE ? { CCLIP_PROFILE: process.env.CCLIP_PROFILE } : undefined; // per-op times on stderr
  const m = await loadWasmModel({ factory, wasmModule, arch, manifest, sources, precision, threads, env });
  for (const h of handles) await h.close();
  return m;
}

const size = arch.vision.imageSize;
const pixels = new Float32Array(3 * size * size).map((_, i) => Math.sin(i * 0.37) * 1.5);
const t77 = new Int32Array(77);
t77[0] = 49406;
for (let i = 1; i < 76; i++) t77[i] = 1 + ((i * 104729) % 48999);
t77[76] = 49407;

const models: WasmClipModel[] = [];
for (const d of dirs) models.push(await load(d));
const allWork = {
  image: (m: WasmClipModel) => m.encodeImage(pixels, 1),
  text77: (m: WasmClipModel) => m.encodeText(t77, 1),
} as const;
const work = Object.fromEntries(Object.entries(allWork).filter(([what]) => only.includes(what)));
const wall: Record<string, number[][]> = { image: dirs.map(() => []), text77: dirs.map(() => []) };
const cpu: Record<string, number[][]> = { image: dirs.map(() => []), text77: dirs.map(() => []) };
const first: Record<string, Float32Array[]> = { image: [], text77: [] };
for (let r = 0; r <= rounds; r++) {
  for (const [what, fn] of Object.entries(work)) {
    for (let v = 0; v < dirs.length; v++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const out = await fn(models[v]);
      const w = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (r === 0) first[what][v] = out.features; // warm-up round: kept for the agreement check, not timed
      else {
        wall[what][v].push(w);
        cpu[what][v].push((c.user + c.system) / 1e3);
      }
    }
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const maxRel = (a: Float32Array, b: Float32Array) => {
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) s = Math.max(s, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / s);
  return m;
};
console.log(`# ${model} ${precision}, ${threads} threads, ${rounds} rounds, load ${os.loadavg()[0].toFixed(1)}`);
for (const what of Object.keys(work)) {
  for (let v = 0; v < dirs.length; v++) {
    console.log(`${what.padEnd(6)} ${dirs[v].padEnd(28)} min ${Math.min(...wall[what][v]).toFixed(0).padStart(5)}  med ${med(wall[what][v]).toFixed(0).padStart(5)}  cpu ${med(cpu[what][v]).toFixed(0).padStart(5)}  vs first build: max rel ${maxRel(first[what][v], first[what][0]).toExponential(1)}`);
  }
}
for (const m of models) await m.dispose();
