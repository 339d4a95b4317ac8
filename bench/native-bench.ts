/**
 * Native backend vs PyTorch CPU on one checkpoint (full ConvNeXt-XXLarge dims by default), both precisions, in
 * one run. Each engine x precision runs in its own child process, so peak RSS is its own.
 *
 *   /usr/bin/python3 /work/shared/reference/clip_reference.py make --config convnext_xxlarge --out /tmp/xxl
 *   node --import tsx bench/native-bench.ts --model /tmp/xxl --threads 2 [--out bench/RESULTS.md] [--no-torch]
 *
 * Child mode (--child native): prints one JSON line with the same fields as bench/torch_peer.py.
 * CCLIP_PROFILE=1 in the child's environment makes the addon print per-op times to stderr; the parent runs one
 * profiled image batch-1 forward per precision and keeps that breakdown.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseModelConfig } from '../lib/architecture.js';
import { nativeBackend } from '../lib/backends/native.js';
import type { Precision } from '../lib/backends/types.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from '../test/native-helpers.js';
import { machineSummary } from './common.js';

interface Args {
  model: string;
  threads: number;
  batch: number;
  budget: number;
  out?: string;
  torch: boolean;
  python: string;
  child?: 'native';
  profile?: boolean;
  precision: Precision;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { model: '/tmp/xxl', threads: 2, batch: 8, budget: 20, torch: true, python: '/usr/bin/python3', precision: 'fp32' };
  for (let i = 0; i < argv.length; i++) {
    const value = () => argv[++i];
    switch (argv[i]) {
      case '--model': args.model = value(); break;
      case '--threads': args.threads = Number(value()); break;
      case '--batch': args.batch = Number(value()); break;
      case '--budget': args.budget = Number(value()); break;
      case '--out': args.out = value(); break;
      case '--no-torch': args.torch = false; break;
      case '--python': args.python = value(); break;
      case '--child': args.child = value() as 'native'; break;
      case '--profile': args.profile = true; break;
      case '--precision': args.precision = value() as Precision; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return args;
}

type Result = Record<string, number | string>;

async function measure(fn: () => Promise<unknown>, budgetS: number, maxIters = 5): Promise<[number, number]> {
  let start = performance.now();
  await fn();
  const first = (performance.now() - start) / 1e3;
  if (first >= budgetS) return [first, 1]; // one cold run: at this length warm-up effects are noise
  const iters = Math.max(1, Math.min(maxIters, Math.floor(budgetS / Math.max(first, 1e-6))));
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    start = performance.now();
    await fn();
    times.push((performance.now() - start) / 1e3);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  return [times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2, times.length];
}

/** Deterministic pseudo-random normal-ish values. */
function pixelsOf(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 3.4;
  }
  return out;
}

function tokensWithEndAt(batch: number, end: number, context: number): Int32Array {
  const out = new Int32Array(batch * context);
  for (let r = 0; r < batch; r++) {
    out[r * context] = 49406;
    for (let i = 1; i < end; i++) out[r * context + i] = 1 + ((r * 7919 + i * 104729) % 48999);
    out[r * context + end] = 49407;
  }
  return out;
}

/** `batch` texts of different lengths, the end token of row r at 6 + 4 * (r % 8) (7-35 tokens): what a batch of
 * search queries or captions looks like. */
function mixedLengthTokens(batch: number, context: number): Int32Array {
  const out = new Int32Array(batch * context);
  for (let r = 0; r < batch; r++) out.set(tokensWithEndAt(1, 6 + 4 * (r % 8), context), r * context);
  return out;
}

