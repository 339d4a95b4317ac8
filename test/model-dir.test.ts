import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'tape';
import { ClipError } from '../lib/errors.js';
import { OPENAI_MEAN, describeModel, parsePreprocessConfig, resolveModelFiles } from '../lib/model-dir.js';
import { FIXTURE_MODELS, fixture } from './helpers/fixtures.js';

async function rejectsCode(t: test.Test, promise: Promise<unknown>, code: string, what: string) {
  try {
    await promise;
    t.fail(`${what}: did not throw`);
  } catch (err) {
    t.ok(err instanceof ClipError && err.code === code, `${what}: ${code} (${(err as Error).message})`);
  }
}

for (const name of FIXTURE_MODELS) {
  test(`fixture ${name} describes from its directory`, async (t) => {
    const d = await describeModel(fixture('models', name));
    t.ok(d.files.weights.endsWith('open_clip_model.safetensors'), 'prefers safetensors');
    t.ok(d.files.vocabulary && 'vocabJson' in d.files.vocabulary, 'finds vocab.json + merges.txt');
    t.equal(d.preprocess.size, d.arch.vision.imageSize);
    t.equal(d.preprocess.interpolation, 'bicubic');
    t.equal(d.manifest.tensors.size, 1 + [...d.manifest.tensors.keys()].filter((k) => k !== 'logit_scale').length);
  });
}

test('explicit paths: the .bin of xxlarge-tiny with the gz vocabulary', async (t) => {
  const dir = fixture('models', 'xxlarge-tiny');
  const d = await describeModel({
    config: path.join(dir, 'open_clip_config.json'),
    weights: path.join(dir, 'open_clip_pytorch_model.bin'),
    vocabulary: { bpeGz: fixture('vocab', 'bpe_simple_vocab_16e6.txt.gz') },
  });
  t.equal(d.manifest.format, 'torch-zip');
  t.ok(d.files.vocabulary && 'bpeGz' in d.files.vocabulary);
});

test('preprocess defaults are open_clip defaults', (t) => {
  const p = parsePreprocessConfig(undefined, 256);
  t.deepEqual(p, { size: 256, mean: OPENAI_MEAN, std: [0.26862954, 0.26130258, 0.27577711], interpolation: 'bicubic', resizeMode: 'shortest', fillColor: 0 });
  t.throws(() => parsePreprocessConfig({ size: 224 }, 256), /does not match/);
  t.throws(() => parsePreprocessConfig({ interpolation: 'lanczos' }, 256), /not supported/);
  t.end();
});

test('missing things are E_NOT_FOUND, misfits are typed errors naming the tensor', async (t) => {
  t.throws(() => resolveModelFiles('/nonexistent/model'), (e: unknown) => e instanceof ClipError && e.code === 'E_NOT_FOUND');
  const tmp = mkdtempSync(path.join(tmpdir(), 'cclip-dir-'));
  try {
    t.throws(() => resolveModelFiles(tmp), (e: unknown) => e instanceof ClipError && e.code === 'E_NOT_FOUND' && /open_clip_config/.test(e.message));
    const src = fixture('models', 'xxlarge-tiny');
    copyFileSync(path.join(src, 'open_clip_config.json'), path.join(tmp, 'open_clip_config.json'));
    t.throws(() => resolveModelFiles(tmp), (e: unknown) => e instanceof ClipError && e.code === 'E_NOT_FOUND' && /weights/.test(e.message));

    // weights of another model: the first tensor that differs is named
    const other = fixture('models', 'xxlarge-deep256', 'open_clip_model.safetensors');
    await rejectsCode(t, describeModel({ config: path.join(tmp, 'open_clip_config.json'), weights: other }), 'E_TENSOR_SHAPE', 'misshaped tensor');

    // a config whose text tower is deeper than the checkpoint: a missing tensor
    const cfg = JSON.parse(readFileSync(path.join(src, 'open_clip_config.json'), 'utf8'));
    cfg.model_cfg.text_cfg.layers = 4;
    writeFileSync(path.join(tmp, 'open_clip_config.json'), JSON.stringify(cfg));
    await rejectsCode(t, describeModel({ config: path.join(tmp, 'open_clip_config.json'), weights: path.join(src, 'open_clip_model.safetensors') }), 'E_TENSOR_MISSING', 'missing tensor');

    cfg.model_cfg.vision_cfg.timm_model_name = 'convnext_tiny_hnf';
    writeFileSync(path.join(tmp, 'open_clip_config.json'), JSON.stringify(cfg));
    await rejectsCode(t, describeModel({ config: path.join(tmp, 'open_clip_config.json'), weights: path.join(src, 'open_clip_model.safetensors') }), 'E_UNKNOWN_ARCHITECTURE', 'unknown architecture');

    writeFileSync(path.join(tmp, 'open_clip_config.json'), '{"model_cfg": ');
    await rejectsCode(t, describeModel({ config: path.join(tmp, 'open_clip_config.json'), weights: path.join(src, 'open_clip_model.safetensors') }), 'E_CONFIG', 'broken JSON');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
