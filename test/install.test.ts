/**
 * Installs as a user would, without a compiler: `npm pack` of the main package and of the linux-x64 platform
 * package, `npm install --ignore-scripts --prefer-offline` of the tarballs into a fresh project outside the
 * repository, on a PATH with node and npm only (no g++, cc or make), then the README quick start from a file in that
 * project (test/install-quickstart.mjs): with the platform package the native backend, without it the wasm backend,
 * both within the fixture tolerances, images from files and bytes included; and the CLI. Also: the packed package
 * declares no install script (npm records none, and prints no install-script warning).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'tape';
import { fixturesDir as fixtures, projectRoot } from './helpers/fixtures.js';

interface Run {
  code: number | null;
  out: string;
}

function run(cmd: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: options.cwd, env: options.env, timeout: options.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: `${stdout}${stderr}` }));
  });
}

/** A bin folder with node, npm and sh only, so nothing can compile. */
function toolsWithoutCompiler(dir: string): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  const npmCli = path.join(path.dirname(path.dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'bin');
  symlinkSync(process.execPath, path.join(bin, 'node'));
  symlinkSync('/bin/sh', path.join(bin, 'sh'));
  for (const tool of ['npm', 'npx']) {
    const cli = existsSync(path.join(npmCli, `${tool}-cli.js`)) ? path.join(npmCli, `${tool}-cli.js`) : undefined;
    if (!cli) throw new Error(`cannot find ${tool}-cli.js under ${npmCli}`);
    writeFileSync(path.join(bin, tool), `#!/bin/sh\nexec "${process.execPath}" "${cli}" "$@"\n`, { mode: 0o755 });
  }
  return bin;
}

function quickstartChecks(out: string): Array<Record<string, unknown>> {
  return out.split('\n').filter((l) => l.startsWith('QUICKSTART ')).map((l) => JSON.parse(l.slice('QUICKSTART '.length)) as Record<string, unknown>);
}

