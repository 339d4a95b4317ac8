/**
 * Load time and memory of the native backend from the page cache: wall seconds, user/system CPU seconds, RSS
 * after load and peak RSS, per precision, for one or more addon builds side by side (rounds interleaved). Each
 * load runs in its own child process, so peak RSS is that load's own. The checkpoint is read (cat) before every
 * load so it sits in the page cache; major page faults (reads that still went to the disk) are reported.
 *
 *   flock /tmp/cpu.lock node --import tsx bench/load-weights.ts --model /tmp/xxl --threads 2 --rounds 3 \
 *     --addon before=/tmp/load14-before.node --addon after=build/Release/convnext_clip.node \
 *     --addon after-pread=build/Release/convnext_clip.node,CCLIP_LOAD_MMAP=0
 *
 * --addon LABEL=FILE[,NAME=VALUE...]: an addon build, with environment variables for its children.
 * --check: each child also encodes the inputs of the model's expected.safetensors after its load and reports the
 * largest relative difference / smallest row cosine to the PyTorch outputs and a SHA-256 of its features
 * (equal hashes: bit-identical outputs across addons).
 *
 * Child mode (--child): loads once with $CONVNEXT_CLIP_ADDON and prints one JSON line.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseModelConfig } from '../lib/architecture.js';
import { nativeBackend } from '../lib/backends/native.js';
import type { Precision } from '../lib/backends/types.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { floats, maxRelativeDiff, minRowCosine, readExpected, tokensOf } from '../test/native-helpers.js';

interface Args {
  model: string;
  threads: number;
  rounds: number;
  precisions: Precision[];
  addons: { label: string; file: string; env: Record<string, string> }[];
  child: boolean;
  check: boolean;
  precision: Precision;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { model: '/tmp/xxl', threads: 2, rounds: 3, precisions: ['fp32', 'bf16'], addons: [], child: false, check: false, precision: 'fp32' };
  for (let i = 0; i < argv.length; i++) {
    const value = () => argv[++i];
    switch (argv[i]) {
      case '--model': args.model = value(); break;
      case '--threads': args.threads = Number(value()); break;
      case '--rounds': args.rounds = Number(value()); break;
      case '--precisions': args.precisions = value().split(',') as Precision[]; break;
      case '--addon': {
        const spec = value();
        const label = spec.slice(0, spec.indexOf('='));
        const [file, ...vars] = spec.slice(label.length + 1).split(',');
        const env = Object.fromEntries(vars.map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]));
        args.addons.push({ label, file: path.resolve(file), env });
        break;
      }
      case '--child': args.child = true; break;
      case '--check': args.check = true; break;
      case '--precision': args.precision = value() as Precision; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return args;
}

interface Sample {
  load_s: number;
  user_s: number;
  sys_s: number;
  rss_before_mb: number;
  rss_after_mb: number;
  peak_rss_mb: number;
  weights_mb: number;
  major_faults: number;
  image_max_rel?: number;
  image_min_cos?: number;
  text_max_rel?: number;
  text_min_cos?: number;
  features_sha256?: string;
}

const MB = 1024 * 1024;

async function runChild(args: Args): Promise<void> {
  const config = JSON.parse(readFileSync(path.join(args.model, 'open_clip_config.json'), 'utf8')) as { model_cfg: unknown };
  const arch = parseModelConfig(config.model_cfg);
  const manifest = await readSafetensorsManifest(path.join(args.model, 'open_clip_model.safetensors'));
  const rssBefore = process.memoryUsage().rss;
  const usage0 = process.resourceUsage();
  const start = performance.now();
  const model = await nativeBackend.load(arch, manifest, { precision: args.precision, device: 'cpu', threads: args.threads });
  const loadS = (performance.now() - start) / 1e3;
  const usage1 = process.resourceUsage();
  const sample: Sample = {
    load_s: loadS,
    user_s: (usage1.userCPUTime - usage0.userCPUTime) / 1e6,
    sys_s: (usage1.systemCPUTime - usage0.systemCPUTime) / 1e6,
    rss_before_mb: rssBefore / MB,
    rss_after_mb: process.memoryUsage().rss / MB,
    peak_rss_mb: usage1.maxRSS / 1024, // maxRSS is in KiB
    major_faults: usage1.majorPageFault - usage0.majorPageFault,
    weights_mb: (model as unknown as { weightBytes: number }).weightBytes / MB, // AddonModel's packed bytes
  };
  if (args.check) {
    const expected = await readExpected(path.join(args.model, 'expected.safetensors'));
    const image = await model.encodeImage(floats(expected.get('pixels'), 'pixels'), expected.get('pixels')!.shape[0]);
    const text = await model.encodeText(tokensOf(expected.get('tokens')), expected.get('tokens')!.shape[0]);
    const wantImage = floats(expected.get('image_features'), 'image_features');
    const wantText = floats(expected.get('text_features'), 'text_features');
    sample.image_max_rel = maxRelativeDiff(image.features, wantImage);
    sample.image_min_cos = minRowCosine(image.features, wantImage, arch.embedDim);
    sample.text_max_rel = maxRelativeDiff(text.features, wantText);
    sample.text_min_cos = minRowCosine(text.features, wantText, arch.embedDim);
    const hash = createHash('sha256');
    hash.update(new Uint8Array(image.features.buffer, image.features.byteOffset, image.features.byteLength));
    hash.update(new Uint8Array(text.features.buffer, text.features.byteOffset, text.features.byteLength));
    sample.features_sha256 = hash.digest('hex').slice(0, 16);
  }
  model.dispose();
  process.stdout.write(`${JSON.stringify(sample)}\n`);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function warmPageCache(file: string): void {
  // One sequential read of the whole checkpoint (cat to /dev/null), so every round reads from the page cache.
  const r = spawnSync('cat', [file], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`cannot read ${file}`);
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) {
    void runChild(args);
    return;
  }
  if (args.addons.length === 0) args.addons.push({ label: 'built', file: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'build', 'Release', 'convnext_clip.node'), env: {} });
  const samples = new Map<string, Sample[]>();
  const load0 = os.loadavg()[0];
  for (let round = 0; round < args.rounds; round++) {
    for (const precision of args.precisions) {
      for (const { label, file, env } of args.addons) {
        warmPageCache(path.join(args.model, 'open_clip_model.safetensors'));
        const childArgs = ['--child', '--model', args.model, '--threads', String(args.threads), '--precision', precision, ...(args.check && round === 0 ? ['--check'] : [])];
        const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...childArgs], {
          env: { ...process.env, ...env, CONVNEXT_CLIP_ADDON: file },
          encoding: 'utf8',
          timeout: 300_000,
        });
        if (r.status !== 0) throw new Error(`child ${label} ${precision} failed (${r.status ?? r.signal}): ${r.stderr}`);
        const sample = JSON.parse(r.stdout.trim().split('\n').pop()!) as Sample;
        const key = `${label}\t${precision}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
        process.stderr.write(`round ${round + 1} ${label} ${precision}: ${sample.load_s.toFixed(2)} s (user ${sample.user_s.toFixed(2)}, sys ${sample.sys_s.toFixed(2)}, ${sample.major_faults} major faults), RSS ${sample.rss_after_mb.toFixed(0)} MB, peak ${sample.peak_rss_mb.toFixed(0)} MB\n`);
      }
    }
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(`# load ${args.model}, ${args.threads} threads, ${args.rounds} rounds, ${cpu}, ${os.cpus().length} cores, load average ${load0.toFixed(1)} -> ${os.loadavg()[0].toFixed(1)}, ${new Date().toISOString()}`);
  console.log('| addon | precision | load s (median, min-max) | user s | sys s | RSS before MB | RSS after MB | peak RSS MB | weights MB | peak - before - weights MB | major faults |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [key, list] of samples) {
    const [label, precision] = key.split('\t');
    const m = (f: (s: Sample) => number) => median(list.map(f));
    const loads = list.map((s) => s.load_s);
    console.log(
      `| ${label} | ${precision} | ${m((s) => s.load_s).toFixed(2)} (${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)}) | ${m((s) => s.user_s).toFixed(2)} | ${m((s) => s.sys_s).toFixed(2)} | ${m((s) => s.rss_before_mb).toFixed(0)} | ${m((s) => s.rss_after_mb).toFixed(0)} | ${m((s) => s.peak_rss_mb).toFixed(0)} | ${m((s) => s.weights_mb).toFixed(0)} | ${m((s) => s.peak_rss_mb - s.rss_before_mb - s.weights_mb).toFixed(0)} | ${Math.max(...list.map((s) => s.major_faults))} |`,
    );
  }
  if (!args.check) return;
  console.log('\n| addon | precision | image max rel | image min cos | text max rel | text min cos | features SHA-256 (16) |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | --- |');
  for (const [key, list] of samples) {
    const [label, precision] = key.split('\t');
    const s = list[0];
    console.log(`| ${label} | ${precision} | ${s.image_max_rel?.toExponential(2)} | ${s.image_min_cos?.toFixed(6)} | ${s.text_max_rel?.toExponential(2)} | ${s.text_min_cos?.toFixed(6)} | ${s.features_sha256} |`);
  }
}

main();
