/**
 * `convnext-clip preprocess --model <dir> --json <image>` and the model directories' own preprocessing: the
 * `pixels` rows of models/<name>/expected.safetensors are open_clip's preprocessing of the listed images.
 */
import { open, readFile } from 'node:fs/promises';
import { Command } from 'commander';
import test from 'tape';
import { readSafetensorsManifest } from '../lib/checkpoint/safetensors.js';
import { preprocessImages } from '../lib/image/index.js';
import { registerImageCommands } from '../lib/image/cli.js';
import { readModelConfig, resolveModelFiles } from '../lib/model-dir.js';
import { FIXTURE_MODELS, fixture } from './helpers/fixtures.js';

async function expectedPixels(model: string): Promise<{ images: string[]; pixels: Float32Array; per: number }> {
  const file = fixture('models', model, 'expected.safetensors');
  const entry = (await readSafetensorsManifest(file)).tensors.get('pixels');
  if (!entry) throw new Error(`${file} has no pixels`);
  const bytes = Buffer.alloc(entry.byteLength);
  const fh = await open(file);
  try {
    await fh.read(bytes, 0, entry.byteLength, entry.offset);
  } finally {
    await fh.close();
  }
  const { images } = JSON.parse(await readFile(fixture('models', model, 'expected.json'), 'utf8')) as { images: string[] };
  return { images, pixels: new Float32Array(bytes.buffer, bytes.byteOffset, entry.byteLength / 4), per: entry.shape[1] * entry.shape[2] * entry.shape[3] };
}

test('each fixture model preprocesses its images into its expected pixels', async (t) => {
  for (const model of FIXTURE_MODELS) {
    const { preprocess } = await readModelConfig(resolveModelFiles(fixture('models', model)).config);
    const { images, pixels, per } = await expectedPixels(model);
    const files = images.filter((name) => !name.startsWith('<'));
    const ours = await preprocessImages(files.map((f) => fixture('images', f)), preprocess);
    t.equal(per, 3 * preprocess.size ** 2, `${model}: ${preprocess.size} px`);
    let maxDiff = 0;
    for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - pixels[i]));
    t.ok(maxDiff <= 1 / 255 / 0.26 + 1e-6, `${model}: ${files.join(', ')} within one 8-bit level (max |diff| ${maxDiff})`);
  }
});

test('the preprocess command prints {shape, data} for the model', async (t) => {
  const model = fixture('models', 'xxlarge-tiny');
  const image = fixture('images', 'chelsea.png');
  const program = new Command('convnext-clip').exitOverride();
  registerImageCommands(program);
  let printed = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    printed += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['preprocess', '--model', model, '--json', image], { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  const result = JSON.parse(printed) as { shape: number[]; data: number[] };
  t.deepEqual(result.shape, [3, 64, 64], 'shape [3, 64, 64]');
  const { preprocess } = await readModelConfig(resolveModelFiles(model).config);
  const direct = await preprocessImages([image], preprocess);
  t.ok(result.data.length === direct.length && result.data.every((v, i) => v === direct[i]), 'data = preprocessImages, exactly');
});