test('install: packed packages into a fresh project without a compiler, quick start on native and on wasm', async (t) => {
  t.timeoutAfter(420_000);
  const work = mkdtempSync(path.join(os.tmpdir(), 'cclip-install-'));
  try {
    if (!existsSync(path.join(projectRoot, 'dist', 'index.js')) || !existsSync(path.join(projectRoot, 'build', 'Release', 'convnext_clip.node'))) {
      t.fail('needs `npm run build:ts` and `npm run build:native` first (scripts/setup.sh runs both)');
      return;
    }
    const packs = path.join(work, 'packs');
    mkdirSync(packs);
    const npm = (args: string[], cwd: string, env?: NodeJS.ProcessEnv) => run('npm', args, { cwd, env, timeoutMs: 240_000 });

    const prebuilt = await run('bash', ['scripts/build-prebuilt.sh', 'x64', '--reuse'], { cwd: projectRoot, timeoutMs: 240_000 });
    t.equal(prebuilt.code, 0, `build-prebuilt.sh x64 ${prebuilt.code === 0 ? '' : prebuilt.out.slice(-800)}`);
    const mainPack = await npm(['pack', '--silent', '--pack-destination', packs], projectRoot);
    const platformPack = await npm(['pack', '--silent', '--pack-destination', packs], path.join(projectRoot, 'npm', 'linux-x64-gnu'));
    t.equal(mainPack.code, 0, 'npm pack of the main package');
    t.equal(platformPack.code, 0, 'npm pack of @convnext-clip/linux-x64-gnu');
    const mainTgz = path.join(packs, mainPack.out.trim().split('\n').pop()!);
    const platformTgz = path.join(packs, platformPack.out.trim().split('\n').pop()!);

    const bin = toolsWithoutCompiler(work);
    // nothing of the repository's environment leaks in (CONVNEXT_CLIP_ADDON, npm_config_nodedir...), except npm's cache
    const env: NodeJS.ProcessEnv = { HOME: process.env.HOME ?? os.homedir(), PATH: bin };
    if (process.env.npm_config_cache) env.npm_config_cache = process.env.npm_config_cache;
    const compiler = await run('sh', ['-c', 'command -v g++ || command -v cc || command -v make || echo none'], { cwd: work, env, timeoutMs: 10_000 });
    t.equal(compiler.out.trim(), 'none', 'no g++, cc or make on the PATH of the install');

    const cases = [
      { name: 'with the platform package', tarballs: [mainTgz, platformTgz], backend: 'native', precisions: 'default,bf16' },
      { name: 'without the platform package', tarballs: [mainTgz], backend: 'wasm', precisions: 'default,fp32' },
    ];
    for (const c of cases) {
      const app = path.join(work, c.backend);
      mkdirSync(app);
      writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: `app-${c.backend}`, version: '1.0.0', private: true, type: 'module' }));
      const install = await npm(['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', ...c.tarballs], app, env);
      t.equal(install.code, 0, `${c.name}: npm install ${install.code === 0 ? '' : install.out.slice(-1500)}`);
      const warnings = install.out.split('\n').filter((l) => /install.?script|lifecycle|gyp|allow-scripts/i.test(l));
      t.deepEqual(warnings, [], `${c.name}: npm prints no install-script warning`);
      const lock = JSON.parse(readFileSync(path.join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };
      t.notOk(lock.packages['node_modules/convnext-clip']?.hasInstallScript, `${c.name}: npm records no install script for convnext-clip`);
      t.equal(existsSync(path.join(app, 'node_modules', '@convnext-clip', 'linux-x64-gnu', 'convnext_clip.node')), c.backend === 'native',
        `${c.name}: the platform package is ${c.backend === 'native' ? '' : 'not '}installed`);

      copyFileSync(path.join(projectRoot, 'test', 'install-quickstart.mjs'), path.join(app, 'quickstart.mjs'));
      const quick = await run('node', ['quickstart.mjs'], {
        cwd: app,
        env: { ...env, QUICKSTART_FIXTURES: fixtures, QUICKSTART_PRECISIONS: c.precisions },
        timeoutMs: 240_000,
      });
      const checks = quickstartChecks(quick.out);
      t.equal(quick.code, 0, `${c.name}: the quick start ran ${quick.code === 0 ? '' : quick.out.slice(-1500)}`);
      t.ok(checks.length >= 10, `${c.name}: ${checks.length} quick-start checks`);
      for (const check of checks) {
        t.equal(check.backend, c.backend, `${c.name}: ${check.model} ${check.precision} took the ${c.backend} backend`);
        t.ok(check.ok, `${c.name}: ${JSON.stringify(check)}`);
      }
      const selection = checks.find((ch) => ch.check === 'backend selection')?.selection as
        | { detail?: string; skipped: Array<{ backend: string; reason: string }> }
        | undefined;
      if (c.backend === 'native') {
        t.match(selection?.detail ?? '', /@convnext-clip\/linux-x64-gnu\/convnext_clip\.node \(platform-package\)/, `native: the addon came from the platform package (${selection?.detail})`);
      } else {
        const native = selection?.skipped.find((s) => s.backend === 'native');
        t.match(native?.reason ?? '', /platform-package \(@convnext-clip\/linux-x64-gnu\): not installed[\s\S]*--include=optional/,
          'wasm: auto says native was not taken because the platform package is not installed, and what to do');
      }
      if (c.backend === 'wasm') {
        t.ok(checks.some((ch) => ch.asked === 'default' && ch.precision === 'bf16'), 'wasm: bf16 by default');
      }

      const cli = await run(path.join(app, 'node_modules', '.bin', 'convnext-clip'),
        ['embed', '--model', path.join(fixtures, 'models', 'xxlarge-tiny'), '--image', path.join(fixtures, 'images', 'chelsea.png'), '--text', 'a cat', '--json'],
        { cwd: app, env, timeoutMs: 120_000 });
      let parsed: { image_embeds?: number[][]; text_embeds?: number[][] } = {};
      try {
        parsed = JSON.parse(cli.out) as typeof parsed;
      } catch {
        // reported below
      }
      t.ok(cli.code === 0 && parsed.image_embeds?.length === 1 && parsed.text_embeds?.length === 1,
        `${c.name}: the CLI embeds an image and a text ${cli.code === 0 ? '' : cli.out.slice(-800)}`);
    }

    // A plain `npm install` (scripts allowed): npm 11 lists every package whose install scripts it did not run.
    const plain = path.join(work, 'plain');
    mkdirSync(plain);
    writeFileSync(path.join(plain, 'package.json'), JSON.stringify({ name: 'app-plain', version: '1.0.0', private: true }));
    const install = await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', mainTgz], plain, env);
    t.equal(install.code, 0, `npm install without --ignore-scripts and without a compiler ${install.code === 0 ? '' : install.out.slice(-1500)}`);
    const scriptLines = install.out.split('\n').filter((l) => /install.?script|gyp/i.test(l));
    // (bullmq, whose msgpackr-extract has an install script, is an optional peer: installed only by queue users)
    t.deepEqual(scriptLines, [], 'npm install of the packed package prints no install-script warning');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
