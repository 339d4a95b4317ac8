/**
 * The load path of native/core: native/core/tests/load_test.cc (weights packed from a mapped checkpoint are
 * bit-identical to the pread path and the documented layouts; first bad element named; truncated or shrinking
 * files refused without SIGBUS; consumed pages leave RSS), built with g++ by native/core/tests/run.sh; and the
 * addon end to end: mapped (default) and pread (CCLIP_LOAD_MMAP=0) loads give bit-identical features, and a
 * checkpoint cut after its manifest was read fails either load with E_CHECKPOINT_CORRUPT. The packed-weights cache:
 * native/core/tests/packed_cache_test.cc, and the addon writing, then mapping it, with bit-identical features.
 */
import { copyFileSync, existsSync, readdirSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { nativeBackend } from '../lib/backends/native.js';
import type { Precision } from '../lib/backends/types.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { rejectsWith, tempFolder } from './helpers/checkpoint-tmp.js';
import { runCppTest } from './helpers/cpp-test.js';
import { projectRoot } from './helpers/fixtures.js';
import { fixtureModel } from './native-helpers.js';

const tmp = tempFolder('core-load');

test('core load: mapped and pread loads pack bit-identical weights; corrupt, truncated and shrinking files are typed errors', async (t) => {
  t.timeoutAfter(300_000);
  await runCppTest(t, 'load_test', [path.join(projectRoot, 'native', 'core', 'tests', 'run.sh'), '--test', 'load_test'], 130, 290_000);
});

test('core packed cache: written once, then mapped bit-identical; changed checkpoints and damaged files never reused', async (t) => {
  t.timeoutAfter(300_000);
  await runCppTest(t, 'packed_cache_test', [path.join(projectRoot, 'native', 'core', 'tests', 'run.sh'), '--test', 'packed_cache_test'], 20, 290_000);
});

test('native: a packedCache directory is written by the first load and mapped by the next; features bit-identical', async (t) => {
  t.timeoutAfter(120_000);
  if (!nativeBackend.available().ok) {
    t.skip('native backend unavailable');
    return;
  }
  const model = await fixtureModel('xxlarge-tiny');
  const file = path.join(tmp.dir, 'cached.safetensors');
  copyFileSync(path.join(model.dir, 'open_clip_model.safetensors'), file);
  const manifest = await readSafetensorsManifest(file);
  const packedCache = path.join(tmp.dir, 'packed', 'nested');
  const tokens = new Int32Array(model.arch.text.contextLength).fill(49407);
  tokens[0] = 49406;
  const pixels = new Float32Array(3 * model.arch.vision.imageSize ** 2).map((_, i) => Math.cos(i));
  const bytes = (f: Float32Array) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  for (const precision of ['fp32', 'bf16'] as Precision[]) {
    const runs: { features: Buffer[]; files: string[] }[] = [];
    for (const cache of [undefined, packedCache, packedCache]) {
      const loaded = await nativeBackend.load(model.arch, manifest, { precision, device: 'cpu', threads: 2, packedCache: cache });
      const features = [bytes((await loaded.encodeImage(pixels, 1)).features), bytes((await loaded.encodeText(tokens, 1)).features)];
      loaded.dispose();
      const files = existsSync(packedCache) ? readdirSync(packedCache).filter((f) => f.endsWith('.cclip-packed')).map((f) => `${f}:${statSync(path.join(packedCache, f)).ino}`) : [];
      runs.push({ features, files });
    }
    t.equal(runs[1].files.length, precision === 'fp32' ? 1 : 2, `${precision}: the first load with packedCache wrote a file (the directory made as needed)`);
    t.deepEqual(runs[2].files, runs[1].files, `${precision}: the second load used it as it was (same file, same inode)`);
    t.ok(runs.every((r) => r.features.every((f, i) => Buffer.compare(f, runs[0].features[i]) === 0)), `${precision}: features with the cache written and mapped equal the uncached load's, bit for bit`);
  }
});

/** Runs `work` with CCLIP_LOAD_MMAP set to `value` (undefined: unset), which the addon reads at each load. */
async function withMmapSetting<T>(value: string | undefined, work: () => Promise<T>): Promise<T> {
  const saved = process.env.CCLIP_LOAD_MMAP;
  if (value === undefined) delete process.env.CCLIP_LOAD_MMAP;
  else process.env.CCLIP_LOAD_MMAP = value;
  try {
    return await work();
  } finally {
    if (saved === undefined) delete process.env.CCLIP_LOAD_MMAP;
    else process.env.CCLIP_LOAD_MMAP = saved;
  }
}

test('native: mapped and pread loads give bit-identical features; a checkpoint cut after its manifest was read is E_CHECKPOINT_CORRUPT', async (t) => {
  t.timeoutAfter(120_000);
  if (!nativeBackend.available().ok) {
    t.skip('native backend unavailable');
    return;
  }
  const model = await fixtureModel('xxlarge-tiny');
  const file = path.join(tmp.dir, 'cut.safetensors');
  copyFileSync(path.join(model.dir, 'open_clip_model.safetensors'), file);
  const manifest = await readSafetensorsManifest(file);
  const tokens = new Int32Array(model.arch.text.contextLength).fill(49407);
  tokens[0] = 49406;
  const pixels = new Float32Array(3 * model.arch.vision.imageSize ** 2).map((_, i) => Math.sin(i));
  for (const precision of ['fp32', 'bf16'] as Precision[]) {
    const features: Float32Array[][] = [];
    for (const setting of [undefined, '0']) {
      const loaded = await withMmapSetting(setting, () => nativeBackend.load(model.arch, manifest, { precision, device: 'cpu', threads: 2 }));
      features.push([(await loaded.encodeImage(pixels, 1)).features, (await loaded.encodeText(tokens, 1)).features]);
      loaded.dispose();
    }
    t.ok(
      features[0].every((f, i) => Buffer.compare(Buffer.from(f.buffer, f.byteOffset, f.byteLength), Buffer.from(features[1][i].buffer, features[1][i].byteOffset, features[1][i].byteLength)) === 0),
      `${precision}: image and text features of the mapped load equal the pread load's, bit for bit`,
    );
  }
  truncateSync(file, Math.floor(statSync(file).size / 2));
  for (const setting of [undefined, '0']) {
    await rejectsWith(t, withMmapSetting(setting, () => nativeBackend.load(model.arch, manifest, { precision: 'fp32', device: 'cpu', threads: 2 })),
      'E_CHECKPOINT_CORRUPT', `${setting === '0' ? 'pread' : 'mapped'} load of a file truncated after its manifest was read`, /truncated/);
  }
});
