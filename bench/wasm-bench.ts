/**
 * The wasm backend beside the native addon and ONNX Runtime Web (its wasm backend, in Node) on one mid-size model,
 * at 1 and 2 threads; then the full ConvNeXt-XXLarge dims loaded in wasm (bf16) with the peak heap, once.
 *
 *   /usr/bin/python3 /work/shared/reference/clip_reference.py make --config convnext_base_w --out /tmp/base_w
 *   /usr/bin/python3 /work/shared/reference/export_onnx.py convnext_base_w image /tmp/onnx
 *   /usr/bin/python3 /work/shared/reference/export_onnx.py convnext_base_w text /tmp/onnx
 *   /usr/bin/python3 /work/shared/reference/clip_reference.py make --config convnext_xxlarge --out /tmp/xxl
 *   node --import tsx bench/wasm-bench.ts --model /tmp/base_w --onnx /tmp/onnx/convnext_base_w --xxl /tmp/xxl \
 *     [--threads 1,2] [--rounds 5] [--relaxed-simd] [--out bench/RESULTS.md]
 *
 * Each thread count runs in its own child process (ONNX Runtime Web fixes its thread count at its first session),
 * with every engine loaded side by side and measured in interleaved rounds (each forward on every engine back to
 * back, in an order that rotates per round), so a busy machine slows them alike.
 * Inputs are the ones export_onnx.py saved (its pixels and 22-token text row), and a 77-token text row.
 * The parent first measures this machine's limits (bench/limits.cc) and reports image and 77-token text as fractions
 * of its fp32 FMA peak. wasm-relaxed (cclip-relaxed.wasm) runs where Node has relaxed SIMD (22+), or with
 * --relaxed-simd, which starts the children with --experimental-wasm-relaxed-simd (Node 20). --out appends a dated
 * `## wasm` section to that file (earlier sections are kept).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseModelConfig } from '../lib/architecture.js';
import { nativeBackend } from '../lib/backends/native.js';
import type { BackendModel, Precision } from '../lib/backends/types.js';
import { RELAXED_SIMD_NODE_FLAG, relaxedSimdNodeFlags, relaxedSimdSupported, wasmBackend, type WasmClipModel } from '../lib/backends/wasm.js';
import { WASM_MODULE_FILES, type WasmSimd } from '../lib/backends/wasm-core.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from '../test/native-helpers.js';
import { appendSection, bestLimits, imageFlops, type Limits, limitsAt, limitsLine, machineSummary, measureLimits, median, pct, perRoundRatios, sourceSummary, textFlops, timed } from './common.js';

interface Args {
  model: string;
  onnx?: string;
  xxl?: string;
  threads: number[];
  rounds: number;
  out?: string;
  relaxedSimd: boolean;
  child?: 'engines' | 'xxl';
}

function parseArgs(argv: string[]): Args {
  const a: Args = { model: '/tmp/base_w', threads: [1, 2], rounds: 5, relaxedSimd: false };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    switch (argv[i]) {
      case '--model': a.model = v(); break;
      case '--onnx': a.onnx = v(); break;
      case '--xxl': a.xxl = v(); break;
      case '--threads': a.threads = v().split(',').map(Number); break;
      case '--rounds': a.rounds = Number(v()); break;
      case '--out': a.out = v(); break;
      case '--relaxed-simd': a.relaxedSimd = true; break;
      case '--child': a.child = v() as Args['child']; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return a;
}

function f32File(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function tokens77(): Int32Array {
  const t = new Int32Array(77);
  t[0] = 49406;
  for (let i = 1; i < 76; i++) t[i] = 1 + ((i * 104729) % 48999);
  t[76] = 49407;
  return t;
}

interface Engine {
  name: string;
  image(): Promise<Float32Array>;
  text22(): Promise<Float32Array>;
  text77(): Promise<Float32Array>;
  loadS: number;
  extra?: Record<string, number>;
  dispose(): Promise<void> | void;
}

type Timing = { wall: number[]; cpu: number[] };

/** kind 'wasm' is cclip.wasm (SIMD128), 'wasm-relaxed' cclip-relaxed.wasm (CCLIP_WASM_SIMD picks it at load). */
async function clipEngine(kind: 'wasm' | 'wasm-relaxed' | 'native', precision: Precision, threads: number, dir: string, pixels: Float32Array, t22: Int32Array): Promise<Engine> {
  const arch = parseModelConfig((JSON.parse(readFileSync(path.join(dir, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown }).model_cfg);
  const manifest = await readSafetensorsManifest(path.join(dir, 'open_clip_model.safetensors'));
  const backend = kind === 'native' ? nativeBackend : wasmBackend;
  const asked = process.env.CCLIP_WASM_SIMD;
  if (kind !== 'native') process.env.CCLIP_WASM_SIMD = kind === 'wasm-relaxed' ? 'relaxed' : 'simd128';
  const t0 = performance.now();
  let m: BackendModel;
  try {
    m = await backend.load(arch, manifest, { precision, device: 'cpu', threads });
  } finally {
    if (asked === undefined) delete process.env.CCLIP_WASM_SIMD;
    else process.env.CCLIP_WASM_SIMD = asked;
  }
  const loadS = (performance.now() - t0) / 1e3;
  const t77 = tokens77();
  return {
    name: `${kind} ${precision}`,
    loadS,
    image: async () => (await m.encodeImage(pixels, 1)).features,
    text22: async () => (await m.encodeText(t22, 1)).features,
    text77: async () => (await m.encodeText(t77, 1)).features,
    extra: kind !== 'native' ? { heap_gib: (m as WasmClipModel).heapBytes / 2 ** 30, weights_gib: (m as WasmClipModel).weightBytes / 2 ** 30 } : undefined,
    dispose: () => m.dispose(),
  };
}

/** The parts of onnxruntime-web used here (a devDependency: imported by name at run time only). */
interface Ort {
  env: { wasm: { numThreads: number } };
  InferenceSession: { create(file: string, options: object): Promise<OrtSession> };
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => unknown;
}
interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown }>>;
  release(): Promise<void>;
}

