/**
 * Shared by the benchmarks: this machine's measured limits (bench/limits.cc), a one-line machine summary, FLOP and
 * weight-byte counts from the architecture, medians and timing, and appending dated sections to bench/RESULTS.md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClipArchitecture } from '../lib/architecture.js';

const benchDir = path.dirname(fileURLToPath(import.meta.url));

/** What bench/limits.cc prints (the peaks of an ISA the CPU lacks are absent). */
export interface Limits {
  cpu: string;
  threads: number;
  load_avg_1m: number;
  load_avg_1m_end: number;
  flags: { avx2: boolean; fma: boolean; avx512f: boolean; avx512_bf16: boolean; amx_bf16?: boolean };
  fma_ymm_gflops_1t?: number;
  fma_ymm_gflops_all?: number;
  fma_zmm_gflops_1t?: number;
  fma_zmm_gflops_all?: number;
  bf16_dot_zmm_gflops_1t?: number;
  bf16_dot_zmm_gflops_all?: number;
  bf16_amx_gflops_1t?: number;
  bf16_amx_gflops_all?: number;
  read_gbps_1t?: number;
  read_gbps_all?: number;
  /** Smallest thread CPU time / wall time in the measurements kept: below ~0.95 other processes shared the CPUs. */
  min_cpu_share: number;
  /** How many limits.cc runs these figures are the best of. */
  runs?: number;
}

/** Builds bench/limits.cc into build-bench/ (when the source is newer) and runs it. Takes ~10 s and 1 GiB. */
export function measureLimits(): Limits {
  const source = path.join(benchDir, 'limits.cc');
  const binary = path.join(benchDir, '..', 'build-bench', 'limits');
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    mkdirSync(path.dirname(binary), { recursive: true });
    execFileSync('g++', ['-O2', '-pthread', '-std=c++17', '-o', binary, source], { stdio: 'inherit' });
  }
  const r = spawnSync(binary, [], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${binary} failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Limits;
}

/** The best of each figure over several limits.cc runs (e.g. at the start and the end of a benchmark): another
 * process sharing the cores only ever lowers a figure. */
export function bestLimits(all: Limits[]): Limits {
  const out: Limits = { ...all[0], runs: all.length };
  const figures = Object.keys(all[0]).filter((k) => k.endsWith('_gflops_1t') || k.endsWith('_gflops_all') || k.startsWith('read_gbps')) as Array<keyof Limits>;
  for (const k of figures) (out as unknown as Record<string, number>)[k] = Math.max(...all.map((l) => l[k] as number));
  out.min_cpu_share = Math.max(...all.map((l) => l.min_cpu_share));
  out.load_avg_1m_end = all[all.length - 1].load_avg_1m_end;
  return out;
}

/**
 * A per-thread-count view of the limits: `threads` threads get the all-thread figure once they use every CPU, else
 * `threads` x the one-thread figure (up to the all-thread one). Never less than the one-thread figure: more threads
 * measuring less (other processes took the cores meanwhile) does not lower what the machine can do.
 */
export function limitsAt(
  limits: Limits,
  threads: number,
  bf16Kernel?: string,
): { fmaGflops?: number; fmaIsa: string; bf16Gflops?: number; bf16Isa: string; readGbps?: number } {
  const at = (oneThread?: number, all?: number) =>
    oneThread === undefined || all === undefined ? undefined : Math.max(oneThread, threads >= limits.threads ? all : Math.min(all, oneThread * threads));
  const zmm = at(limits.fma_zmm_gflops_1t, limits.fma_zmm_gflops_all);
  const ymm = at(limits.fma_ymm_gflops_1t, limits.fma_ymm_gflops_all);
  const useZmm = zmm !== undefined && zmm > (ymm ?? 0);
  return {
    fmaGflops: useZmm ? zmm : ymm,
    fmaIsa: useZmm ? 'AVX-512 zmm' : 'AVX2 ymm',
    // bf16: the instruction the bf16 GEMMs use (bf16Kernel: the addon's gemmKernels.bf16; unknown: AMX tiles where
    // measured, else vdpbf16ps).
    ...(limits.bf16_amx_gflops_1t !== undefined && (bf16Kernel === undefined || bf16Kernel === 'amx')
      ? { bf16Gflops: at(limits.bf16_amx_gflops_1t, limits.bf16_amx_gflops_all), bf16Isa: 'AMX tdpbf16ps' }
      : { bf16Gflops: at(limits.bf16_dot_zmm_gflops_1t, limits.bf16_dot_zmm_gflops_all), bf16Isa: 'vdpbf16ps' }),
    readGbps: at(limits.read_gbps_1t, limits.read_gbps_all),
  };
}

/** One line for RESULTS.md: every figure bench/limits.cc measured. */
export function limitsLine(l: Limits): string {
  const pair = (name: string, one?: number, all?: number, unit = 'GFLOP/s') =>
    one === undefined ? [] : [`${name} ${one.toFixed(1)} (1 thread) / ${all?.toFixed(1)} (${l.threads} threads) ${unit}`];
  return [
    ...pair('fp32 FMA AVX2 ymm', l.fma_ymm_gflops_1t, l.fma_ymm_gflops_all),
    ...pair('fp32 FMA AVX-512 zmm', l.fma_zmm_gflops_1t, l.fma_zmm_gflops_all),
    ...pair('bf16 dot vdpbf16ps zmm', l.bf16_dot_zmm_gflops_1t, l.bf16_dot_zmm_gflops_all),
    ...pair('bf16 AMX tdpbf16ps', l.bf16_amx_gflops_1t, l.bf16_amx_gflops_all),
    ...pair('read bandwidth (1 GiB, ymm loads)', l.read_gbps_1t, l.read_gbps_all, 'GB/s'),
  ].join('; ') +
    `${l.runs && l.runs > 1 ? ` (best of ${l.runs} runs)` : ''}; measuring threads got >= ${(100 * l.min_cpu_share).toFixed(0)}% of a CPU` +
    (l.min_cpu_share < 0.95 ? ' (**contended**: other processes shared the cores, so these limits understate the machine)' : '');
}

