/**
 * Every GEMM variant this CPU runs, end to end: the native addon under each CCLIP_GEMM_ISA ceiling (generic,
 * avx2, avx512, none, and avx512bf16 where that is not the default; none picks amx on AMX CPUs) computes every fixture model in fp32 and bf16
 * within the fixture tolerances (fp32 max relative difference 1e-4, bf16 cosine 0.999), and picks the variant the
 * ceiling and the CPU allow.
 * (parity.test.ts covers the default variant in depth; this covers the others, e.g. AVX2 on an AVX-512 machine.)
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'tape';
import { nativeAddonLoad } from '../lib/backends/addon-loader.js';
import { FIXTURE_MODELS, projectRoot } from './helpers/fixtures.js';

const run = promisify(execFile);
const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '').split(/\s+/));
const x86 = process.arch === 'x64';
// bf16 weights: the AMX kernel where the CPU has AMX-BF16 (Linux >= 5.16 grants the tile state); else the bf16 dot
// kernel where it outpaces fp32 FMAs (AMD); elsewhere the dot kernel only under CCLIP_GEMM_ISA=avx512bf16.
const amd = /^vendor_id\s*:\s*AuthenticAMD$/m.test(cpuinfo);
const [major, minor] = os.release().split('.').map(Number);
const amx = x86 && flags.has('amx_bf16') && flags.has('amx_tile') && (major > 5 || (major === 5 && minor >= 16));

// ceiling -> the variants expected for fp32 and bf16 weights on this CPU
const ceilings: [string, { fp32: string; bf16: string }][] = [['generic', { fp32: 'generic', bf16: 'generic' }]];
if (x86 && flags.has('avx2') && flags.has('fma')) ceilings.push(['avx2', { fp32: 'avx2', bf16: 'avx2' }]);
if (x86 && flags.has('avx512f')) ceilings.push(['avx512', { fp32: 'avx512', bf16: 'avx512' }]);
if (x86 && flags.has('avx512_bf16')) {
  const bf16Default = amx ? 'amx' : amd ? 'avx512bf16' : 'avx512';
  ceilings.push(['', { fp32: 'avx512', bf16: bf16Default }]);
  if (bf16Default !== 'avx512bf16') ceilings.push(['avx512bf16', { fp32: 'avx512', bf16: 'avx512bf16' }]);
}

test('native GEMM variants: each CCLIP_GEMM_ISA ceiling this CPU runs, every fixture model, fp32 and bf16', { skip: !nativeAddonLoad().ok }, async (t) => {
  t.timeoutAfter(300_000);
  for (const [ceiling, want] of ceilings) {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'test', 'native-isa-child.ts')], {
      cwd: projectRoot,
      env: { ...process.env, CCLIP_GEMM_ISA: ceiling },
      timeout: 240_000,
    });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, { maxRel: number; minCos: number }> & {
      kernels: { fp32: string; bf16: string };
    };
    const label = `CCLIP_GEMM_ISA=${ceiling || '(unset)'}`;
    t.deepEqual(result.kernels, want, `${label}: fp32 ${want.fp32}, bf16 ${want.bf16}`);
    for (const name of FIXTURE_MODELS) {
      const fp32 = result[`${name} fp32`], bf16 = result[`${name} bf16`];
      t.ok(fp32.maxRel <= 1e-4, `${label} ${name} fp32: max rel diff ${fp32.maxRel.toExponential(2)} <= 1e-4`);
      t.ok(bf16.minCos >= 0.999, `${label} ${name} bf16: min cosine ${bf16.minCos.toFixed(6)} >= 0.999`);
    }
  }
});