async function ortEngine(onnxDir: string, threads: number, pixels: Float32Array, t22: Int32Array): Promise<Engine> {
  const name = 'onnxruntime-web';
  const ort = (await import(name)) as Ort;
  ort.env.wasm.numThreads = threads;
  const t0 = performance.now();
  const image = await ort.InferenceSession.create(path.join(onnxDir, 'image', 'image.onnx'), { executionProviders: ['wasm'] });
  const text = await ort.InferenceSession.create(path.join(onnxDir, 'text', 'text.onnx'), { executionProviders: ['wasm'] });
  const loadS = (performance.now() - t0) / 1e3;
  const runText = async (t: Int32Array) =>
    (await text.run({ tokens: new ort.Tensor('int64', BigInt64Array.from(t, BigInt), [1, 77]) })).text_features.data as Float32Array;
  const t77 = tokens77();
  return {
    name: 'onnxruntime-web fp32',
    loadS,
    image: async () => (await image.run({ pixels: new ort.Tensor('float32', pixels, [1, 3, 256, 256]) })).image_features.data as Float32Array,
    text22: () => runText(t22),
    text77: () => runText(t77),
    dispose: async () => {
      await image.release();
      await text.release();
    },
  };
}

/** Child: every engine at one thread count, interleaved rounds; prints one JSON line. */
async function runEngines(args: Args): Promise<void> {
  const threads = args.threads[0];
  const onnx = args.onnx!;
  const pixels = f32File(path.join(onnx, 'ref', 'pixels.f32'));
  const tb = readFileSync(path.join(onnx, 'ref', 'tokens.i64'));
  const t22 = Int32Array.from(new BigInt64Array(tb.buffer.slice(tb.byteOffset, tb.byteOffset + 77 * 8)), Number);
  const refImage = f32File(path.join(onnx, 'ref', 'image_features.f32'));
  const refText = f32File(path.join(onnx, 'ref', 'text_features.f32'));
  const engines: Engine[] = [];
  const notes: string[] = [];
  for (const p of ['fp32', 'bf16'] as const) engines.push(await clipEngine('wasm', p, threads, args.model, pixels, t22));
  if (relaxedSimdSupported()) {
    for (const p of ['fp32', 'bf16'] as const) engines.push(await clipEngine('wasm-relaxed', p, threads, args.model, pixels, t22));
  } else notes.push('wasm-relaxed skipped: this Node has no relaxed SIMD (pass --relaxed-simd on Node 20)');
  if (nativeBackend.available().ok) {
    for (const p of ['fp32', 'bf16'] as const) engines.push(await clipEngine('native', p, threads, args.model, pixels, t22));
  } else notes.push(`native skipped: ${(nativeBackend.available() as { reason: string }).reason}`);
  try {
    engines.push(await ortEngine(onnx, threads, pixels, t22));
  } catch (err) {
    notes.push(`onnxruntime-web skipped: ${(err as Error).message}`);
  }
  const parity: Record<string, Record<string, number>> = {};
  for (const e of engines) {
    const img = await e.image(); // warm-up + parity vs the PyTorch fp32 reference of the same inputs
    const txt = await e.text22();
    await e.text77();
    parity[e.name] = {
      image_rel: maxRelativeDiff(img, refImage), image_cos: minRowCosine(img, refImage, refImage.length),
      text_rel: maxRelativeDiff(txt, refText), text_cos: minRowCosine(txt, refText, refText.length),
    };
  }
  const times: Record<string, Record<'image' | 'text22' | 'text77', Timing>> = {};
  for (const e of engines) times[e.name] = { image: { wall: [], cpu: [] }, text22: { wall: [], cpu: [] }, text77: { wall: [], cpu: [] } };
  const loads: number[] = [];
  // Each forward runs on every engine back to back (the engine order rotating per round), so the calls compared in
  // a ratio are seconds apart, not a whole round: a burst of load from other processes falls on all engines alike.
  for (let r = 0; r < args.rounds; r++) {
    loads.push(os.loadavg()[0]);
    for (const what of ['image', 'text22', 'text77'] as const) {
      for (let i = 0; i < engines.length; i++) {
        const e = engines[(i + r) % engines.length];
        const [wall, cpu] = await timed(() => e[what]());
        times[e.name][what].wall.push(wall);
        times[e.name][what].cpu.push(cpu);
      }
    }
  }
  // Per-round ORT / engine ratios (the two calls seconds apart): median and range, beside the ratio of the medians.
  const ort = times['onnxruntime-web fp32'];
  const perRound = (name: string, w: 'image' | 'text22' | 'text77') => {
    if (!ort) return [];
    const r = perRoundRatios(ort[w].wall, times[name][w].wall);
    return [[`${w}_per_round`, [r.median, r.min, r.max]]];
  };
  const result = engines.map((e) => ({
    engine: e.name, load_s: e.loadS, ...e.extra, ...parity[e.name],
    ...Object.fromEntries((['image', 'text22', 'text77'] as const).flatMap((w) => [[`${w}_ms`, median(times[e.name][w].wall)], [`${w}_cpu_ms`, median(times[e.name][w].cpu)], ...perRound(e.name, w)])),
  }));
  for (const e of engines) await e.dispose();
  console.log(JSON.stringify({ threads, rounds: args.rounds, load: median(loads), notes, result }));
}

