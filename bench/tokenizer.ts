/**
 * Tokenizer throughput on the 80,000 zero-shot ImageNet prompts (1000 classes x 80 OpenAI templates).
 * Run: node --import tsx bench/tokenizer.ts
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipTokenizer, cleanLower } from '../lib/tokenizer/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = process.env.CONVNEXT_CLIP_FIXTURES
  ? path.resolve(process.env.CONVNEXT_CLIP_FIXTURES)
  : path.resolve(root, '..', 'shared', 'fixtures');

const classes = JSON.parse(readFileSync(path.join(fixtures, 'zeroshot', 'imagenet_classnames.json'), 'utf8')) as string[];
const templates = (JSON.parse(readFileSync(path.join(fixtures, 'zeroshot', 'templates.json'), 'utf8')) as Record<string, string[]>)
  .openai_imagenet;
const prompts = classes.flatMap((c) => templates.map((t) => t.replace('{}', c)));

/** Wall seconds, and this process's CPU seconds (steadier on a busy machine). */
function time<T>(fn: () => T): [T, number, number] {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const result = fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return [result, wall, (cpu.user + cpu.system) / 1e6];
}

const rate = (seconds: number): string => `${Math.round(prompts.length / seconds).toLocaleString('en-US')} prompts/s`;
const report = (label: string, wall: number, cpu: number): void =>
  console.log(`${label}: ${(wall * 1000).toFixed(0)} ms wall (${rate(wall)}), ${(cpu * 1000).toFixed(0)} ms CPU (${rate(cpu)})`);

const [, loadGz] = await (async () => {
  const t0 = process.hrtime.bigint();
  const tok = await ClipTokenizer.load(path.join(fixtures, 'vocab', 'bpe_simple_vocab_16e6.txt.gz'));
  return [tok, Number(process.hrtime.bigint() - t0) / 1e9] as const;
})();
const t0 = process.hrtime.bigint();
const tokenizer = await ClipTokenizer.load(path.join(fixtures, 'vocab', 'hf'));
const loadHf = Number(process.hrtime.bigint() - t0) / 1e9;

console.log(`prompts: ${prompts.length.toLocaleString('en-US')} (${classes.length} classes x ${templates.length} templates)`);
console.log(`machine: ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)} (wall times suffer on a busy machine; CPU times less)`);
console.log(`load: gz ${(loadGz * 1000).toFixed(0)} ms (first load, includes module warm-up), hf ${(loadHf * 1000).toFixed(0)} ms`);

const [rows, coldWall, coldCpu] = time(() => tokenizer.tokenize(prompts));
report('tokenize, cold BPE cache', coldWall, coldCpu);
for (let run = 1; run <= 3; run++) {
  const [, wall, cpu] = time(() => tokenizer.tokenize(prompts));
  report(`tokenize, warm BPE cache (run ${run})`, wall, cpu);
}
const [, cleanWall, cleanCpu] = time(() => {
  for (const p of prompts) cleanLower(p);
});
report('cleanLower() alone (ftfy fast path, whitespace, lowercase)', cleanWall, cleanCpu);
const [, slowWall, slowCpu] = time(() => {
  for (let i = 0; i < prompts.length; i += 10) cleanLower(prompts[i] + '\u00e9');
});
report('cleanLower() on 1/10 of the prompts made non-ASCII (full ftfy path), per 80k', slowWall * 10, slowCpu * 10);
console.log(`output: Int32Array[${prompts.length} x 77], ${rows.length * 4} bytes`);

// The reference, when this machine's Python (or $PYTHON) has open_clip.
const PY = process.env.PYTHON ?? '/usr/bin/python3';
const PY_BENCH = [
  'import json, sys, time',
  'import open_clip',
  "tok = open_clip.get_tokenizer('ViT-B-32')",
  'prompts = json.load(sys.stdin)',
  't = time.perf_counter(); tok(prompts); cold = time.perf_counter() - t',
  't = time.perf_counter(); tok(prompts); warm = time.perf_counter() - t',
  'print(json.dumps([cold, warm]))',
].join('\n');
const probe = spawnSync(PY, ['-c', 'import open_clip'], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.log(`open_clip: not importable by ${PY}, no reference timing`);
} else {
  const run = spawnSync(PY, ['-c', PY_BENCH], { input: JSON.stringify(prompts), encoding: 'utf8', maxBuffer: 1 << 20 });
  if (run.status === 0) {
    const [pyCold, pyWarm] = JSON.parse(run.stdout.trim().split('\n').pop() as string) as [number, number];
    console.log(`open_clip SimpleTokenizer (Python): cold ${rate(pyCold)}, warm ${rate(pyWarm)}`);
  } else {
    console.log(`open_clip timing failed: ${run.stderr.trim().split('\n').pop()}`);
  }
}
