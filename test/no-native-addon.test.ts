/**
 * Issue 12's first "must show": with the native addon hidden (CONVNEXT_CLIP_ADDON=none, as after
 * `npm install --ignore-scripts`; the torch addon hidden too), `auto` loads the wasm backend, which embeds the fixture photos through
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
/** As installed with --ignore-scripts: neither the native addon nor the (optional) torch addon. */
const NO_ADDONS = { CONVNEXT_CLIP_ADDON: 'none', CONVNEXT_CLIP_TORCH_ADDON: 'none' };
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
      { cwd: projectRoot, env: { ...process.env, ...NO_ADDONS }, timeout: 220_000, maxBuffer: 64 << 20 },
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

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'lib', 'bin.ts'), ...args],
      { cwd: projectRoot, env: { ...process.env, ...NO_ADDONS }, timeout: 120_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

test('no native addon: `convnext-clip preprocess` and `embed` still work (the wasm module preprocesses)', { skip: !available.ok }, async (t) => {
  t.timeoutAfter(240_000);
  const dir = fixture('models', 'xxlarge-tiny');
  const photo = fixture('images', 'astronaut.png');
  const pre = await cli(['preprocess', '--model', dir, '--json', photo]);
  t.equal(pre.code, 0, `preprocess exits 0 ${pre.stderr}`);
  const { shape, data } = JSON.parse(pre.stdout) as { shape: number[]; data: number[] };
  const reference = floats((await readExpected(fixture('preprocess_expected.safetensors'))).get('astronaut.png@64'), 'astronaut.png@64');
  t.deepEqual(shape, [3, 64, 64], 'shape');
  let off = 0;
  for (let i = 0; i < reference.length; i++) if (Math.abs(data[i] - reference[i]) * 0.2613 > 1 / 255 + 1e-6) off++;
  t.ok(data.length === reference.length && off <= reference.length * 1e-3, `preprocess: ${off} of ${reference.length} values off by more than one level`);

  const embed = await cli(['embed', '--model', dir, '--precision', 'fp32', '--threads', '1', '--image', photo, '--text', 'a photo of a cat.']);
  t.equal(embed.code, 0, `embed exits 0 ${embed.stderr}`);
  const out = JSON.parse(embed.stdout) as { image_embeds: number[][]; text_embeds: number[][] };
  const expected = await readExpected(path.join(dir, 'expected.safetensors'));
  const D = out.image_embeds[0].length;
  const rel = maxRelativeDiff(Float32Array.from(out.image_embeds[0]), floats(expected.get('image_embeds'), 'image_embeds').subarray(0, D));
  t.ok(rel <= 1e-4, `embed --image astronaut.png: max rel diff ${rel.toExponential(2)} to the reference`);
  t.equal(out.text_embeds.length, 1, 'one text row');
});