/** Child: the full-size XXLarge dims in wasm bf16, once: load, heap, one image and one text, parity. */
async function runXxl(args: Args): Promise<void> {
  const dir = args.xxl!;
  const threads = args.threads[0];
  const arch = parseModelConfig((JSON.parse(readFileSync(path.join(dir, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown }).model_cfg);
  const manifest = await readSafetensorsManifest(path.join(dir, 'open_clip_model.safetensors'));
  const fileGiB = [...manifest.tensors.values()].reduce((s, e) => s + e.byteLength, 0) / 2 ** 30;
  let t0 = performance.now();
  const m = (await wasmBackend.load(arch, manifest, { precision: 'bf16', device: 'cpu', threads })) as WasmClipModel;
  const loadS = (performance.now() - t0) / 1e3;
  const heapAfterLoad = m.heapBytes;
  const expected = await readExpected(path.join(dir, 'expected.safetensors'));
  const pixels = floats(expected.get('pixels'), 'pixels');
  const size = arch.vision.imageSize;
  const dim = arch.embedDim;
  t0 = performance.now();
  const image = await m.encodeImage(pixels.subarray(0, 3 * size * size), 1);
  const imageS = (performance.now() - t0) / 1e3;
  const tokens = tokensOf(expected.get('tokens')).subarray(0, arch.text.contextLength);
  t0 = performance.now();
  const text = await m.encodeText(tokens, 1);
  const textS = (performance.now() - t0) / 1e3;
  t0 = performance.now();
  await m.encodeText(tokens77(), 1);
  const text77S = (performance.now() - t0) / 1e3;
  const textTokens = tokens.findIndex((id) => id === 49407) + 1;
  const wantImage = floats(expected.get('image_features'), 'image_features').subarray(0, dim);
  const wantText = floats(expected.get('text_features'), 'text_features').subarray(0, dim);
  const out = {
    threads, simd: m.simd, file_gib: fileGiB, load_s: loadS, weights_gib: m.weightBytes / 2 ** 30, heap_after_load_gib: heapAfterLoad / 2 ** 30,
    heap_peak_gib: m.heapBytes / 2 ** 30, image_s: imageS, text_s: textS, text_tokens: textTokens, text77_s: text77S,
    image_cos: minRowCosine(image.features, wantImage, dim), text_cos: minRowCosine(text.features, wantText, dim),
    image_rel: maxRelativeDiff(image.features, wantImage), text_rel: maxRelativeDiff(text.features, wantText),
    rss_peak_gib: process.resourceUsage().maxRSS / 2 ** 20, load: os.loadavg()[0],
  };
  m.dispose();
  console.log(JSON.stringify(out));
}

function child(args: string[], relaxedSimd: boolean): Record<string, unknown> {
  const self = fileURLToPath(import.meta.url);
  const flags = relaxedSimd ? relaxedSimdNodeFlags() : [];
  const r = spawnSync(process.execPath, [...flags, '--import', 'tsx', self, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`child ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const fmt = (x: unknown, d = 1) => (typeof x === 'number' ? x.toFixed(d) : '-');

function report(args: Args, runs: Array<Record<string, unknown>>, xxl: Record<string, unknown> | undefined, limits: Limits, loadAtStart: number): string {
  const arch = parseModelConfig((JSON.parse(readFileSync(path.join(args.model, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown }).model_cfg);
  const L: string[] = [`## wasm (\`bench/wasm-bench.ts\`), ${new Date().toISOString()}`, ''];
  L.push(`- machine: ${machineSummary()}; Node ${process.version}; machine load (1-minute average) at start / end: ${loadAtStart.toFixed(2)} / ${os.loadavg()[0].toFixed(2)}`);
  L.push(`- limits (bench/limits.cc, this run): ${limitsLine(limits)}`);
  L.push(`- source: ${sourceSummary()}`);
  L.push(`- of peak = achieved GFLOP/s (${(imageFlops(arch) / 1e9).toFixed(1)} GFLOP per image, ${(textFlops(arch, 77) / 1e9).toFixed(1)} per 77-token text: 2 x multiply-adds of every conv and linear) / the machine's best fp32 FMA peak at that thread count; SIMD128 has no FMA and half the ymm width, so wasm's own ceiling is a fraction of it`);
  L.push(`- wasm: wasm/prebuilt (Emscripten 3.1.6, -O3 -msimd128 -pthread): \`wasm\` is cclip.wasm (SIMD128: a multiply and an add per product), \`wasm-relaxed\` cclip-relaxed.wasm (f32x4.relaxed_madd: one FMA)${args.relaxedSimd && !relaxedSimdSupported() ? `, in children started with ${RELAXED_SIMD_NODE_FLAG} (Node 22+ has relaxed SIMD on)` : ''}; onnxruntime-web ${ortVersion()} (wasm backend, SIMD + threads, in Node); native: build/Release addon`);
  L.push(`- model: ${args.model} (convnext_base_w dims, random weights from clip_reference.py make; ONNX from export_onnx.py, same seed); inputs: export_onnx.py's pixels [1,3,256,256] and 22-token text row, and a 77-token row`);
  L.push(`- each thread count in its own process; all engines loaded side by side and timed in ${args.rounds} interleaved rounds after a warm-up (each forward on every engine back to back, the engine order rotating per round); medians. cpu = process CPU time (all threads) of the call: less sensitive than wall time to other processes sharing the 2 cores`);
  L.push('- ratios: ORT/wasm > 1 means wasm is faster than onnxruntime-web (of the medians; in brackets the median and range of the per-round ratios, each from two calls seconds apart); wasm/native = how much slower wasm is than the native addon (same precision)');
  L.push('- our text tower stops at the last end token (causal attention: identical output), so the 22-token row costs less than 77 tokens; ONNX computes all 77 positions either way');
  for (const run of runs) L.push(`- ${run.threads} thread(s): machine load (1-min average, median over rounds) ${fmt(run.load)}${(run.notes as string[]).length ? `; ${(run.notes as string[]).join('; ')}` : ''}`);
  L.push('', '| threads | engine | image b1 ms (cpu) | text b1 22 tok ms (cpu) | text b1 77 tok ms (cpu) | image ORT/wasm | text22 ORT/wasm | text77 ORT/wasm | image wasm/native | text77 wasm/native | image of peak | text77 of peak | load s | vs PyTorch fp32: image / text max rel diff |');
  L.push('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const run of runs) {
    const peak = limitsAt(limits, Number(run.threads)).fmaGflops ?? Number.NaN;
    const ofPeak = (flops: number, ms: unknown) => (typeof ms === 'number' ? pct(flops / 1e9 / (ms / 1e3) / peak) : '-');
    const rows = run.result as Array<Record<string, number | string>>;
    const by = (n: string) => rows.find((r) => r.engine === n);
    const ort = by('onnxruntime-web fp32');
    for (const r of rows) {
      const [kind, prec] = String(r.engine).split(' ');
      const wasm = kind.startsWith('wasm');
      const native = wasm ? by(`native ${prec}`) : undefined;
      const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' ? `${(a / b).toFixed(2)}x` : '');
      const rounds = (w: string) => {
        const v = (r as Record<string, unknown>)[`${w}_per_round`] as number[] | undefined;
        return v ? ` (${v[0].toFixed(2)}x, ${v[1].toFixed(2)}-${v[2].toFixed(2)})` : '';
      };
      L.push(`| ${run.threads} | ${r.engine} | ${fmt(r.image_ms, 0)} (${fmt(r.image_cpu_ms, 0)}) | ${fmt(r.text22_ms, 0)} (${fmt(r.text22_cpu_ms, 0)}) | ${fmt(r.text77_ms, 0)} (${fmt(r.text77_cpu_ms, 0)}) | ` +
        `${wasm ? ratio(ort?.image_ms, r.image_ms) + rounds('image') : ''} | ${wasm ? ratio(ort?.text22_ms, r.text22_ms) + rounds('text22') : ''} | ${wasm ? ratio(ort?.text77_ms, r.text77_ms) + rounds('text77') : ''} | ${ratio(r.image_ms, native?.image_ms)} | ${ratio(r.text77_ms, native?.text77_ms)} | ${ofPeak(imageFlops(arch), r.image_ms)} | ${ofPeak(textFlops(arch, 77), r.text77_ms)} | ${fmt(r.load_s, 1)} | ` +
        `${Number(r.image_rel).toExponential(1)} / ${Number(r.text_rel).toExponential(1)} |`);
    }
  }
  if (xxl) {
    L.push('', `### Full ConvNeXt-XXLarge dims in wasm (${WASM_MODULE_FILES[xxl.simd as WasmSimd]}, bf16 weights in the heap, ${xxl.threads} threads, one run)`, '');
    L.push(`- checkpoint: ${args.xxl} (${fmt(xxl.file_gib, 2)} GiB of fp32 safetensors, random weights), streamed into the heap and packed as bf16; machine load ${fmt(xxl.load)}`);
    L.push('', `| load s | packed weights GiB | heap after load GiB | peak heap GiB (of 4) | image b1 s | text b1 s (${xxl.text_tokens} tokens / 77) | process peak RSS GiB | image / text cosine vs PyTorch fp32 |`, '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
    L.push(`| ${fmt(xxl.load_s)} | ${fmt(xxl.weights_gib, 2)} | ${fmt(xxl.heap_after_load_gib, 2)} | ${fmt(xxl.heap_peak_gib, 2)} | ${fmt(xxl.image_s)} | ${fmt(xxl.text_s, 2)} / ${fmt(xxl.text77_s, 2)} | ${fmt(xxl.rss_peak_gib, 2)} | ${fmt(xxl.image_cos, 6)} / ${fmt(xxl.text_cos, 6)} |`);
    L.push('', `In fp32 the same weights would take ${fmt(2 * Number(xxl.weights_gib), 2)} GiB, more than a 32-bit wasm heap (4 GiB) can hold: bf16 is what makes XXLarge fit. The image forward needs no heap beyond what loading left (peak = after load).`);
  }
  return `${L.join('\n')}\n`;
}

function ortVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'onnxruntime-web', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '(not installed)';
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child === 'engines') return runEngines(args);
  if (args.child === 'xxl') return runXxl(args);
  if (!args.onnx) throw new Error('--onnx DIR (export_onnx.py output for the same model) is required');
  const loadAtStart = os.loadavg()[0];
  console.error('# limits (bench/limits.cc) ...');
  const limitsAtStart = measureLimits();
  const runs: Array<Record<string, unknown>> = [];
  for (const t of args.threads) {
    console.error(`# ${t} thread(s): wasm, native, onnxruntime-web ...`);
    const base = ['--model', args.model, '--onnx', args.onnx, '--threads', String(t), '--rounds', String(args.rounds)];
    runs.push(child([...base, '--child', 'engines'], args.relaxedSimd));
  }
  let xxl: Record<string, unknown> | undefined;
  if (args.xxl) {
    console.error('# XXLarge in wasm, bf16 ...');
    xxl = child(['--xxl', args.xxl, '--threads', String(Math.max(...args.threads)), '--child', 'xxl'], args.relaxedSimd);
  }
  console.error('# limits again (the best of both is kept) ...');
  const limits = bestLimits([limitsAtStart, measureLimits()]);
  const section = report(args, runs, xxl, limits, loadAtStart);
  process.stdout.write(section);
  if (args.out) appendSection(args.out, section);
}

await main();
