/**
 * The addon loader's order (lib/backends/addon-loader.ts): $CONVNEXT_CLIP_ADDON -> build/Release -> the platform
 * package, each attempt named in one message with what to do; and the Electron rule for the N-API layers (results
 * are copied into JS-owned buffers: no external ArrayBuffer is handed to JS).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'tape';
import { loadNativeAddon, PREBUILT_PLATFORMS, platformId, platformPackage } from '../lib/backends/addon-loader.js';
import { fixture, projectRoot } from './helpers/fixtures.js';

/** A fake package tree: <root>/package.json (convnext-clip), optional build/Release and platform package files. */
function fakeTree(parts: { local?: boolean; platform?: boolean }): { root: string; cleanup(): void } {
  const base = mkdtempSync(path.join(os.tmpdir(), 'cclip-loader-'));
  const root = path.join(base, 'node_modules', 'convnext-clip');
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'convnext-clip', version: '0.1.0' }));
  if (parts.local) {
    mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
    writeFileSync(path.join(root, 'build', 'Release', 'convnext_clip.node'), 'local');
  }
  if (parts.platform) {
    const dir = path.join(base, 'node_modules', ...platformPackage().split('/'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: platformPackage(), version: '0.1.0', main: 'convnext_clip.node' }));
    writeFileSync(path.join(dir, 'convnext_clip.node'), 'platform');
  }
  return { root, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

/** Reads the fake addon's text instead of dlopen-ing it; 'broken' files throw as a wrong-architecture file would. */
const fakeRequire = (file: string) => {
  const text = readFileSync(file, 'utf8');
  if (text === 'broken') throw new Error(`${file}: wrong ELF class: ELFCLASS32`);
  return { loadModel: () => text };
};
const valid = (addon: unknown) => (typeof (addon as { loadModel?: unknown }).loadModel === 'function' ? undefined : 'no loadModel');

test('addon loader: local build first, then the platform package, each attempt recorded', (t) => {
  const both = fakeTree({ local: true, platform: true });
  const onlyPlatform = fakeTree({ platform: true });
  try {
    const first = loadNativeAddon(valid, { override: undefined, root: both.root, require: fakeRequire });
    t.ok(first.ok && first.source === 'local-build', 'build/Release wins over the platform package');
    const second = loadNativeAddon(valid, { override: undefined, root: onlyPlatform.root, require: fakeRequire });
    t.ok(second.ok && second.source === 'platform-package', `the platform package ${platformPackage()} when there is no local build`);
    t.deepEqual(second.attempts.map((a) => [a.source, a.error ?? 'loaded']), [['local-build', 'not found'], ['platform-package', 'loaded']], 'both attempts listed');
    // a local build that fails to load (another architecture, a stale ABI) falls through to the platform package
    writeFileSync(path.join(both.root, 'build', 'Release', 'convnext_clip.node'), 'broken');
    const third = loadNativeAddon(valid, { override: undefined, root: both.root, require: fakeRequire });
    t.ok(third.ok && third.source === 'platform-package', 'a broken local build falls through to the platform package');
    t.match(third.attempts[0].error ?? '', /wrong ELF class/, 'and says why the local build was passed over');
  } finally {
    both.cleanup();
    onlyPlatform.cleanup();
  }
  t.end();
});

test('addon loader: the override is final; nothing found is one message with each attempt and what to do', (t) => {
  const none = fakeTree({});
  const both = fakeTree({ local: true, platform: true });
  try {
    const hidden = loadNativeAddon(valid, { override: 'none', root: both.root, require: fakeRequire });
    t.ok(!hidden.ok && /hidden/.test(hidden.message), 'CONVNEXT_CLIP_ADDON=none hides every addon');
    const wrong = loadNativeAddon(valid, { override: path.join(none.root, 'nope.node'), root: both.root, require: fakeRequire });
    t.ok(!wrong.ok, 'a missing override file does not fall back to the others');
    t.match(wrong.ok ? '' : wrong.message, /env \(.*nope\.node\): not found/, 'and names the file');
    const nothing = loadNativeAddon(valid, { override: undefined, root: none.root, require: fakeRequire });
    t.notOk(nothing.ok, 'nothing installed: not loaded');
    const message = nothing.ok ? '' : nothing.message;
    t.match(message, new RegExp(`could not be loaded on ${platformId()}`), 'names the platform');
    t.match(message, /local-build \(.*build\/Release\/convnext_clip\.node\): not found/, 'lists the local build');
    t.match(message, new RegExp(`platform-package \\(${platformPackage()}\\): not installed`), 'lists the platform package');
    t.match(message, /npm run build:native/, 'says how to build from source');
    t.match(message, /backend: 'wasm'/, 'and that the wasm backend runs everywhere');
    if (['linux-x64-gnu', 'linux-arm64-gnu'].includes(platformId())) {
      t.match(message, /--include=optional/, 'a prebuilt platform: install the optional dependencies');
      t.match(message, /--os=linux --cpu=\w+ --libc=glibc/, 'or install for the target platform explicitly');
    }
    const invalid = fakeTree({ local: true });
    try {
      const notOurs = loadNativeAddon(valid, { override: undefined, root: invalid.root, require: () => ({}) });
      t.ok(!notOurs.ok && /no loadModel/.test(notOurs.message), 'a file without our exports counts as a failed attempt');
    } finally {
      invalid.cleanup();
    }
  } finally {
    none.cleanup();
    both.cleanup();
  }
  t.end();
});

test("addon loader: backend 'auto' without the addon says why native was not taken, and takes another backend", async (t) => {
  t.timeoutAfter(120_000);
  // in a child process: the addon load is cached per process, so hiding it here would hide it from later tests
  const script = `
    import { backendSelection, loadWithBackend } from './lib/backends/index.ts';
    import { describeModel } from './lib/model-dir.ts';
    const { arch, manifest } = await describeModel(process.argv[1]);
    const model = await loadWithBackend('auto', arch, manifest, { device: 'cpu', threads: 1 });
    const selection = backendSelection(model);
    model.dispose();
    let native;
    try { await loadWithBackend('native', arch, manifest, { device: 'cpu', threads: 1 }); native = 'loaded'; }
    catch (err) { native = err.code + ': ' + err.message; }
    console.log(JSON.stringify({ backend: model.backend, selection, native }));`;
  const child = await new Promise<{ code: number | null; out: string }>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, fixture('models', 'xxlarge-tiny')],
      { cwd: projectRoot, env: { ...process.env, CONVNEXT_CLIP_ADDON: 'none' }, timeout: 100_000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: `${stdout}${stderr}` }));
  });
  t.equal(child.code, 0, `child ran ${child.code === 0 ? '' : child.out.slice(-1200)}`);
  const result = JSON.parse(child.out.trim().split('\n').pop() ?? '{}') as {
    backend?: string; native?: string; selection?: { backend: string; skipped: Array<{ backend: string; reason: string }> };
  };
  t.ok(result.backend && result.backend !== 'native', `auto took ${result.backend}`);
  t.equal(result.selection?.backend, result.backend, 'the selection names the backend taken');
  t.match(result.selection?.skipped.find((s) => s.backend === 'native')?.reason ?? '', /hidden/, 'and why native was not');
  t.match(result.native ?? '', /^E_BACKEND_UNAVAILABLE: .*hidden/, `asking for native: ${result.native}`);
});

