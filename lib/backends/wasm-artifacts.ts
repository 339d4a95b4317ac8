/** Where the committed wasm build lives (wasm/prebuilt) and whether it matches the sources it was built from. */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { findPackageRoot } from './native.js';

export const WASM_FILES = ['cclip.js', 'cclip.wasm', 'cclip-relaxed.wasm', 'cclip.worker.js', 'package.json', 'BUILD_INFO.json'] as const;

export interface WasmBuildInfo {
  sourcesHash: string;
  emscripten: string;
  cxxflags: string;
  /** Added for cclip-relaxed.wasm. */
  relaxedCxxflags: string;
  /** f32x4.relaxed_madd instructions in cclip-relaxed.wasm (wasm/src/relaxed-opcodes.mjs). */
  relaxedMadds: number;
  ldflags: string;
}

/** wasm/prebuilt of this package ($CCLIP_WASM_DIR overrides the directory), or why it is unusable. */
export function wasmArtifacts(): { dir: string; root: string } | { error: string } {
  const root = findPackageRoot();
  if (!root) return { error: 'cannot find the convnext-clip package root' };
  const dir = process.env.CCLIP_WASM_DIR ? path.resolve(process.env.CCLIP_WASM_DIR) : path.join(root, 'wasm', 'prebuilt');
  const missing = WASM_FILES.filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length) return { error: `the wasm build is missing ${missing.join(', ')} in ${dir} (run \`npm run build:wasm\`; it needs emcc)` };
  return { dir, root };
}

export function readBuildInfo(dir: string): WasmBuildInfo {
  return JSON.parse(readFileSync(path.join(dir, 'BUILD_INFO.json'), 'utf8')) as WasmBuildInfo;
}

/** The files wasm/build.sh depends on, as wasm/sources.sh lists them (C-locale order). */
export function wasmSources(root: string): string[] {
  const list = (dir: string, keep: (f: string) => boolean) =>
    readdirSync(path.join(root, dir), { withFileTypes: true }).filter((d) => d.isFile() && keep(d.name)).map((d) => `${dir}/${d.name}`);
  const files = [
    ...list('native/core', (f) => (f.endsWith('.cc') || f.endsWith('.h')) && f !== 'file_reader.cc'),
    ...list('wasm/src', () => true),
    'wasm/build.sh',
    'wasm/sources.sh',
  ];
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Same hash as cclip_wasm_sources_hash in wasm/sources.sh. */
export function wasmSourcesHash(root: string): string {
  const outer = createHash('sha256');
  for (const f of wasmSources(root)) {
    const inner = createHash('sha256').update(readFileSync(path.join(root, f))).digest('hex');
    outer.update(`${f}\0${inner}\n`);
  }
  return outer.digest('hex');
}
