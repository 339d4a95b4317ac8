/**
 * CPU, batch 1, one checkpoint (full ConvNeXt-XXLarge dims by default): onnxruntime-node fp32 beside our native
 * backend in fp32 and bf16, in one run, with this machine's limits (bench/limits.cc) measured first.
 *
 *   /usr/bin/python3 /work/shared/reference/clip_reference.py make --config convnext_xxlarge --out /tmp/xxl
 *   /usr/bin/python3 /work/shared/reference/export_onnx.py convnext_xxlarge image /tmp/onnx   (and `text`)
 *   npm install --ignore-scripts --prefix /tmp/peer onnxruntime-node@1.30.0
 *   flock /tmp/cpu.lock node --import tsx bench/cpu.ts --model /tmp/xxl --onnx /tmp/onnx/convnext_xxlarge \
 *     --ort /tmp/peer/node_modules/onnxruntime-node [--threads 2] [--rounds 7] [--out bench/RESULTS.md] [--no-cache-loads]
 *
 * Steps: limits.cc; every weight file read once (so loads are timed from the page cache); each engine's load in its
 * own child process (load time, RSS after load, peak RSS), and ours again with a packed-weights cache in a temporary
 * folder (the first load writes it, the second maps it; --no-cache-loads skips these); then one child with all three engines loaded side by
 * side: parity (ours vs ORT on the same inputs, and vs expected.safetensors), and `--rounds` interleaved rounds of
 * image 256 px, text of 75 tokens + start/end (77 positions) and text of 5 tokens + start/end; medians.
 * --out appends a dated section to that file. Set CONVNEXT_CLIP_ADDON to bench another addon build.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ClipArchitecture, parseModelConfig } from '../lib/architecture.js';
import { nativeBackend } from '../lib/backends/native.js';
import { nativeAddonLoad } from '../lib/backends/addon-loader.js';
import type { BackendModel, Precision } from '../lib/backends/types.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from '../test/native-helpers.js';
import {
  appendSection, bestLimits, fmt, imageFlops, type Limits, limitsAt, limitsLine, machineSummary, measureLimits, median, pct, perRoundRatios,
  readIntoPageCache, sourceSummary, textFlops, textLinearWeights, timed,
} from './common.js';

interface Args {
  model: string;
  onnx: string;
  ort: string;
  threads: number;
  rounds: number;
  out?: string;
  child?: 'load' | 'time';
  engine?: EngineName;
  /** load child: load with this packedCache directory */
  packedCache?: string;
  /** also time our loads with a packed-weights cache (written, then mapped); default on */
  cacheLoads: boolean;
}

const ENGINES = ['onnxruntime-node fp32', 'ours fp32', 'ours bf16'] as const;
type EngineName = (typeof ENGINES)[number];
const WORKS = ['image', 'text77', 'text5'] as const;
type Work = (typeof WORKS)[number];
/** Parity bounds of issue 14 (full-size random XXLarge). */
const FP32_MAX_REL = 1e-5;
const BF16_MIN_COS = 0.9999;

