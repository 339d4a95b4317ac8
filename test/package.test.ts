/** The built package as users get it: ESM import, CommonJS require and the bin, from dist/ (npm run build:ts). */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'tape';
import { fixture, projectRoot } from './helpers/fixtures.js';

const run = promisify(execFile);
const dist = path.join(projectRoot, 'dist');

const script = (load: string) => `
${load}
const clip = await Clip.load(${JSON.stringify(fixture('models', 'xxlarge-tiny'))}, { backend: 'native', threads: 1 });
const e = await clip.embedTexts(['a photo of a cat']);
clip.dispose();
let err; try { await Clip.load('/nonexistent/dir'); } catch (x) { err = x; }
console.log(JSON.stringify({ rows: e.rows, dim: e.dim, norm: Math.hypot(...e.row(0)), code: err.code, typed: err instanceof ClipError }));
`;

test('dist: ESM import and CommonJS require both work', async (t) => {
  t.ok(existsSync(path.join(dist, 'index.js')) && existsSync(path.join(dist, 'index.cjs')), 'dist is built (npm run build:ts)');
  const esm = script(`import { Clip, ClipError } from ${JSON.stringify(path.join(dist, 'index.js'))};`);
  const cjs = `(async () => { ${script(`const { Clip, ClipError } = require(${JSON.stringify(path.join(dist, 'index.cjs'))});`)} })();`;
  for (const [kind, args] of [['esm', ['--input-type=module', '-e', esm]], ['cjs', ['--input-type=commonjs', '-e', cjs]]] as const) {
    const { stdout } = await run(process.execPath, [...args], { cwd: projectRoot });
    const out = JSON.parse(stdout);
    t.equal(out.rows, 1, `${kind}: one row`);
    t.equal(out.dim, 32, `${kind}: embed dim`);
    t.ok(Math.abs(out.norm - 1) < 1e-5, `${kind}: normalized`);
    t.equal(out.code, 'E_NOT_FOUND', `${kind}: typed error code`);
    t.ok(out.typed, `${kind}: instanceof ClipError`);
  }
  t.ok(existsSync(path.join(dist, 'index.d.ts')) && existsSync(path.join(dist, 'index.d.cts')), 'type declarations for both');
});

test('dist: the bin runs', async (t) => {
  const { stdout } = await run(process.execPath, [path.join(dist, 'bin.js'), 'tokenize', '--vocab', fixture('vocab', 'hf'), '--json', 'hi']);
  t.equal(JSON.parse(stdout).ids[0][1], 1883);
});