async function runNativeChild(args: Args): Promise<void> {
  const config = JSON.parse(readFileSync(path.join(args.model, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown };
  const arch = parseModelConfig(config.model_cfg);
  let start = performance.now();
  const manifest = await readSafetensorsManifest(path.join(args.model, 'open_clip_model.safetensors'));
  const model = await nativeBackend.load(arch, manifest, { precision: args.precision, device: 'cpu', threads: args.threads });
  const loadS = (performance.now() - start) / 1e3;
  const size = arch.vision.imageSize;
  const ctx = arch.text.contextLength;
  const img1 = pixelsOf(3 * size * size, 1);
  if (args.profile) {
    // The parent sets CCLIP_PROFILE=1; the addon prints a table per forward. The parent keeps the last of each.
    for (let i = 0; i < 2; i++) {
      await model.encodeImage(img1, 1);
      await model.encodeText(tokensWithEndAt(1, 76, ctx), 1);
    }
    model.dispose();
    return;
  }
  const imgB = pixelsOf(args.batch * 3 * size * size, 2);
  const out: Result = { engine: 'native', precision: args.precision, threads: args.threads, load_s: loadS };
  const tok77 = tokensWithEndAt(1, 76, ctx);
  const tok12 = tokensWithEndAt(1, 11, ctx);
  const tok77b = tokensWithEndAt(args.batch, 76, ctx);
  let [s, n] = await measure(() => model.encodeImage(img1, 1), args.budget);
  Object.assign(out, { image_b1_ms: s * 1e3, image_b1_iters: n });
  [s, n] = await measure(() => model.encodeText(tok77, 1), args.budget);
  Object.assign(out, { text_b1_l77_ms: s * 1e3, text_b1_l77_iters: n });
  [s, n] = await measure(() => model.encodeText(tok12, 1), args.budget);
  Object.assign(out, { text_b1_l12_ms: s * 1e3, text_b1_l12_iters: n });
  [s, n] = await measure(() => model.encodeImage(imgB, args.batch), args.budget, 3);
  Object.assign(out, { image_b8_per_s: args.batch / s, image_b8_iters: n });
  [s, n] = await measure(() => model.encodeText(tok77b, args.batch), args.budget);
  Object.assign(out, { text_b8_l77_per_s: args.batch / s, text_b8_l77_iters: n });
  const mixed = mixedLengthTokens(args.batch, ctx);
  [s, n] = await measure(() => model.encodeText(mixed, args.batch), args.budget);
  Object.assign(out, { text_b8_mixed_per_s: args.batch / s, text_b8_mixed_iters: n });
  out.weight_bytes = (model as unknown as { weightBytes: number }).weightBytes;
  // Full-size parity against the float32 PyTorch outputs `clip_reference.py make` saved beside the weights.
  const expectedFile = path.join(args.model, 'expected.safetensors');
  if (existsSync(expectedFile)) {
    const expected = await readExpected(expectedFile);
    const dim = arch.embedDim;
    const image = await model.encodeImage(floats(expected.get('pixels'), 'pixels'), expected.get('pixels')!.shape[0]);
    const text = await model.encodeText(tokensOf(expected.get('tokens')), expected.get('tokens')!.shape[0]);
    const wantImage = floats(expected.get('image_features'), 'image_features');
    const wantText = floats(expected.get('text_features'), 'text_features');
    Object.assign(out, {
      check_image_max_rel: maxRelativeDiff(image.features, wantImage),
      check_image_min_cos: minRowCosine(image.features, wantImage, dim),
      check_text_max_rel: maxRelativeDiff(text.features, wantText),
      check_text_min_cos: minRowCosine(text.features, wantText, dim),
    });
  }
  model.dispose();
  out.peak_rss_bytes = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify(out));
}

function lastJsonLine(stdout: string, what: string): Result {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  if (!line) throw new Error(`${what} printed no result:\n${stdout}`);
  return JSON.parse(line) as Result;
}

function runChild(command: string, argv: string[], what: string, env: NodeJS.ProcessEnv = process.env): { stdout: string; stderr: string } {
  console.error(`# ${what} ...`);
  const started = Date.now();
  const r = spawnSync(command, argv, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.stderr}\n${r.stdout}`);
  console.error(`#   done in ${((Date.now() - started) / 1e3).toFixed(0)} s`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** The last table printed for each tower ("[cclip profile] <title>: <ms>" followed by indented rows). */
function lastProfileTables(stderr: string): string {
  const tables = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('[cclip profile]')) continue;
    const body = line.slice('[cclip profile] '.length);
    if (!body.startsWith(' ')) {
      current = [body];
      tables.set(body.split(',')[0], current);
    } else {
      current?.push(body);
    }
  }
  return [...tables.values()].map((t) => t.join('\n')).join('\n\n');
}

/** A PyTorch measurement skipped as hopeless shows its estimate instead. */
const orSkipped = (r: Result, key: string, value: string) =>
  typeof r[`${key}_skipped_est_s`] === 'number' ? `skipped (est. ${Math.round(r[`${key}_skipped_est_s`] as number)} s/run)` : value;
