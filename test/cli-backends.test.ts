/** `convnext-clip backends`: one report per backend, with what each would use here, as JSON and as lines. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'tape';
import { nativeAddonLoad } from '../lib/backends/addon-loader.js';
import { BACKEND_NAMES } from '../lib/backends/index.js';
import { relaxedSimdNodeFlags } from '../lib/backends/wasm.js';
import { relaxedSimdSupported } from '../lib/backends/wasm-core.js';
import type { BackendReport } from '../lib/commands/backends.js';
import { projectRoot } from './helpers/fixtures.js';

const run = promisify(execFile);

async function backends(env: Record<string, string> = {}, nodeFlags: string[] = [], json = true): Promise<string> {
  const args = [...nodeFlags, '--import', 'tsx', path.join(projectRoot, 'lib', 'bin.ts'), 'backends', ...(json ? ['--json'] : [])];
  const { stdout } = await run(process.execPath, args, { cwd: projectRoot, env: { ...process.env, ...env } });
  return stdout;
}

const parse = (stdout: string) => (JSON.parse(stdout) as { backends: BackendReport[] }).backends;

test('cli backends: every backend, the native kernels and the wasm build this engine loads', async (t) => {
  const reports = parse(await backends({ CCLIP_WASM_SIMD: '' }));
  t.deepEqual(reports.map((r) => r.name), [...BACKEND_NAMES], 'one report per backend, in order');
  for (const r of reports) t.ok(r.available || (typeof r.reason === 'string' && r.reason.length > 0), `${r.name}: ${r.available ? 'available' : r.reason}`);
  const native = reports.find((r) => r.name === 'native')!;
  const load = nativeAddonLoad();
  t.equal(native.available, load.ok, 'native: available exactly when the addon loads');
  if (load.ok) {
    t.deepEqual(native.details.gemmKernels, (load.addon as { gemmKernels: unknown }).gemmKernels, `native: GEMM kernels ${JSON.stringify(native.details.gemmKernels)}`);
    t.equal(native.details.addon, load.file, 'native: the addon file');
  }
  const wasm = reports.find((r) => r.name === 'wasm')!;
  if (wasm.available) {
    t.equal(wasm.details.relaxedSimd, relaxedSimdSupported(), 'wasm: relaxed SIMD as this engine reports it');
    t.equal(wasm.details.build, relaxedSimdSupported() ? 'cclip-relaxed.wasm' : 'cclip.wasm', `wasm: ${wasm.details.build}`);
    if (!relaxedSimdSupported()) {
      const on = parse(await backends({ CCLIP_WASM_SIMD: '' }, relaxedSimdNodeFlags())).find((r) => r.name === 'wasm')!;
      t.deepEqual([on.details.relaxedSimd, on.details.build], [true, 'cclip-relaxed.wasm'], 'wasm with relaxed SIMD on: cclip-relaxed.wasm');
    }
    const bad = parse(await backends({ CCLIP_WASM_SIMD: 'sse' })).find((r) => r.name === 'wasm')!;
    t.match(String(bad.details.build), /^none: CCLIP_WASM_SIMD must be auto, relaxed or simd128/, 'a bad CCLIP_WASM_SIMD is reported, not thrown');
  }
  const lines = (await backends({}, [], false)).trim().split('\n');
  t.deepEqual(lines.map((l) => l.split(':')[0]), [...BACKEND_NAMES], 'without --json: a line per backend');
});
