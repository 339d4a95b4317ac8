/**
 * The linux-arm64 addon (npm/linux-arm64-gnu/convnext_clip.node, cross-compiled by scripts/build-prebuilt.sh arm64
 * with the NEON kernels) run under qemu-user with the registry's arm64 Node (scripts/setup-arm64.sh): it is an
 * AArch64 ELF, the core op tests and the NEON GEMM tests built for arm64 pass, and the README quick start on the native backend reproduces
 * every fixture model (xxlarge-tiny, large-d-tiny, xxlarge-deep256) in fp32 and bf16, images from files and bytes and
 * zero-shot included. Speed means nothing under emulation: nothing here is timed.
 * Skipped with a message when the arm64 tools are not set up, unless CONVNEXT_CLIP_REQUIRE_ARM64=1 (CI sets it).
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { fixturesDir, projectRoot } from './helpers/fixtures.js';

const QEMU = 'qemu-aarch64-static';
const SYSROOT = '/usr/aarch64-linux-gnu';
const CXX = 'aarch64-linux-gnu-g++';
const envDir = path.join(projectRoot, 'build-arm64', 'env');
const arm64Node = path.join(envDir, 'node', 'bin', 'node');
const addon = path.join(projectRoot, 'npm', 'linux-arm64-gnu', 'convnext_clip.node');
const objects = path.join(projectRoot, 'build-arm64', 'obj');
const required = process.env.CONVNEXT_CLIP_REQUIRE_ARM64 === '1';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: projectRoot, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: `${stdout}${stderr}` }));
  });
}

function missingTools(): string[] {
  const onPath = (tool: string) => (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(path.join(dir, tool)));
  const missing: string[] = [];
  if (!onPath(QEMU)) missing.push(QEMU);
  if (!onPath(CXX)) missing.push(CXX);
  if (!existsSync(arm64Node)) missing.push(arm64Node);
  if (!existsSync(addon)) missing.push(addon);
  if (!existsSync(path.join(projectRoot, 'dist', 'index.js'))) missing.push('dist/ (npm run build:ts)');
  return missing;
}

/** ELF e_machine of a file (183 = AArch64). */
function elfMachine(file: string): number {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  return header.subarray(0, 4).toString('latin1') === '\x7fELF' ? header.readUInt16LE(18) : -1;
}

const missing = missingTools();
if (missing.length && !required) {
  test(`arm64: SKIPPED (run scripts/setup-arm64.sh; missing ${missing.join(', ')})`, { skip: true }, () => {});
} else {
  test('arm64: the addon is an AArch64 shared object and the core op tests pass under qemu', async (t) => {
    t.timeoutAfter(240_000);
    t.deepEqual(missing, [], 'the arm64 tools are set up (scripts/setup-arm64.sh)');
    if (missing.length) return;
    t.equal(elfMachine(addon), 183, 'npm/linux-arm64-gnu/convnext_clip.node: ELF machine AArch64');
    // ops_test.cc against the arm64 objects of native/core that the addon was linked from
    const bin = path.join(projectRoot, 'build-arm64', 'ops_test');
    const source = path.join(projectRoot, 'native', 'core', 'tests', 'ops_test.cc');
    const core = readdirSync(objects).filter((f) => f.startsWith('native_core_') && f.endsWith('.o')).map((f) => path.join(objects, f));
    const stale = !existsSync(bin) || [source, ...core].some((f) => statSync(f).mtimeMs > statSync(bin).mtimeMs);
    if (stale) {
      const build = await run(CXX, ['-O2', '-std=c++17', '-pthread', '-I', 'native/core', source, ...core, '-o', bin], process.env, 180_000);
      t.equal(build.code, 0, `ops_test built for arm64 ${build.code === 0 ? '' : build.out.slice(-1500)}`);
    }
    const ops = await run(QEMU, ['-L', SYSROOT, bin], process.env, 120_000);
    const summary = /(\d+) passed, (\d+) failed/.exec(ops.out);
    t.ok(ops.code === 0 && summary && Number(summary[1]) >= 150 && summary[2] === '0', `core op tests on arm64: ${summary?.[0] ?? ops.out.slice(-800)}`);
  });

  test('arm64: the NEON GEMM kernels against a double reference (every shape, precision, epilogue) under qemu', async (t) => {
    t.timeoutAfter(240_000);
    if (missing.length) return t.fail(`missing ${missing.join(', ')}`);
    const bin = path.join(projectRoot, 'build-arm64', 'gemm_test');
    const source = path.join(projectRoot, 'native', 'core', 'tests', 'gemm_test.cc');
    const gemm = ['gemm', 'gemm_pack', 'gemm_neon', 'gemm_x86', 'threadpool', 'cpu_features'].map((name) => path.join(objects, `native_core_${name}.o`));
    if (!existsSync(bin) || [source, ...gemm].some((f) => statSync(f).mtimeMs > statSync(bin).mtimeMs)) {
      // The harness at -O1: the kernels under test are the addon's objects; at -O3 this compile alone took 244 s on a
      // 2-core Zen 3 (11 s at -O1, and the qemu run the same 79 s).
      const build = await run(CXX, ['-O1', '-std=c++17', '-pthread', '-I', 'native/core', source, ...gemm, '-o', bin], process.env, 180_000);
      t.equal(build.code, 0, `gemm_test built for arm64 ${build.code === 0 ? '' : build.out.slice(-1500)}`);
    }
    const result = await run(QEMU, ['-L', SYSROOT, bin], { ...process.env, GEMM_TEST_ONLY: 'neon' }, 200_000);
    const summary = /(\d+) passed, (\d+) failed/.exec(result.out);
    t.match(result.out, /kernel variants tested: neon \(default: neon; for bf16 weights: neon\)/, 'the NEON variant is built and is the default on aarch64, for fp32 and bf16 weights');
    t.ok(result.code === 0 && summary && Number(summary[1]) >= 5000 && summary[2] === '0', `NEON GEMM tests: ${summary?.[0] ?? result.out.slice(-800)}`);
  });

  test('arm64: the quick start on the native backend reproduces every fixture model (xxlarge-tiny, large-d-tiny, xxlarge-deep256; fp32, bf16) under qemu', async (t) => {
    t.timeoutAfter(240_000);
    if (missing.length) return t.fail(`missing ${missing.join(', ')}`);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_PATH: path.join(envDir, 'node_modules'), // sharp's arm64 binaries
      CONVNEXT_CLIP_ADDON: addon,
      QUICKSTART_MODULE: path.join(projectRoot, 'dist', 'index.js'),
      QUICKSTART_FIXTURES: fixturesDir,
      QUICKSTART_BACKEND: 'native',
      QUICKSTART_PRECISIONS: 'fp32,bf16',
      QUICKSTART_MODELS: 'xxlarge-tiny,large-d-tiny,xxlarge-deep256', // deep256 (full depth, 256 px) adds ~15 s under qemu
    };
    const quick = await run(QEMU, ['-L', SYSROOT, arm64Node, path.join(projectRoot, 'test', 'install-quickstart.mjs')], env, 230_000);
    const checks = quick.out.split('\n').filter((l) => l.startsWith('QUICKSTART ')).map((l) => JSON.parse(l.slice(11)) as Record<string, unknown>);
    t.equal(quick.code, 0, `the quick start ran on arm64 ${quick.code === 0 ? '' : quick.out.slice(-1500)}`);
    t.equal(checks.length, 14, 'embeddings and backend selection of the three models in both precisions, zero-shot of xxlarge-tiny in both');
    for (const check of checks) t.ok(check.ok && check.backend === 'native', `arm64: ${JSON.stringify(check)}`);
  });
}