const fmt = (v: unknown, digits = 1) => (typeof v === 'number' ? v.toFixed(digits) : '-');
const gib = (v: unknown) => (typeof v === 'number' ? (v / 2 ** 30).toFixed(2) : '-');

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child === 'native') return runNativeChild(args);

  const self = fileURLToPath(import.meta.url);
  const node = process.execPath;
  const common = ['--model', args.model, '--threads', String(args.threads), '--batch', String(args.batch), '--budget', String(args.budget)];
  const loadAtStart = os.loadavg()[0];
  const rows: Array<{ precision: Precision; native: Result; torch?: Result; profile: string }> = [];
  for (const precision of ['fp32', 'bf16'] as Precision[]) {
    const childArgs = ['--import', 'tsx', self, '--child', 'native', '--precision', precision, ...common];
    const native = lastJsonLine(runChild(node, childArgs, `native ${precision}`).stdout, `native ${precision}`);
    const profiled = runChild(node, [...childArgs, '--profile'], `native ${precision} profile`, { ...process.env, CCLIP_PROFILE: '1' });
    const profile = lastProfileTables(profiled.stderr);
    let torch: Result | undefined;
    if (args.torch) {
      const peer = path.join(path.dirname(self), 'torch_peer.py');
      torch = lastJsonLine(runChild(args.python, [peer, '--dtype', precision, ...common], `pytorch ${precision}`).stdout, `pytorch ${precision}`);
    }
    rows.push({ precision, native, torch, profile });
  }

  const metrics: Array<[string, string, boolean, (r: Result) => string]> = [
    ['image latency, batch 1', 'ms', false, (r) => orSkipped(r, 'image_b1', fmt(r.image_b1_ms))],
    ['text latency, batch 1, 77 tokens', 'ms', false, (r) => orSkipped(r, 'text_b1_l77', fmt(r.text_b1_l77_ms))],
    ['text latency, batch 1, 12 tokens', 'ms', false, (r) => orSkipped(r, 'text_b1_l12', fmt(r.text_b1_l12_ms))],
    [`image throughput, batch ${args.batch}`, 'img/s', true, (r) => orSkipped(r, 'image_b8', fmt(r.image_b8_per_s, 3))],
    [`text throughput, batch ${args.batch}, 77 tokens`, 'text/s', true, (r) => orSkipped(r, 'text_b8_l77', fmt(r.text_b8_l77_per_s, 2))],
    [`text throughput, batch ${args.batch}, 7-35 tokens`, 'text/s', true, (r) => orSkipped(r, 'text_b8_mixed', fmt(r.text_b8_mixed_per_s, 2))],
    ['load time', 's', false, (r) => fmt(r.load_s)],
    ['peak RSS', 'GiB', false, (r) => gib(r.peak_rss_bytes)],
  ];
  const lines: string[] = [];
  lines.push(`# Native backend vs PyTorch CPU`);
  lines.push('');
  lines.push(`- date: ${new Date().toISOString()}`);
  lines.push(`- machine: ${machineSummary()}`);
  lines.push(`- machine load (1-minute load average) at start / end: ${loadAtStart.toFixed(1)} / ${os.loadavg()[0].toFixed(1)} (above ${os.cpus().length} means other processes shared the cores, and every number here is slower than on an idle machine)`);
  lines.push(`- model: ${args.model} (random weights from clip_reference.py make), ${args.threads} threads for both engines`);
  if (rows[0].torch) lines.push(`- PyTorch ${rows[0].torch.version} (Debian python3-torch), clip_reference.py's model, torch.set_num_threads(${args.threads}), encode_text(truncate=True)`);
  lines.push('- speedup = PyTorch time / native time (higher is better for native); latencies are medians of up to 5 runs after a warm-up, or one cold run when a run exceeds the per-measurement budget');
  for (const row of rows) {
    if (row.torch?.matmul_gflops !== undefined) lines.push(`- PyTorch ${row.precision} matmul speed here (256x1536 . 1536x6144): ${fmt(row.torch.matmul_gflops)} GFLOPS`);
  }
  lines.push('');
  lines.push('| metric | precision | native | PyTorch | speedup |');
  lines.push('| --- | --- | ---: | ---: | ---: |');
  for (const [name, unit, higherIsBetter, get] of metrics) {
    for (const row of rows) {
      const a = get(row.native);
      const b = row.torch ? get(row.torch) : '-';
      const na = Number(a);
      const nb = Number(b);
      const ratio = Number.isFinite(na) && Number.isFinite(nb) && na > 0 && nb > 0 ? (higherIsBetter ? na / nb : nb / na).toFixed(2) + 'x' : '-';
      lines.push(`| ${name} (${unit}) | ${row.precision} | ${a} | ${b} | ${name === 'peak RSS' || name === 'load time' ? ratio.replace('x', 'x less') : ratio} |`);
    }
  }
  lines.push('');
  lines.push('## Native parity at full size (vs the float32 PyTorch outputs in expected.safetensors)');
  lines.push('');
  lines.push('| precision | image max rel diff | image min cosine | text max rel diff | text min cosine |');
  lines.push('| --- | ---: | ---: | ---: | ---: |');
  const sci = (v: unknown) => (typeof v === 'number' ? v.toExponential(2) : '-');
  for (const { precision, native } of rows) {
    lines.push(`| ${precision} | ${sci(native.check_image_max_rel)} | ${fmt(native.check_image_min_cos, 6)} | ${sci(native.check_text_max_rel)} | ${fmt(native.check_text_min_cos, 6)} |`);
  }
  for (const row of rows) {
    lines.push('');
    lines.push(`## Native per-op time, ${row.precision} (CCLIP_PROFILE=1, one forward each)`);
    lines.push('');
    lines.push('```');
    lines.push(row.profile);
    lines.push('```');
  }
  const text = lines.join('\n') + '\n';
  console.log(text);
  if (args.out) writeFileSync(args.out, text + otherSections(args.out));
}

/** The sections other benches own in the same file (from `## wasm` on), kept when this bench rewrites it. */
function otherSections(file: string): string {
  if (!existsSync(file)) return '';
  const old = readFileSync(file, 'utf8');
  const start = old.search(/^## wasm$/m);
  return start < 0 ? '' : `\n${old.slice(start)}`;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
