/**
 * Issue 12's first "must show": with the native addon hidden (CONVNEXT_CLIP_ADDON=none, as after
 * `npm install --ignore-scripts`), `auto` loads the wasm backend, which embeds the fixture photos through
 * Clip.embedImages from files and from bytes with its own preprocessing, within the fixture tolerances.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { wasmBackend } from '../lib/backends/wasm.js';
import { fixture, projectRoot } from './helpers/fixtures.js';
import { floats, maxRelativeDiff, minRowCosine, readExpected } from './native-helpers.js';

const available = wasmBackend.available();
if (!available.ok) test(`no native addon: SKIPPED, the wasm backend is not available (${available.reason})`, { skip: true }, () => {});

test('no native addon: wasm embeds fixture photos from files and bytes within the tolerances', { skip: !available.ok }, async (t) => {
  t.timeoutAfter(240_000);
  const dir = fixture('models', 'xxlarge-tiny');
  const info = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { images: string[] };
  const photos = info.images.filter((f) => !f.startsWith('<')).map((f) => fixture('images', f));
  const expected = await readExpected(path.join(dir, 'expected.safetensors'));
  const all = floats(expected.get('image_embeds'), 'image_embeds');
  const D = all.length / info.images.length;
  const want = all.subarray(0, photos.length * D);

  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'test', 'helpers', 'no-addon-embed.ts'), dir, ...photos],
      { cwd: projectRoot, env: { ...process.env, CONVNEXT_CLIP_ADDON: 'none' }, timeout: 220_000, maxBuffer: 64 << 20 },
      (err, out, errText) => (err ? reject(new Error(`${err.message}\n${errText}`)) : resolve(out)));
  });
  const [status, ...runs] = stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.equal(status.nativeAvailable, false, `the native addon is hidden: ${status.reason}`);
  t.equal(runs.length, 2, 'fp32 and the default precision ran');
  for (const run of runs) {
    t.equal(run.backend, 'wasm', `auto picked wasm (${run.precision})`);
    t.equal(run.dim, D, 'embedding width');
    t.equal(run.scores, 2, 'classify scored both labels');
    const files = Float32Array.from(run.fromFiles as number[]);
    const bytes = Float32Array.from(run.fromBytes as number[]);
    t.ok(files.every((v, i) => v === bytes[i]), `${run.precision}: files and bytes give identical embeddings`);
    if (run.precision === 'fp32') {
      const rel = maxRelativeDiff(files, want);
      t.ok(rel <= 1e-4, `fp32 image_embeds from files: max rel diff ${rel.toExponential(2)} <= 1e-4`);
    } else {
      t.equal(run.precision, 'bf16', 'the wasm default precision is bf16');
      const cos = minRowCosine(files, want, D);
      t.ok(cos >= 0.999, `bf16 image_embeds from files: min cosine ${cos.toFixed(6)} >= 0.999`);
    }
  }
});
