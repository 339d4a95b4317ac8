/**
 * `convnext-clip backends`: what this machine can run, for bug reports and "why is it slow" — each backend's
 * availability (or why not) and what it would use: the native addon's file and GEMM kernels per precision, the
 * wasm build (cclip-relaxed.wasm or cclip.wasm) this engine would load, the torch backend's devices.
 */
import type { Command } from 'commander';
import { nativeAddonLoad } from '../backends/addon-loader.js';
import { BACKEND_NAMES, getBackend } from '../backends/index.js';
import type { BackendName } from '../backends/types.js';
import { wasmArtifacts } from '../backends/wasm-artifacts.js';
import { relaxedSimdSupported, WASM_MODULE_FILES } from '../backends/wasm-core.js';
import { wasmSimdChoice } from '../backends/wasm.js';

export interface BackendReport {
  name: BackendName;
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
  details: Record<string, unknown>;
}

function details(name: BackendName): Record<string, unknown> {
  if (name === 'native') {
    const load = nativeAddonLoad();
    return load.ok ? { addon: load.file, source: load.source, gemmKernels: (load.addon as { gemmKernels?: unknown }).gemmKernels } : {};
  }
  if (name === 'wasm') {
    const artifacts = wasmArtifacts();
    let build: string;
    try {
      build = WASM_MODULE_FILES[wasmSimdChoice()];
    } catch (err) {
      build = `none: ${(err as Error).message}`;
    }
    return { ...('dir' in artifacts ? { dir: artifacts.dir } : {}), relaxedSimd: relaxedSimdSupported(), build };
  }
  const torch = getBackend('torch');
  return torch ? { cuda: torch.available('cuda').ok } : {};
}

export function backendReports(): BackendReport[] {
  return BACKEND_NAMES.map((name) => {
    const backend = getBackend(name);
    if (!backend) return { name, available: false, reason: 'not registered in this build', details: {} };
    const status = backend.available('cpu');
    return { name, available: status.ok, ...(status.ok ? {} : { reason: status.reason }), details: status.ok ? details(name) : {} };
  });
}

export function registerBackends(program: Command): void {
  program
    .command('backends')
    .description('which backends this machine can run, and the kernels or build each would use')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const reports = backendReports();
      if (opts.json) return void process.stdout.write(`${JSON.stringify({ backends: reports }, null, 2)}\n`);
      for (const r of reports) {
        const facts = Object.entries(r.details).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
        process.stdout.write(`${r.name}: ${r.available ? `available${facts.length ? `; ${facts.join('; ')}` : ''}` : `unavailable (${r.reason})`}\n`);
      }
    });
}
