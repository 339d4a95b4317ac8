/**
 * Load-time finite check (native/core/weights.cc): a checkpoint whose weights hold NaN, an infinity or
 * overflow-sized values (3e38) fails the load with E_CHECKPOINT_CORRUPT naming the tensor, on every engine
 * that reads weights through the core (native, wasm, torch when built). The poisoned checkpoints are temp
 * copies of a fixture with a few bytes patched.
 */
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, symlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import type { Backend } from '../lib/backends/types.js';
import { nativeBackend } from '../lib/backends/native.js';
import { torchBackend } from '../lib/backends/torch.js';
import { wasmBackend } from '../lib/backends/wasm.js';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { Clip } from '../lib/clip.js';
import { isClipError } from '../lib/errors.js';
import { rejectsWith, tempFolder } from './helpers/checkpoint-tmp.js';
import { fixtureModel } from './native-helpers.js';

const MODEL = 'xxlarge-tiny';
const tmp = tempFolder('finite');

interface Poison {
  label: string;
  tensor: string;
  element: number;
  value: number;
}

const POISONS: Poison[] = [
  { label: 'NaN', tensor: 'visual.trunk.stages.2.blocks.3.mlp.fc1.weight', element: 17, value: Number.NaN },
  { label: '3e38', tensor: 'transformer.resblocks.1.mlp.c_fc.weight', element: 0, value: 3e38 },
  { label: '-Infinity', tensor: 'ln_final.bias', element: 63, value: -Infinity },
  { label: '-1e30', tensor: 'visual.trunk.stem.0.weight', element: 5, value: -1e30 },
];

/** A copy of the fixture's safetensors with one F32 value overwritten. */
async function poisonedCopy(source: string, poison: Poison, name: string): Promise<string> {
  const file = path.join(tmp.dir, name);
  copyFileSync(source, file);
  const entry = (await readSafetensorsManifest(file)).tensors.get(poison.tensor);
  if (!entry || entry.dtype !== 'F32') throw new Error(`fixture tensor ${poison.tensor} missing or not F32`);
  const bytes = Buffer.alloc(4);
  bytes.writeFloatLE(poison.value, 0);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, 4, entry.offset + 4 * poison.element);
  } finally {
    closeSync(fd);
  }
  return file;
}

const BACKENDS: Backend[] = [nativeBackend, wasmBackend, torchBackend];

for (const backend of BACKENDS) {
  test(`${backend.name}: weights with NaN, infinities or overflow values fail the load with E_CHECKPOINT_CORRUPT`, async (t) => {
    t.timeoutAfter(180_000);
    const status = backend.available('cpu');
    if (!status.ok) {
      t.skip(`${backend.name} backend unavailable: ${status.reason}`);
      return;
    }
    const model = await fixtureModel(MODEL);
    const source = path.join(model.dir, 'open_clip_model.safetensors');
    const clean = await backend.load(model.arch, model.manifest, { precision: 'fp32', device: 'cpu', threads: 2 });
    t.equal((await clean.encodeText(new Int32Array(77).fill(49407), 1)).features.length, model.arch.embedDim, 'the unpatched fixture loads and encodes (control)');
    clean.dispose();
    for (const [i, poison] of POISONS.entries()) {
      const file = await poisonedCopy(source, poison, `${backend.name}-${i}.safetensors`);
      const manifest = await readSafetensorsManifest(file);
      const pattern = new RegExp(`${poison.tensor.replace(/\./g, '\\.')}.*(NaN|non-finite|overflow)`);
      await rejectsWith(t, backend.load(model.arch, manifest, { precision: 'fp32', device: 'cpu', threads: 2 }), 'E_CHECKPOINT_CORRUPT',
        `${poison.label} in ${poison.tensor}`, pattern);
    }
  });
}

test('Clip.load of a model directory with a poisoned tensor: E_CHECKPOINT_CORRUPT, no model', async (t) => {
  t.timeoutAfter(120_000);
  if (!nativeBackend.available().ok) {
    t.skip('native backend unavailable');
    return;
  }
  const model = await fixtureModel(MODEL);
  const dir = path.join(tmp.dir, 'model-dir');
  mkdirSync(dir);
  for (const f of readdirSync(model.dir)) {
    if (f !== 'open_clip_model.safetensors' && f !== 'open_clip_pytorch_model.bin') symlinkSync(path.join(model.dir, f), path.join(dir, f));
  }
  const poisoned = await poisonedCopy(path.join(model.dir, 'open_clip_model.safetensors'), POISONS[0], 'dir.safetensors');
  copyFileSync(poisoned, path.join(dir, 'open_clip_model.safetensors'));
  try {
    const clip = await Clip.load(dir, { backend: 'native' });
    t.fail('the poisoned model loaded');
    clip.dispose();
  } catch (err) {
    t.ok(isClipError(err, 'E_CHECKPOINT_CORRUPT'), `E_CHECKPOINT_CORRUPT (${(err as Error).message.slice(0, 200)})`);
    t.ok(String((err as Error).message).includes(POISONS[0].tensor), 'the message names the tensor');
  }
});