function parseArgs(argv: string[]): Args {
  const a: Args = { model: '/tmp/xxl', onnx: '/tmp/onnx/convnext_xxlarge', ort: '/tmp/peer/node_modules/onnxruntime-node', threads: 2, rounds: 7, cacheLoads: true };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    switch (argv[i]) {
      case '--model': a.model = v(); break;
      case '--onnx': a.onnx = v(); break;
      case '--ort': a.ort = v(); break;
      case '--threads': a.threads = Number(v()); break;
      case '--rounds': a.rounds = Number(v()); break;
      case '--out': a.out = v(); break;
      case '--child': a.child = v() as Args['child']; break;
      case '--engine': a.engine = v() as EngineName; break;
      case '--packed-cache': a.packedCache = v(); break;
      case '--no-cache-loads': a.cacheLoads = false; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return a;
}

/** Start token, `count` deterministic ids, end token, zero padding to `context`. */
function tokensRow(count: number, context: number): Int32Array {
  const out = new Int32Array(context);
  out[0] = 49406;
  for (let i = 1; i <= count; i++) out[i] = 1 + ((i * 104729) % 48999);
  out[count + 1] = 49407;
  return out;
}

function f32File(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function archOf(dir: string): ClipArchitecture {
  return parseModelConfig((JSON.parse(readFileSync(path.join(dir, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown }).model_cfg);
}

const onnxFiles = (onnx: string) => ['image', 'text'].flatMap((t) => readdirSync(path.join(onnx, t)).map((f) => path.join(onnx, t, f)));

/** An engine: features of n images [n,3,S,S] / n token rows [n,77]. */
interface Engine {
  name: EngineName;
  image(pixels: Float32Array, n: number): Promise<Float32Array>;
  text(tokens: Int32Array, n: number): Promise<Float32Array>;
  weightBytes: number;
  dispose(): Promise<void> | void;
}

/** The parts of onnxruntime-node used here (loaded from --ort, outside the project). */
interface Ort {
  InferenceSession: { create(file: string, options: object): Promise<OrtSession> };
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => unknown;
}
interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown }>>;
  release(): Promise<void>;
}

/** The addon file nativeBackend.describe() names ("addon <file> (<source>)"). */
function addonFile(): string | undefined {
  return /^addon (.+) \(/.exec(nativeBackend.describe?.() ?? '')?.[1];
}

/** The GEMM variants the addon picked for fp32 and bf16 weights on this CPU (older addons do not say). */
function addonKernels(): { fp32: string; bf16: string } | undefined {
  const load = nativeAddonLoad();
  return load.ok ? (load.addon.gemmKernels as { fp32: string; bf16: string } | undefined) : undefined;
}

function gemmKernels(): string {
  const k = addonKernels();
  return k ? `GEMM kernels fp32 ${k.fp32}, bf16 ${k.bf16}` : 'GEMM kernels not reported by this addon';
}

function ortVersion(ortDir: string): string {
  return (JSON.parse(readFileSync(path.join(ortDir, 'package.json'), 'utf8')) as { version: string }).version;
}

async function loadEngine(name: EngineName, args: Args, arch: ClipArchitecture, packedCache?: string): Promise<Engine> {
  const size = arch.vision.imageSize;
  const ctx = arch.text.contextLength;
  if (name === 'onnxruntime-node fp32') {
    const ort = createRequire(import.meta.url)(args.ort) as Ort;
    const options = { executionProviders: ['cpu'], intraOpNumThreads: args.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
    const image = await ort.InferenceSession.create(path.join(args.onnx, 'image', 'image.onnx'), options);
    const text = await ort.InferenceSession.create(path.join(args.onnx, 'text', 'text.onnx'), options);
    return {
      name,
      image: async (p, n) => (await image.run({ pixels: new ort.Tensor('float32', p, [n, 3, size, size]) })).image_features.data as Float32Array,
      text: async (t, n) => (await text.run({ tokens: new ort.Tensor('int64', BigInt64Array.from(t, BigInt), [n, ctx]) })).text_features.data as Float32Array,
      weightBytes: onnxFiles(args.onnx).reduce((s, f) => s + statSync(f).size, 0),
      dispose: async () => {
        await image.release();
        await text.release();
      },
    };
  }
  const precision: Precision = name === 'ours bf16' ? 'bf16' : 'fp32';
  const manifest = await readSafetensorsManifest(path.join(args.model, 'open_clip_model.safetensors'));
  const m: BackendModel = await nativeBackend.load(arch, manifest, { precision, device: 'cpu', threads: args.threads, packedCache });
  return {
    name,
    image: async (p, n) => (await m.encodeImage(p, n)).features,
    text: async (t, n) => (await m.encodeText(t, n)).features,
    weightBytes: (m as unknown as { weightBytes: number }).weightBytes,
    dispose: () => m.dispose(),
  };
}

/** Child: one engine's load from the page cache, RSS after it, peak RSS. */
async function runLoadChild(args: Args): Promise<void> {
  const arch = archOf(args.model);
  const t0 = performance.now();
  const engine = await loadEngine(args.engine!, args, arch, args.packedCache);
  const loadS = (performance.now() - t0) / 1e3;
  const rss = process.memoryUsage().rss;
  const cpu = process.cpuUsage();
  console.log(JSON.stringify({
    engine: engine.name, load_s: loadS, user_s: cpu.user / 1e6, system_s: cpu.system / 1e6, rss_after_load: rss,
    peak_rss: process.resourceUsage().maxRSS * 1024, weight_bytes: engine.weightBytes,
  }));
  await engine.dispose();
}

type Parity = Array<{ check: string; value: number; bound: string; ok: boolean }>;

/** Child: all engines side by side: parity first (also the warm-up), then interleaved rounds. */
async function runTimeChild(args: Args): Promise<void> {
  const arch = archOf(args.model);
  const ctx = arch.text.contextLength;
  const dim = arch.embedDim;
  const engines: Engine[] = [];
  for (const name of ENGINES) engines.push(await loadEngine(name, args, arch));
  const pixels = f32File(path.join(args.onnx, 'ref', 'pixels.f32'));
  const refTokenBytes = readFileSync(path.join(args.onnx, 'ref', 'tokens.i64'));
  const refTokens = Int32Array.from(new BigInt64Array(refTokenBytes.buffer.slice(refTokenBytes.byteOffset, refTokenBytes.byteOffset + ctx * 8)), Number);
  const texts = { text77: tokensRow(75, ctx), text5: tokensRow(5, ctx), textRef: refTokens };
  const run = (e: Engine, w: Work | 'textRef') => (w === 'image' ? e.image(pixels, 1) : e.text(texts[w], 1));

  const parity: Parity = [];
  const fp32Check = (check: string, got: Float32Array, want: Float32Array) => {
    const value = maxRelativeDiff(got, want);
    parity.push({ check, value, bound: `max rel diff <= ${FP32_MAX_REL}`, ok: value <= FP32_MAX_REL });
  };
  const bf16Check = (check: string, got: Float32Array, want: Float32Array) => {
    const value = minRowCosine(got, want, dim);
    parity.push({ check, value, bound: `min cosine >= ${BF16_MIN_COS}`, ok: value >= BF16_MIN_COS });
  };
  const [ort, fp32, bf16] = engines;
  const outputs = new Map<string, Float32Array>();
  for (const e of engines) for (const w of [...WORKS, 'textRef'] as const) outputs.set(`${e.name} ${w}`, await run(e, w));
  // The ONNX export's own PyTorch fp32 outputs: shows ORT runs the same weights as the checkpoint.
  fp32Check('onnxruntime-node vs PyTorch fp32 (export_onnx.py ref), image', outputs.get(`${ort.name} image`)!, f32File(path.join(args.onnx, 'ref', 'image_features.f32')));
  fp32Check('onnxruntime-node vs PyTorch fp32 (export_onnx.py ref), text', outputs.get(`${ort.name} textRef`)!, f32File(path.join(args.onnx, 'ref', 'text_features.f32')));
  for (const w of [...WORKS, 'textRef'] as const) {
    fp32Check(`ours fp32 vs onnxruntime-node, ${w}`, outputs.get(`${fp32.name} ${w}`)!, outputs.get(`${ort.name} ${w}`)!);
    bf16Check(`ours bf16 vs onnxruntime-node, ${w}`, outputs.get(`${bf16.name} ${w}`)!, outputs.get(`${ort.name} ${w}`)!);
  }
  const expectedFile = path.join(args.model, 'expected.safetensors');
  if (existsSync(expectedFile)) {
    const expected = await readExpected(expectedFile);
    const images = expected.get('pixels')!.shape[0];
    const texts = expected.get('tokens')!.shape[0];
    const wantImage = floats(expected.get('image_features'), 'image_features');
    const wantText = floats(expected.get('text_features'), 'text_features');
    for (const [e, check] of [[fp32, fp32Check], [bf16, bf16Check]] as const) {
      check(`${e.name} vs expected.safetensors (PyTorch fp32), ${images} images`, await e.image(floats(expected.get('pixels'), 'pixels'), images), wantImage);
      check(`${e.name} vs expected.safetensors (PyTorch fp32), ${texts} texts`, await e.text(tokensOf(expected.get('tokens')), texts), wantText);
    }
  }

  const wall: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const loads: number[] = [];
  for (let r = 0; r < args.rounds; r++) {
    loads.push(os.loadavg()[0]);
    for (const e of engines) {
      for (const w of WORKS) {
        const [ms, cpuMs] = await timed(() => run(e, w));
        (wall[`${e.name} ${w}`] ??= []).push(ms);
        (cpu[`${e.name} ${w}`] ??= []).push(cpuMs);
      }
    }
  }
  for (const e of engines) await e.dispose();
  // Per-round ratios: each of ours against the peer's run of the same work in the same round (seconds apart), so a
  // host that speeds up or slows down between minutes moves both sides of a ratio together.
  const paired = (k: string) => {
    const r = perRoundRatios(wall[`onnxruntime-node fp32 ${k.slice(k.lastIndexOf(' ') + 1)}`], wall[k]);
    return { paired_median: r.median, paired_min: r.min, paired_max: r.max };
  };
  const times = Object.fromEntries(Object.keys(wall).map((k) => [k, { wall_ms: median(wall[k]), cpu_ms: median(cpu[k]), runs: wall[k].length, ...paired(k) }]));
  console.log(JSON.stringify({ parity, times, load_median: median(loads) }));
}

function child(args: Args, extra: string[], what: string): Record<string, unknown> {
  console.error(`# ${what} ...`);
  const started = Date.now();
  const argv = ['--import', 'tsx', fileURLToPath(import.meta.url), '--model', args.model, '--onnx', args.onnx, '--ort', args.ort,
    '--threads', String(args.threads), '--rounds', String(args.rounds), ...extra];
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 420_000 });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status ?? r.signal}):\n${r.stderr.slice(-3000)}`);
  console.error(`#   done in ${((Date.now() - started) / 1e3).toFixed(0)} s`);
  return JSON.parse(r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!) as Record<string, unknown>;
}