/** CPU model, logical CPUs, RAM and the flags that decide which kernels run. */
export function machineSummary(): string {
  let model = os.cpus()[0]?.model ?? 'unknown CPU';
  let flags = '';
  try {
    const lscpu = execFileSync('lscpu', { encoding: 'utf8' });
    model = /Model name:\s*(.+)/.exec(lscpu)?.[1]?.trim() ?? model;
    const all = new Set((/Flags:\s*(.+)/.exec(lscpu)?.[1] ?? '').split(/\s+/));
    flags = ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512_bf16', 'amx_bf16'].map((f) => `${f}${all.has(f) ? '+' : '-'}`).join(' ');
  } catch {
    // lscpu missing: keep the Node view
  }
  return `${model}, ${os.cpus().length} logical CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM; flags: ${flags}`;
}

/*
 * FLOP counts: 2 per multiply-add of every convolution and linear layer, batch 1. LayerNorm, GELU, softmax, biases,
 * residual adds and pooling are not counted (they scale with the activations, not with weights x positions).
 */

/** Image tower at its image size: stem 4x4/4 conv, every block's depthwise 7x7 and two linears, the 2x2/2
 * downsample convs, the head projection. */
export function imageFlops(arch: ClipArchitecture): number {
  const { dims, depths, imageSize, proj } = arch.vision;
  let side = imageSize / 4;
  let flops = 2 * side * side * dims[0] * 3 * 4 * 4; // stem
  for (let s = 0; s < 4; s++) {
    if (s > 0) {
      side /= 2;
      flops += 2 * side * side * dims[s] * dims[s - 1] * 2 * 2; // downsample
    }
    const positions = side * side;
    const perBlock = 2 * positions * dims[s] * 7 * 7 + 2 * 2 * positions * dims[s] * 4 * dims[s]; // dw 7x7 + fc1 + fc2
    flops += depths[s] * perBlock;
  }
  const features = dims[3];
  flops += proj === 'linear' ? 2 * features * arch.embedDim : 2 * features * 2 * arch.embedDim + 2 * 2 * arch.embedDim * arch.embedDim;
  return flops;
}

/** Text tower over `positions` positions: per layer the qkv, out, c_fc and c_proj linears and both attention
 * matmuls (the full positions x positions square, as ONNX computes it), then the projection of the pooled row. */
export function textFlops(arch: ClipArchitecture, positions: number): number {
  const w = arch.text.width;
  const perLayer = 2 * positions * w * (3 * w + w + 4 * w + 4 * w) + 2 * 2 * positions * positions * w;
  return arch.text.layers * perLayer + 2 * w * arch.embedDim;
}

/** Weight elements every text forward reads once whatever its length: the layers' linears and the projection. */
export function textLinearWeights(arch: ClipArchitecture): number {
  const w = arch.text.width;
  return arch.text.layers * 12 * w * w + w * arch.embedDim;
}

/** The source the numbers came from: the commit (with "+changes" when the tree differs) and, when given, a built
 * file's modification time (an addon may be older than the commit). */
export function sourceSummary(builtFile?: string): string {
  let commit = 'unknown commit';
  try {
    const git = (...a: string[]) => execFileSync('git', ['-C', path.join(benchDir, '..'), ...a], { encoding: 'utf8' }).trim();
    commit = `commit ${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' +changes' : ''}`;
  } catch {
    // not a git checkout
  }
  const built = builtFile && existsSync(builtFile) ? `; ${path.basename(builtFile)} built ${statSync(builtFile).mtime.toISOString()}` : '';
  return `${commit}${built}`;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Per-round ratios peer[r] / ours[r] (two calls of one round, seconds apart): median, min, max. */
export const perRoundRatios = (peer: number[], ours: number[]): { median: number; min: number; max: number } => {
  const ratios = ours.map((ms, r) => peer[r] / ms);
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
};

/** Wall and process CPU time (all threads) of one call, in ms. */
export async function timed(fn: () => Promise<unknown>): Promise<[number, number]> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return [wall, (c.user + c.system) / 1e3];
}

/** Reads every file once (so the loads that follow are timed from the page cache); returns the bytes read. */
export function readIntoPageCache(files: string[]): number {
  const chunk = Buffer.allocUnsafe(16 << 20);
  let total = 0;
  for (const file of files) {
    const fd = openSync(file, 'r');
    try {
      for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) total += n;
    } finally {
      closeSync(fd);
    }
  }
  return total;
}

/** Appends `section` to `file` after what is there (history is kept). */
export function appendSection(file: string, section: string): void {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  appendFileSync(file, `${old && !old.endsWith('\n') ? '\n' : ''}${old ? '\n' : ''}${section}`);
}

export const fmt = (x: unknown, digits = 1): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '-');
export const pct = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : '-');