test('Electron: the N-API layers copy results into JS-owned buffers (no external ArrayBuffer)', (t) => {
  const dirs = ['native/napi', 'native/node', 'native/torch/addon'].map((d) => path.join(projectRoot, d));
  let files = 0;
  for (const dir of dirs) {
    for (const name of readdirSync(dir).filter((f) => /\.(cc|h)$/.test(f))) {
      const source = readFileSync(path.join(dir, name), 'utf8');
      files++;
      const external = source.match(/napi_create_external_(array)?buffer|ArrayBuffer::New\(\s*\w+\s*,\s*[^,()]+,|Buffer<[^>]*>::New\(\s*\w+\s*,\s*[^,()]+,\s*[^,()]+/g);
      t.deepEqual(external ?? [], [], `${path.relative(projectRoot, path.join(dir, name))}: no external buffers`);
    }
  }
  t.ok(files >= 8, `${files} N-API sources checked`);
  t.end();
});

test('platform packages: one per prebuilt platform, at the main version, with os/cpu/libc, listed as optional dependencies', (t) => {
  const main = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as {
    version: string; scripts: Record<string, string>; gypfile?: boolean; optionalDependencies: Record<string, string>;
  };
  t.equal(main.gypfile, false, 'gypfile: false (npm would otherwise run node-gyp for binding.gyp at install)');
  for (const hook of ['preinstall', 'install', 'postinstall']) t.notOk(main.scripts[hook], `no ${hook} script`);
  for (const id of PREBUILT_PLATFORMS) {
    const manifest = JSON.parse(readFileSync(path.join(projectRoot, 'npm', id, 'package.json'), 'utf8')) as {
      name: string; version: string; os: string[]; cpu: string[]; libc: string[]; files: string[];
    };
    const [os, cpu] = id.split('-');
    t.equal(manifest.name, `@convnext-clip/${id}`, `${id}: name`);
    t.equal(manifest.version, main.version, `${id}: the main package's version`);
    t.deepEqual([manifest.os, manifest.cpu, manifest.libc], [[os], [cpu], ['glibc']], `${id}: os/cpu/libc`);
    t.deepEqual(manifest.files, ['convnext_clip.node'], `${id}: ships the addon only`);
    t.equal(main.optionalDependencies[manifest.name], main.version, `${id}: an optional dependency of the main package at the same version`);
  }
  t.end();
});