interface Timing {
  wall_ms: number;
  cpu_ms: number;
  runs: number;
  /** Per-round peer time / ours: median and range over the rounds. */
  paired_median: number;
  paired_min: number;
  paired_max: number;
}

interface Measured {
  limits: Limits;
  loadAtStart: number;
  loads: Array<Record<string, number | string>>;
  timing: { parity: Parity; times: Record<string, Timing>; load_median: number };
}

function report(args: Args, m: Measured): string {
  const arch = archOf(args.model);
  const lim = limitsAt(m.limits, args.threads, addonKernels()?.bf16);
  const gib = (x: unknown) => (typeof x === 'number' ? (x / 2 ** 30).toFixed(2) : '-');
  const L: string[] = [`## CPU batch 1: ours vs onnxruntime-node (\`bench/cpu.ts\`), ${new Date().toISOString()}`, ''];
  L.push(`- machine: ${machineSummary()}; Node ${process.version}`);
  L.push(`- machine load (1-minute average) at start / median over the rounds / end: ${fmt(m.loadAtStart, 2)} / ${fmt(m.timing.load_median, 2)} / ${fmt(os.loadavg()[0], 2)}`);
  L.push(`- limits (bench/limits.cc, this run): ${limitsLine(m.limits)}`);
  L.push(`- model: ${args.model} (${arch.vision.timmModelName}, ${arch.vision.imageSize} px, text ${arch.text.layers} x ${arch.text.width}; random weights); ONNX: ${args.onnx} (export_onnx.py, same seed)`);
  L.push(`- onnxruntime-node ${ortVersion(args.ort)} (intraOpNumThreads ${args.threads}, interOpNumThreads 1, graphOptimizationLevel all); ours: ${nativeBackend.describe?.() ?? 'native addon'} (${gemmKernels()}), ${args.threads} threads; ${sourceSummary(addonFile())}`);
  L.push(`- all three engines loaded in one process, ${args.rounds} interleaved rounds after a warm-up (the parity runs), medians; cpu = process CPU time of the call, all threads`);
  L.push(`- ratio = peer time / ours (> 1: ours faster), of the medians; per round = the median (and range) of each round's ratio, ours against the peer's run seconds before. GFLOP = 2 x multiply-adds of every conv and linear (incl. the depthwise 7x7 and both attention matmuls; no norms, activations, biases); of peak = achieved GFLOP/s / the ${lim.fmaIsa} fp32 FMA peak at ${args.threads} threads (${fmt(lim.fmaGflops)} GFLOP/s)${lim.bf16Gflops ? ` and, for bf16, / the ${lim.bf16Isa} peak (${fmt(lim.bf16Gflops)})` : ''}`);
  L.push(`- ours stops the text tower at the last end token (causal attention: same output), so 5 tokens are 7 positions; ONNX computes all ${arch.text.contextLength}. of bandwidth = text linear weights read once (${fmt(textLinearWeights(arch) / 1e6, 0)} M elements x 4 B fp32 / 2 B bf16) / time / the read bandwidth at ${args.threads} threads (${fmt(lim.readGbps)} GB/s)`);
  L.push('', '| work | engine | ms | cpu ms | ratio | per round | GFLOP | GFLOP/s | of FMA peak | of bf16 peak | weights GB | of bandwidth |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const label: Record<Work, string> = { image: `image ${arch.vision.imageSize} px`, text77: 'text, 75 tokens (77 positions)', text5: 'text, 5 tokens' };
  for (const w of WORKS) {
    const peer = m.timing.times[`onnxruntime-node fp32 ${w}`];
    for (const e of ENGINES) {
      const t = m.timing.times[`${e} ${w}`];
      const ours = e !== 'onnxruntime-node fp32';
      const positions = w === 'text77' || (w === 'text5' && !ours) ? arch.text.contextLength : 7;
      const flops = w === 'image' ? imageFlops(arch) : textFlops(arch, positions);
      const gflops = flops / 1e9 / (t.wall_ms / 1e3);
      const bytes = w === 'image' ? undefined : textLinearWeights(arch) * (e === 'ours bf16' ? 2 : 4);
      L.push(`| ${label[w]} | ${e} | ${fmt(t.wall_ms)} | ${fmt(t.cpu_ms)} | ${ours ? `${(peer.wall_ms / t.wall_ms).toFixed(2)}x` : ''} | ${ours ? `${t.paired_median.toFixed(2)}x (${t.paired_min.toFixed(2)}-${t.paired_max.toFixed(2)})` : ''} | ${fmt(flops / 1e9)} | ${fmt(gflops)} | ` +
        `${pct(gflops / lim.fmaGflops!)} | ${e === 'ours bf16' && lim.bf16Gflops ? pct(gflops / lim.bf16Gflops) : ''} | ${bytes ? fmt(bytes / 1e9, 2) : ''} | ${bytes && lim.readGbps ? pct(bytes / 1e9 / (t.wall_ms / 1e3) / lim.readGbps) : ''} |`);
    }
  }
  L.push('', `Load from the page cache (each engine in its own process; the files were read once first). Weights / bandwidth = the load time if loading only read the weights once at ${fmt(lim.readGbps)} GB/s.`, '');
  L.push('| engine | load s | ratio | user / system s | weights GiB | weights / bandwidth s | RSS after load GiB | peak RSS GiB |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const peerLoad = m.loads.find((l) => l.engine === 'onnxruntime-node fp32')!;
  for (const l of m.loads) {
    const ours = l.engine !== 'onnxruntime-node fp32';
    L.push(`| ${l.engine} | ${fmt(l.load_s, 2)} | ${ours ? `${(Number(peerLoad.load_s) / Number(l.load_s)).toFixed(2)}x` : ''} | ${fmt(l.user_s)} / ${fmt(l.system_s)} | ${gib(l.weight_bytes)} | ` +
      `${lim.readGbps ? fmt(Number(l.weight_bytes) / 1e9 / lim.readGbps, 2) : '-'} | ${gib(l.rss_after_load)} | ${gib(l.peak_rss)} |`);
  }
  L.push('', 'Parity in the same run (ours on the same weights and inputs as onnxruntime-node; the bounds of issue 14):', '');
  L.push('| check | value | bound | |', '| --- | ---: | --- | --- |');
  for (const p of m.timing.parity) L.push(`| ${p.check} | ${p.bound.startsWith('max') ? p.value.toExponential(2) : p.value.toFixed(6)} | ${p.bound} | ${p.ok ? 'ok' : '**FAIL**'} |`);
  return `${L.join('\n')}\n`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child === 'load') return runLoadChild(args);
  if (args.child === 'time') return runTimeChild(args);
  const loadAtStart = os.loadavg()[0];
  console.error('# limits (bench/limits.cc) ...');
  const limitsAtStart = measureLimits();
  console.error(`#   ${limitsLine(limitsAtStart)}`);
  const files = [path.join(args.model, 'open_clip_model.safetensors'), ...onnxFiles(args.onnx)];
  console.error(`# reading ${(readIntoPageCache(files) / 2 ** 30).toFixed(1)} GiB into the page cache ... done`);
  const loads = ENGINES.map((e) => child(args, ['--child', 'load', '--engine', e], `load ${e}`) as Record<string, number | string>);
  if (args.cacheLoads) {
    // Our loads with a packed-weights cache: the first writes it (to this temporary folder), the second maps it.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cclip-bench-packed-'));
    try {
      for (const e of ['ours fp32', 'ours bf16'] as const) {
        for (const step of ['writes it', 'maps it']) {
          const l = child(args, ['--child', 'load', '--engine', e, '--packed-cache', dir], `load ${e}, packed cache ${step}`) as Record<string, number | string>;
          loads.push({ ...l, engine: `${e}, packed cache ${step}` });
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const timing = child(args, ['--child', 'time'], `${ENGINES.join(', ')}: parity and ${args.rounds} rounds`) as unknown as Measured['timing'];
  console.error('# limits again (the best of both is kept) ...');
  const limits = bestLimits([limitsAtStart, measureLimits()]);
  const section = report(args, { limits, loadAtStart, loads, timing });
  process.stdout.write(section);
  if (args.out) appendSection(args.out, section);
  if (timing.parity.some((p) => !p.ok)) {
    console.error('# parity FAILED (see the table)');
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
